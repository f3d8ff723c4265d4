"""A self-contained HTML report over the current local state, plus a PNG of its main chart.

Charts: gold average temperature per location over time (the main chart), events per minute per
stage (enqueued, ingested, processed into silver, visible in SQL), and quarantine reasons. The
HTML embeds every chart as inline SVG, so the one file can be mailed or opened offline.
"""

from __future__ import annotations

import html
import io
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from pipeline import layers
from settings import Settings

plt.rcParams["svg.fonttype"] = "none"  # keep SVG text as text: smaller and selectable

HTML_NAME = "report.html"
PNG_NAME = "gold_temperature.png"
TOP_REASONS = 10  # the summary lists this many reasons; the chart shows them all


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, read from the layers."""

    counts: layers.LayerCounts
    gold: list[dict[str, Any]]
    per_minute: dict[str, Counter[datetime]]
    freshness: list[float]


@dataclass(frozen=True)
class ReportFiles:
    """Where the report was written."""

    html: Path
    png: Path


def _minute(t: datetime | None) -> datetime | None:
    return None if t is None else t.replace(second=0, microsecond=0)


def _count_by_minute(times: Iterable[datetime | None]) -> Counter[datetime]:
    return Counter(m for m in (_minute(t) for t in times) if m is not None)


def collect(settings: Settings) -> ReportData:
    """Read the layers under the settings' home into what the report shows."""
    enqueued: list[datetime | None] = []
    ingested: list[datetime | None] = []
    for container in (settings.bronze_container, settings.quarantine_container):
        for path in layers.lake_files(settings, container):
            for record in layers.iter_records(path):
                enqueued.append(layers.parse_utc(record.get("EnqueuedTimeUtc")))
                ingested.append(layers.parse_utc(record.get("IngestedTimeUtc")))
    silver = layers.read_delta(settings.silver_table_uri, ["processed_at"])
    visibility = layers.sql_visibility(settings)
    per_minute = {
        "enqueued in the hub": _count_by_minute(enqueued),
        "ingested (bronze + quarantine)": _count_by_minute(ingested),
        "processed into silver": _count_by_minute(layers.parse_utc(r["processed_at"]) for r in silver),
        "visible in SQL": _count_by_minute(visible for _, visible in visibility),
    }
    gold = layers.read_delta(settings.gold_table_uri, ["location", "window_start", "avg_temperature"])
    return ReportData(
        counts=layers.count_layers(settings),
        gold=gold,
        per_minute=per_minute,
        freshness=[(visible - enq).total_seconds() for enq, visible in visibility],
    )


# --- charts ---------------------------------------------------------------------------------------


