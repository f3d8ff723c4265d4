"""The report's HTML page: one section per question an operator asks after an incident, charts inline."""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline import charts, layers
from pipeline.report import (
    COMMANDS_SHOWN,
    SYNC_RUNS_SHOWN,
    ReportData,
    collect,
    duration_text,
    health_checks,
    summary_rows,
)
from settings import Settings

HTML_NAME = "report.html"
PNG_NAME = "gold_temperature.png"

# --- the page -------------------------------------------------------------------------------------

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: .5rem 0 1.5rem; }
th { text-align: left; padding: .25rem 1rem; border-bottom: 2px solid #bbb; }
td { padding: .25rem 1rem; border-bottom: 1px solid #ddd; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
td.ok { color: #2a7d2a; font-weight: bold; } td.warn { color: #b45309; font-weight: bold; }
code, td.code { font-family: ui-monospace, monospace; font-size: .85rem; word-break: break-all; }
figure { margin: 0 0 1.5rem; } svg { max-width: 100%; height: auto; }
table.examples code { word-break: break-all; } td.reason code { white-space: nowrap; }
.where { color: #666; font-size: .8rem; margin-top: .2rem; }
details summary { cursor: pointer; margin: .5rem 0; }
nav a { margin-right: 1rem; } section { margin-bottom: 2.5rem; } .note { color: #666; }
"""

SECTIONS = (
    ("health", "Health"),
    ("summary", "Summary"),
    ("freshness", "Freshness"),
    ("lag", "Lag of each stage"),
    ("flow", "Event flow"),
    ("quarantine", "Quarantine"),
    ("duplicates-late", "Duplicates and late events"),
    ("sync-history", "Sync history"),
    ("gold", "Gold"),
    ("settings", "Settings and commands"),
)


def _e(value: object) -> str:
    return html.escape(str(value))


def _table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    numeric: Sequence[int] = (),
    code: Sequence[int] = (),
) -> str:
    def cell(i: int, value: str) -> str:
        kind = " class=n" if i in numeric else " class=code" if i in code else ""
        return f"<td{kind}>{_e(value)}</td>"

    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(i, v) for i, v in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(key: str, body: str) -> str:
    title = dict(SECTIONS)[key]
    return f"<section id='{key}'><h2>{_e(title)}</h2>{body}</section>"


def _health(data: ReportData) -> str:
    checks = health_checks(data)
    failing = [c for c in checks if not c.ok]
    verdict = (
        "<p><strong>Healthy:</strong> every check passed.</p>"
        if not failing
        else f"<p><strong>Needs a look:</strong> {len(failing)} of {len(checks)} checks did not pass.</p>"
    )
    rows = "".join(
        f"<tr><td class='{'ok' if c.ok else 'warn'}'>{'✓' if c.ok else '⚠'}</td>"
        f"<td>{_e(c.name)}</td><td>{_e(c.detail)}</td></tr>"
        for c in checks
    )
    return verdict + f"<table class='health'><tbody>{rows}</tbody></table>"


def _summary(data: ReportData) -> str:
    rows = "".join(
        # Indented names (reasons under "quarantined") keep their indent in HTML too.
        f"<tr><td>{_e(k).replace('  ', '&emsp;')}</td><td class=n>{_e(v)}</td></tr>"
        for k, v in summary_rows(data)
    )
    return f"<table class='summary'><tbody>{rows}</tbody></table>"


def _freshness(data: ReportData) -> str:
    points = [(enqueued, (visible - enqueued).total_seconds()) for enqueued, visible in data.visibility]
    note = (
        "<p class='note'>Freshness of an event: from its enqueued time in the hub to the end of the "
        "first sync that made its gold window visible in SQL.</p>"
    )
    return (
        note
        + f"<figure>{charts.svg(charts.freshness_over_time(points))}</figure>"
        + f"<figure>{charts.svg(charts.freshness_distribution(data.freshness))}</figure>"
    )


def _lag(data: ReportData) -> str:
    times = [layers.parse_utc(s["at_utc"]) for s in data.lag]
    note = (
        f"<p class='note'>{len(data.lag):,} samples from <code>lag.jsonl</code>, written by continuous "
        "<code>python -m pipeline run</code> (the figures of its live status line).</p>"
    )
    return note + f"<figure>{charts.svg(charts.stage_lag(data.lag, times))}</figure>"  # type: ignore[arg-type]


def _quarantine(data: ReportData) -> str:
    reasons = data.counts.quarantine_reasons
    chart = f"<figure>{charts.svg(charts.quarantine_reasons(reasons))}</figure>"
    if not reasons:
        return chart
    ordered = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))

    def rows(items: list[tuple[str, int]]) -> str:
        out = []
        for reason, count in items:
            cells = "".join(
                f"<div class=example><code>{_e(example.body)}</code><div class=where>{_e(example.file)} "
                f"line {example.line} · reasons: {_e(', '.join(example.reasons))}</div></div>"
                for example in data.quarantine_examples.get(reason, [])
            )
            out.append(
                f"<tr><td class=reason><code>{_e(reason)}</code></td><td class=n>{count:,}</td>"
                f"<td>{cells}</td></tr>"
            )
        head = "<thead><tr><th>reason</th><th>records</th><th>an example record</th></tr></thead>"
        return f"<table class='examples'>{head}<tbody>{''.join(out)}</tbody></table>"

    intro = (
        "<p class='note'>An example record per reason: its body (around the field the reason names), "
        "the file and line it is in, and all its reasons. Every quarantined record keeps its original "
        "body, so it can be fixed and replayed.</p>"
    )
    top, rest = ordered[: charts.TOP_REASONS], ordered[charts.TOP_REASONS :]
    more = f"<details><summary>{len(rest)} more reasons</summary>{rows(rest)}</details>" if rest else ""
    return chart + intro + rows(top) + more


def _duplicates_late(data: ReportData) -> str:
    c = data.counts
    late = data.late_seconds
    rows = [
        ("bronze records", f"{c.bronze:,}"),
        ("duplicates (bronze records repeating an eventId already in bronze)", f"{data.duplicates:,}"),
        ("distinct events in bronze", f"{c.bronze - data.duplicates:,}"),
        ("silver rows (one per event)", f"{c.silver:,}"),
        (f"late events (enqueued after their {data.window_minutes}-minute window ended)", f"{len(late):,}"),
    ]
    if late and c.silver:
        rows += [
            ("late share of silver", f"{len(late) / c.silver:.1%}"),
            ("lateness p50 (after the window's end)", duration_text(layers.percentile(late, 50) or 0)),
            ("lateness worst", duration_text(max(late))),
        ]
    note = (
        "<p class='note'>Duplicates are dropped by the Spark job's MERGE on event_id; late events "
        "are folded into their (recomputed) gold window, so gold stays exact.</p>"
    )
    return note + _table(("figure", "value"), rows, numeric=(1,))


def _sync_history(data: ReportData) -> str:
    if not data.sync_runs:
        return "<p>No sync has changed anything yet (<code>sync_runs</code> is empty).</p>"
    columns = ("from_version", "to_version", "rows_upserted", "rows_deleted", "rows_skipped")
    rows = []
    for run in data.sync_runs[:SYNC_RUNS_SHOWN]:
        finished = layers.parse_utc(run.get("finished_at"))
        when = finished.strftime("%Y-%m-%d %H:%M:%S") if finished else "—"
        rows.append((when, *("—" if run.get(col) is None else f"{run[col]:,}" for col in columns)))
    total = len(data.sync_runs)
    which = f"the {SYNC_RUNS_SHOWN} latest of {total:,}" if total > SYNC_RUNS_SHOWN else f"all {total:,}"
    note = f"<p class='note'>Syncs that changed SQL (<code>sync_runs</code>), {which}, newest first.</p>"
    return note + _table(
        ("finished (UTC)", "from version", "to version", "upserted", "deleted", "skipped"),
        rows,
        numeric=(1, 2, 3, 4, 5),
    )


def _gold(data: ReportData) -> str:
    return f"<figure>{charts.svg(charts.gold_temperature(gold_series(data.gold)))}</figure>"


def _settings(data: ReportData) -> str:
    last = data.runs[-1] if data.runs else None
    if last is not None:
        snapshot = last.get("settings") or {}
        intro = (
            f"<p>As the last command that wrote this folder ran with them: <code>{_e(last.get('command'))}"
            f"</code> at {_e(last.get('at_utc'))}. Settings not listed were empty: their defaults applied. "
            "Secrets are masked.</p>"
        )
    else:
        snapshot = data.current_settings
        intro = (
            "<p>No command has recorded its settings here (<code>runs.jsonl</code>); these are the "
            "settings this report was made with. Settings not listed are empty: their defaults "
            "apply. Secrets are masked.</p>"
        )
    table = _table(("setting", "value"), sorted(snapshot.items())) if snapshot else "<p>(all defaults)</p>"
    commands = ""
    if data.runs:
        recent = data.runs[-COMMANDS_SHOWN:][::-1]
        commands = "<h3>Commands that wrote this folder</h3>" + _table(
            ("started (UTC)", "command", "pid"),
            [(str(r.get("at_utc")), str(r.get("command")), str(r.get("pid"))) for r in recent],
        )
    return intro + table + commands


def gold_series(gold: Iterable[dict[str, Any]]) -> dict[str, list[tuple[datetime, float]]]:
    series: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for row in gold:
        start = layers.parse_utc(row["window_start"])
        if start is not None and row["avg_temperature"] is not None:
            series[str(row["location"])].append((start, float(row["avg_temperature"])))
    return dict(series)


def render_html(data: ReportData, home: Path, generated: datetime) -> str:
    """The report page: one section per question, charts inline."""
    parts = {
        "health": _health(data),
        "summary": _summary(data),
        "freshness": _freshness(data),
        "lag": _lag(data),
        "flow": f"<figure>{charts.svg(charts.event_flow(data.stage_times))}</figure>",
        "quarantine": _quarantine(data),
        "duplicates-late": _duplicates_late(data),
        "sync-history": _sync_history(data),
        "gold": _gold(data),
        "settings": _settings(data),
    }
    nav = "".join(f"<a href='#{key}'>{_e(title)}</a>" for key, title in SECTIONS)
    body = "".join(_section(key, parts[key]) for key, _ in SECTIONS)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>Weather pipeline report</title>"
        f"<style>{_STYLE}</style></head><body>"
        "<h1>Weather pipeline report</h1>"
        f"<p>State folder <code>{_e(home)}</code>, generated "
        f"{generated.strftime('%Y-%m-%d %H:%M:%S')} UTC.</p>"
        f"<nav>{nav}</nav>{body}</body></html>\n"
    )


@dataclass(frozen=True)
class ReportFiles:
    """Where the report was written."""

    html: Path
    png: Path


def write_report(settings: Settings, data: ReportData | None = None) -> ReportFiles:
    """Write ``reports/report.html`` and ``reports/gold_temperature.png`` under the home."""
    data = data or collect(settings)
    out = settings.home / "reports"
    out.mkdir(parents=True, exist_ok=True)
    png = out / PNG_NAME
    charts.png(charts.gold_temperature(gold_series(data.gold)), png)
    page = out / HTML_NAME
    # Write then rename, so a browser never opens half a report.
    partial = out / f"_{HTML_NAME}"
    partial.write_text(render_html(data, settings.home, datetime.now(UTC)), encoding="utf-8")
    partial.replace(page)
    return ReportFiles(html=page, png=png)
