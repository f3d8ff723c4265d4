"""The report's charts: matplotlib figures from plain values (no reading of the layers here).

Time axes choose their bucket from the span shown (a demo's minute is cut into seconds, a day
into quarter hours), so a chart never collapses into one group of bars.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display: render to files only

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from pipeline.layers import percentile

plt.rcParams["svg.fonttype"] = "none"  # keep SVG text as text: smaller and selectable

# Bucket sizes (seconds) a time axis may use, and how many buckets it aims to stay within.
BUCKETS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
MAX_BUCKETS = 60
TOP_REASONS = 12  # the quarantine chart names this many reasons; the rest share one bar
# Location lines: ten colours, then the same colours with other dashes and markers (40 distinct).
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = (".", "x", "^", "s")
STAGE_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd")


# --- time buckets ---------------------------------------------------------------------------------


def choose_bucket(times: Iterable[datetime]) -> int:
    """The bucket (seconds) that cuts the span of ``times`` into at most MAX_BUCKETS buckets."""
    ordered = sorted(times)
    span = (ordered[-1] - ordered[0]).total_seconds() if ordered else 0.0
    return next((b for b in BUCKETS if span / b <= MAX_BUCKETS), BUCKETS[-1])


def bucket_name(seconds: int) -> str:
    """``second``, ``5 seconds``, ``minute``, ``15 minutes``, ``hour``, ``day`` ..."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds} seconds"  # pragma: no cover - every bucket is whole seconds


def bucket_start(t: datetime, seconds: int) -> datetime:
    epoch = t.timestamp()
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def count_per_bucket(times: Iterable[datetime], seconds: int) -> Counter[datetime]:
    return Counter(bucket_start(t, seconds) for t in times)


def _bucket_range(first: datetime, last: datetime, seconds: int) -> list[datetime]:
    start, end = bucket_start(first, seconds), bucket_start(last, seconds)
    count = int((end - start).total_seconds() // seconds) + 1
    return [start + timedelta(seconds=seconds * i) for i in range(count)]


# --- figures --------------------------------------------------------------------------------------


def _empty(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _time_axis(ax: Any, times: Sequence[datetime], pad_seconds: float = 30.0) -> None:
    """Readable time ticks; a single instant gets some room (matplotlib would span years around it)."""
    if times and min(times) == max(times):
        pad = timedelta(seconds=pad_seconds)
        ax.set_xlim(min(times) - pad, max(times) + pad)
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def location_style(index: int) -> dict[str, Any]:
    """A colour, dash and marker no other of the first 40 locations shares."""
    colours = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]
    group = index // len(colours)
    return {
        "color": colours[index % len(colours)],
        "linestyle": LINE_STYLES[group % len(LINE_STYLES)],
        "marker": MARKERS[group % len(MARKERS)],
    }


def gold_temperature(series: dict[str, list[tuple[datetime, float]]]) -> Figure:
    """Average temperature per gold window, one line per location."""
    fig, axes = plt.subplots(figsize=(11, 5), layout="constrained")
    ax: Any = axes  # matplotlib's stubs do not take datetimes on the x axis
    if not series:
        _empty(ax, "no gold windows yet")
    for i, location in enumerate(sorted(series)):
        points = sorted(series[location])
        ax.plot(
            [t for t, _ in points],
            [v for _, v in points],
            linewidth=1,
            markersize=4,
            label=location,
            **location_style(i),
        )
    ax.set_title("Gold: average temperature per location (per window, UTC)")
    ax.set_ylabel("°C")
    if series:
        columns = 1 + len(series) // 20
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize="small", frameon=False, ncol=columns)
        _time_axis(ax, [t for points in series.values() for t, _ in points], pad_seconds=300)
    return fig


def event_flow(stage_times: dict[str, list[datetime]]) -> Figure:
    """Events per time bucket at each stage: how the flow moved through the pipeline."""
    fig, axes = plt.subplots(figsize=(11, 4), layout="constrained")
    ax: Any = axes
    stages = [stage for stage, times in stage_times.items() if times]
    every = [t for stage in stages for t in stage_times[stage]]
    if not every:
        _empty(ax, "no events yet")
        ax.set_title("Events per stage over time")
        return fig
    bucket = choose_bucket(every)
    xs = _bucket_range(min(every), max(every), bucket)
    for colour, stage in zip(STAGE_COLOURS, stages, strict=False):
        counts = count_per_bucket(stage_times[stage], bucket)
        ax.step(xs, [counts.get(x, 0) for x in xs], where="post", linewidth=1.5, label=stage, color=colour)
    name = bucket_name(bucket)
    ax.set_title(f"Events per {name} at each stage (UTC)")
    ax.set_ylabel(f"events / {name}")
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    _time_axis(ax, xs, pad_seconds=bucket)
    return fig