def _empty(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def gold_temperature_chart(gold: list[dict[str, Any]]) -> Figure:
    """Average temperature per 5-minute gold window, one line per location."""
    fig, axes = plt.subplots(figsize=(11, 5), layout="constrained")
    ax: Any = axes  # matplotlib's stubs do not take datetimes on the x axis
    series: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for row in gold:
        start = layers.parse_utc(row["window_start"])
        if start is not None and row["avg_temperature"] is not None:
            series[str(row["location"])].append((start, float(row["avg_temperature"])))
    if not series:
        _empty(ax, "no gold windows yet")
    for location in sorted(series):
        points = sorted(series[location])
        ax.plot([t for t, _ in points], [v for _, v in points], marker=".", linewidth=1, label=location)
    ax.set_title("Gold: average temperature per location (per window, UTC)")
    ax.set_ylabel("°C")
    if series:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small", frameon=False)
        fig.autofmt_xdate()
    return fig


def events_per_minute_chart(per_minute: dict[str, Counter[datetime]]) -> Figure:
    """Events per minute at each stage: how the flow moved through the pipeline over time."""
    fig, axes = plt.subplots(figsize=(11, 4), layout="constrained")
    ax: Any = axes
    minutes = sorted(set().union(*per_minute.values()))
    stages = [stage for stage, counts in per_minute.items() if counts]
    if len(minutes) <= 60:
        # Few minutes (a demo): grouped bars read better than lines through a handful of points.
        width = 1 / (len(stages) + 1)
        for i, stage in enumerate(stages):
            xs = [j + i * width for j in range(len(minutes))]
            ax.bar(xs, [per_minute[stage][m] for m in minutes], width=width, label=stage)
        ax.set_xticks(
            [j + width * (len(stages) - 1) / 2 for j in range(len(minutes))],
            [m.strftime("%H:%M") for m in minutes],
        )
    else:
        for stage in stages:
            counts = per_minute[stage]
            ax.plot(minutes, [counts.get(m, 0) for m in minutes], linewidth=1, label=stage)
        fig.autofmt_xdate()
    if not stages:
        _empty(ax, "no events yet")
    else:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    ax.set_title("Events per minute per stage (UTC)")
    ax.set_ylabel("events / minute")
    return fig


def quarantine_chart(reasons: dict[str, int]) -> Figure:
    """How many quarantined records carry each reason code."""
    ordered = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    fig, ax = plt.subplots(figsize=(11, max(2.5, 0.35 * len(ordered) + 1)), layout="constrained")
    if not ordered:
        _empty(ax, "nothing quarantined")
    else:
        ax.barh([r for r, _ in ordered][::-1], [n for _, n in ordered][::-1], color="#c0504d")
        ax.set_xlabel("records")
    ax.set_title("Quarantine reasons (ingest)")
    return fig


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # drop the XML prolog: inline SVG in HTML must not have one


# --- the page -------------------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def summary_rows(data: ReportData) -> list[tuple[str, str]]:
    """The figures shown in the summary table of the report (and of the demo)."""
    c = data.counts
    rows = [
        ("events in the hub", f"{c.hub:,}"),
        ("valid (bronze records)", f"{c.bronze:,}"),
        ("quarantined (ingest)", f"{c.quarantine:,}"),
    ]
    by_count = sorted(c.quarantine_reasons.items(), key=lambda item: (-item[1], item[0]))
    rows += [(f"  reason {r}", f"{n:,}") for r, n in by_count[:TOP_REASONS]]
    if len(by_count) > TOP_REASONS:
        rest = by_count[TOP_REASONS:]
        rows.append((f"  {len(rest)} other reasons (see the reasons chart)", f"{sum(n for _, n in rest):,}"))
    if c.silver_quarantine:
        rows.append(("quarantined by the Spark job", f"{c.silver_quarantine:,}"))
    rows += [
        ("duplicates removed", f"{max(0, c.bronze - c.silver - c.silver_quarantine):,}"),
        ("silver rows", f"{c.silver:,}"),
        ("gold windows", f"{c.gold:,}"),
        ("SQL rows", f"{c.sql:,}"),
        ("sync watermark (gold Delta version)", "—" if c.watermark is None else str(c.watermark)),
        ("freshness p50 (enqueued → visible in SQL)", _seconds(layers.percentile(data.freshness, 50))),
        ("freshness p95", _seconds(layers.percentile(data.freshness, 95))),
    ]
    return rows


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1rem 0 2rem; }
td { padding: .25rem 1rem; border-bottom: 1px solid #ddd; }
td:last-child { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 0 0 2rem; } svg { max-width: 100%; height: auto; }
"""


def render_html(data: ReportData, home: Path, generated: datetime) -> str:
    """The report page: summary table and inline SVG charts."""
    rows = "\n".join(
        # Indented names (reasons under "quarantined") keep their indent in HTML too.
        f"<tr><td>{html.escape(k).replace('  ', '&emsp;')}</td><td>{html.escape(v)}</td></tr>"
        for k, v in summary_rows(data)
    )
    charts = [
        _svg(gold_temperature_chart(data.gold)),
        _svg(events_per_minute_chart(data.per_minute)),
        _svg(quarantine_chart(data.counts.quarantine_reasons)),
    ]
    figures = "\n".join(f"<figure>{svg}</figure>" for svg in charts)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>Weather pipeline report</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>Weather pipeline report</h1>"
        f"<p>State folder <code>{html.escape(str(home))}</code>, generated "
        f"{generated.strftime('%Y-%m-%d %H:%M:%S')} UTC.</p>"
        f"<h2>Summary</h2><table>{rows}</table><h2>Charts</h2>{figures}</body></html>\n"
    )


def write_report(settings: Settings, data: ReportData | None = None) -> ReportFiles:
    """Write ``reports/report.html`` and ``reports/gold_temperature.png`` under the home."""
    data = data or collect(settings)
    out = settings.home / "reports"
    out.mkdir(parents=True, exist_ok=True)
    png = out / PNG_NAME
    fig = gold_temperature_chart(data.gold)
    fig.savefig(png, dpi=110)
    plt.close(fig)
    page = out / HTML_NAME
    # Write then rename, so a browser never opens half a report.
    partial = out / f"_{HTML_NAME}"
    partial.write_text(render_html(data, settings.home, datetime.now(UTC)), encoding="utf-8")
    partial.replace(page)
    return ReportFiles(html=page, png=png)