def freshness_over_time(points: Sequence[tuple[datetime, float]]) -> Figure:
    """Freshness (enqueued → visible in SQL) per enqueued-time bucket: p50, p95 and the worst."""
    fig, axes = plt.subplots(figsize=(11, 4), layout="constrained")
    ax: Any = axes
    if not points:
        _empty(ax, "no event is visible in SQL yet")
        ax.set_title("Freshness over time")
        return fig
    bucket = choose_bucket(t for t, _ in points)
    grouped: dict[datetime, list[float]] = defaultdict(list)
    for t, seconds in points:
        grouped[bucket_start(t, bucket)].append(seconds)
    xs = sorted(grouped)
    for q, style in ((50, "-"), (95, "--"), (100, ":")):
        label = "worst" if q == 100 else f"p{q}"
        ax.plot(xs, [percentile(grouped[x], q) for x in xs], style, marker=".", label=label)
    if len(xs) == 1:
        note = f"every event was enqueued within one {bucket_name(bucket)}"
        ax.text(0.5, 0.5, note, ha="center", transform=ax.transAxes, color="grey")
    ax.set_title(
        f"Freshness over time: enqueued → visible in SQL, per {bucket_name(bucket)} of enqueued time"
    )
    ax.set_ylabel("seconds")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    _time_axis(ax, xs, pad_seconds=bucket)
    return fig


def freshness_distribution(seconds: Sequence[float]) -> Figure:
    """How many events took how long to become visible in SQL, with p50 and p95 marked."""
    fig, axes = plt.subplots(figsize=(11, 3.5), layout="constrained")
    ax: Any = axes
    if not seconds:
        _empty(ax, "no event is visible in SQL yet")
    else:
        ax.hist(seconds, bins=40, color="#4c72b0")
        for q, colour in ((50, "#2ca02c"), (95, "#d62728")):
            value = percentile(seconds, q)
            ax.axvline(value, color=colour, linestyle="--", linewidth=1)
            ax.annotate(
                f"p{q} {value:.1f} s",
                (value, 1),
                xycoords=("data", "axes fraction"),
                xytext=(4, -12),
                textcoords="offset points",
                color=colour,
            )
        ax.set_xlabel("seconds from enqueued to visible in SQL")
        ax.set_ylabel("events")
    ax.set_title("Freshness distribution")
    return fig


def stage_lag(samples: Sequence[dict[str, Any]], times: Sequence[datetime]) -> Figure:
    """Each stage's lag over time, as continuous `run` sampled it (lag.jsonl)."""
    panels = (
        ("events_per_second", "into the hub (events/s)"),
        ("ingest_lag", "ingest lag (events)"),
        ("spark_pending_files", "Spark lag (bronze files)"),
        ("sync_lag_versions", "sync lag (gold versions)"),
    )
    if not samples:
        fig, axes = plt.subplots(figsize=(11, 2.5), layout="constrained")
        _empty(axes, "no lag history: continuous `python -m pipeline run` records it in lag.jsonl")
        axes.set_title("Lag of each stage over time")
        return fig
    fig, grid = plt.subplots(len(panels), 1, figsize=(11, 7), sharex=True, layout="constrained")
    for colour, ax, (key, label) in zip(STAGE_COLOURS, grid, panels, strict=False):
        values = [s.get(key) for s in samples]
        ax.plot(times, [v if v is not None else float("nan") for v in values], color=colour, linewidth=1.2)
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize="small")
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.3)
    grid[0].set_title("Lag of each stage over time (continuous run, UTC)")
    _time_axis(grid[-1], times)
    return fig


def quarantine_reasons(reasons: dict[str, int]) -> Figure:
    """The most frequent quarantine reasons, each with its count; the rest grouped in one bar."""
    ordered = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
    shown = ordered[:TOP_REASONS]
    rest = ordered[TOP_REASONS:]
    if rest:
        shown.append((f"{len(rest)} other reasons", sum(n for _, n in rest)))
    fig, axes = plt.subplots(figsize=(11, max(2.5, 0.32 * len(shown) + 1.2)), layout="constrained")
    ax: Any = axes
    if not shown:
        _empty(ax, "nothing quarantined")
    else:
        colours = ["#c0504d"] * min(len(ordered), TOP_REASONS) + ["#999999"] * (1 if rest else 0)
        bars = ax.barh([r for r, _ in shown][::-1], [n for _, n in shown][::-1], color=colours[::-1])
        ax.bar_label(bars, labels=[f"{n:,}" for _, n in shown][::-1], padding=3, fontsize="small")
        ax.set_xlabel("records (a record with two reasons counts under both)")
        ax.margins(x=0.08)
    ax.set_title("Quarantine reasons (ingest)")
    return fig


def svg(fig: Figure) -> str:
    """The figure as inline SVG (no XML prolog: inline SVG in HTML must not have one)."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def png(fig: Figure, path: Any) -> None:
    fig.savefig(path, dpi=110)
    plt.close(fig)
