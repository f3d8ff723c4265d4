"""A self-contained HTML report that answers "is the pipeline healthy?", plus a PNG of the gold chart.

Sections: health checks, the summary (the same figures as `status` and the demo), freshness over
time and as a distribution, each stage's lag over time (from ``lag.jsonl``), the event flow per
stage, quarantine reasons with example records and the files they are in, duplicates and late
events, the sync history (``sync_runs``), gold temperatures, and the settings and commands that
wrote the folder (``runs.jsonl``, secrets masked). Charts are inline SVG, so the one file can be
mailed or opened offline. Every figure is read from the state folder; nothing is estimated.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline import charts, history, layers
from settings import Settings, SettingsError

HTML_NAME = "report.html"
PNG_NAME = "gold_temperature.png"
TOP_REASONS = 10  # the summary lists this many reasons; the chart and the examples show more
EXAMPLES_PER_REASON = 1
EXAMPLE_BODY_CHARS = 160
FIELD_OF_REASON = {"future_time": "eventTime"}  # reasons without a ":field" that still name one
SYNC_RUNS_SHOWN = 20
COMMANDS_SHOWN = 10
# A health threshold, looser than bench_e2e's steady-state 30 s: a one-shot run --once or demo
# (every stage once, in turn) meets it too.
FRESHNESS_TARGET_SECONDS = 60.0
QUARANTINE_WARN_SHARE = 0.05
STAGES = ("enqueued in the hub", "ingested (bronze + quarantine)", "processed into silver", "visible in SQL")


@dataclass(frozen=True)
class QuarantineExample:
    """One quarantined record: where it is and what it held."""

    file: str  # relative to the state folder
    line: int  # 1-based; record number for Avro
    reasons: list[str]
    body: str


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows, read from the layers and the folder's own records."""

    counts: layers.LayerCounts
    gold: list[dict[str, Any]]
    stage_times: dict[str, list[datetime]]
    visibility: list[tuple[datetime, datetime]]  # (enqueued, visible in SQL) per silver event
    duplicates: int = 0  # bronze records repeating an eventId bronze already holds
    late_seconds: list[float] = field(default_factory=list)  # lateness of each late silver event
    window_minutes: int = 5
    quarantine_examples: dict[str, list[QuarantineExample]] = field(default_factory=dict)
    lag: list[dict[str, Any]] = field(default_factory=list)
    spark_pending_files: int = 0
    sync_runs: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    current_settings: dict[str, str] = field(default_factory=dict)

    @property
    def freshness(self) -> list[float]:
        """Seconds from enqueued to visible in SQL, per silver event visible in SQL."""
        return [(visible - enqueued).total_seconds() for enqueued, visible in self.visibility]


@dataclass(frozen=True)
class ReportFiles:
    """Where the report was written."""

    html: Path
    png: Path


# --- reading --------------------------------------------------------------------------------------


def collect(settings: Settings) -> ReportData:
    """Read the layers and records under the settings' home into what the report shows."""
    from pipeline.orchestrate import sample_lag

    enqueued: list[datetime] = []
    ingested: list[datetime] = []
    seen_ids: set[str] = set()
    duplicates = 0
    for path in layers.lake_files(settings, settings.bronze_container):
        for record in layers.iter_records(path):
            _times(record, enqueued, ingested)
            event_id = record.get("EventId")
            if event_id in seen_ids:
                duplicates += 1
            elif event_id is not None:
                seen_ids.add(str(event_id))
    examples: dict[str, list[QuarantineExample]] = defaultdict(list)
    for path in layers.lake_files(settings, settings.quarantine_container):
        for number, record in enumerate(layers.iter_records(path), start=1):
            _times(record, enqueued, ingested)
            reasons = [str(r) for r in record.get("Reasons") or ["unknown"]]
            for reason in reasons:
                if len(examples[reason]) < EXAMPLES_PER_REASON:
                    examples[reason].append(_example(settings, path, number, reasons, record))
    window_minutes = _window_minutes(settings)
    silver = layers.read_delta(settings.silver_table_uri, ["event_time", "enqueued_time", "processed_at"])
    processed = [t for t in (layers.parse_utc(r["processed_at"]) for r in silver) if t is not None]
    visibility = layers.sql_visibility(settings)
    with layers.SqlReader(settings) as reader:
        sync_runs = reader.rows("sync_runs") or []
    lag = [s for s in history.read(settings.home / history.LAG_FILE) if layers.parse_utc(s.get("at_utc"))]
    return ReportData(
        counts=layers.count_layers(settings),
        gold=layers.read_delta(settings.gold_table_uri, ["location", "window_start", "avg_temperature"]),
        stage_times={
            STAGES[0]: enqueued,
            STAGES[1]: ingested,
            STAGES[2]: processed,
            STAGES[3]: [visible for _, visible in visibility],
        },
        visibility=visibility,
        duplicates=duplicates,
        late_seconds=late_seconds(silver, window_minutes),
        window_minutes=window_minutes,
        quarantine_examples=dict(examples),
        lag=lag,
        spark_pending_files=sample_lag(settings).spark_pending_files,
        sync_runs=sorted(sync_runs, key=lambda r: str(r.get("finished_at")), reverse=True),
        runs=history.read(settings.home / history.RUNS_FILE),
        current_settings=history.settings_snapshot(settings),
    )


def _times(record: dict[str, Any], enqueued: list[datetime], ingested: list[datetime]) -> None:
    for value, into in ((record.get("EnqueuedTimeUtc"), enqueued), (record.get("IngestedTimeUtc"), ingested)):
        t = layers.parse_utc(value)
        if t is not None:
            into.append(t)


def _example(
    settings: Settings, path: Path, number: int, reasons: list[str], record: dict[str, Any]
) -> QuarantineExample:
    body = record.get("Body")
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)
    if record.get("BodyEncoding") == "base64":
        text = f"(base64) {text}"
    try:
        where = str(path.relative_to(settings.home))
    except ValueError:  # LOCAL_LAKE_PATH outside the state folder
        where = str(path)
    return QuarantineExample(file=where, line=number, reasons=reasons, body=excerpt(text, reasons[0]))


def excerpt(body: str, reason: str, width: int = EXAMPLE_BODY_CHARS) -> str:
    """At most ``width`` characters of ``body``, around the field ``reason`` names (``range:humidity``)."""
    if len(body) <= width:
        return body
    if reason == "json":  # broken JSON is usually cut short or malformed at its end
        start = len(body) - width
    else:
        field = FIELD_OF_REASON.get(reason, reason.partition(":")[2])
        at = body.find(f'"{field}"') if field else -1
        start = 0 if at < 0 else max(0, at - width // 4)
    end = min(len(body), start + width)
    return (
        f"{'…' if start else ''}{body[start:end]}{'…' if end < len(body) else ''} ({len(body):,} characters)"
    )


def _window_minutes(settings: Settings) -> int:
    try:
        return settings.window_minutes
    except SettingsError:
        return 5


def late_seconds(silver: Iterable[dict[str, Any]], window_minutes: int) -> list[float]:
    """How late each late event was: enqueued after the end of its gold window, by this many seconds.

    A late event reopens a window that earlier micro-batches had already computed (gold is
    recomputed for it, so it is exact, but it arrives after the window could look final).
    """
    window = timedelta(minutes=window_minutes)
    out = []
    for row in silver:
        event_time, enqueued = (
            layers.parse_utc(row.get("event_time")),
            layers.parse_utc(row.get("enqueued_time")),
        )
        if event_time is None or enqueued is None:
            continue
        midnight = event_time.replace(hour=0, minute=0, second=0, microsecond=0)
        window_end = midnight + ((event_time - midnight) // window + 1) * window
        if enqueued > window_end:
            out.append((enqueued - window_end).total_seconds())
    return out


# --- what the tables say --------------------------------------------------------------------------


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


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
        rows.append((f"  {len(rest)} other reasons (see Quarantine)", f"{sum(n for _, n in rest):,}"))
    if c.silver_quarantine:
        rows.append(("quarantined by the Spark job", f"{c.silver_quarantine:,}"))
    rows += [
        ("silver rows inserted by the Spark job (Delta metrics)", f"{c.spark.silver_inserted:,}"),
        ("duplicates skipped by the Spark job (Delta metrics)", f"{c.spark.duplicates_skipped:,}"),
        ("silver rows", f"{c.silver:,}"),
        ("late events (enqueued after their window ended)", f"{len(data.late_seconds):,}"),
        ("gold windows", f"{c.gold:,}"),
        ("gold windows merged by the Spark job (Delta metrics)", f"{c.spark.gold_windows_merged:,}"),
        ("SQL rows", f"{c.sql:,}"),
        ("sync watermark (gold Delta version)", "—" if c.watermark is None else str(c.watermark)),
        ("freshness p50 (enqueued → visible in SQL)", _seconds(layers.percentile(data.freshness, 50))),
        ("freshness p95", _seconds(layers.percentile(data.freshness, 95))),
    ]
    return rows


@dataclass(frozen=True)
class Check:
    """One health check: ok or not, what was checked, and what was found."""

    ok: bool
    name: str
    detail: str


def health_checks(data: ReportData) -> list[Check]:
    """The answers to "is it healthy?", each from figures shown elsewhere in the report."""
    c = data.counts
    checks = [
        Check(
            c.hub_backlog == 0,
            "ingest caught up",
            "every event in the hub is ingested"
            if c.hub_backlog == 0
            else f"{c.hub_backlog:,} events in the hub not yet ingested",
        )
    ]
    if c.hub and c.hub_backlog == 0:
        landed = c.bronze + c.quarantine
        checks.append(
            Check(
                landed == c.hub,
                "nothing lost, nothing doubled at ingest",
                f"hub {c.hub:,} {'=' if landed == c.hub else '≠'} bronze {c.bronze:,} + quarantine "
                f"{c.quarantine:,}" + ("" if landed == c.hub else f" ({landed - c.hub:+,})"),
            )
        )
    checks.append(
        Check(
            data.spark_pending_files == 0,
            "Spark caught up",
            "no bronze file newer than silver's last commit"
            if data.spark_pending_files == 0
            else f"{data.spark_pending_files:,} bronze files newer than silver's last commit",
        )
    )
    checks.append(
        Check(
            c.silver_quarantine == 0,
            "Spark agrees with the Function",
            "the Spark job rejected nothing the ingest Function accepted"
            if c.silver_quarantine == 0
            else f"{_plural(c.silver_quarantine, 'row')} rejected by the Spark job (see silver's "
            "weather_quarantine table)",
        )
    )
    if c.gold_version is not None:
        behind = c.gold_version - (-1 if c.watermark is None else c.watermark)
        in_sync = behind <= 0 and c.sql == c.gold
        checks.append(
            Check(
                in_sync,
                "SQL equals gold",
                f"watermark at gold version {c.gold_version}, {c.sql:,} rows in both"
                if in_sync
                else f"{_plural(behind, 'gold version')} not yet synced (gold {c.gold:,} rows, SQL {c.sql:,})"
                if behind > 0
                else f"synced to gold version {c.gold_version}, but gold has {c.gold:,} rows, SQL {c.sql:,}",
            )
        )
    p95 = layers.percentile(data.freshness, 95)
    if p95 is not None:
        checks.append(
            Check(
                p95 <= FRESHNESS_TARGET_SECONDS,
                "freshness",
                f"p95 {p95:.1f} s (target ≤ {FRESHNESS_TARGET_SECONDS:.0f} s)",
            )
        )
    received = c.bronze + c.quarantine
    if received:
        share = c.quarantine / received
        checks.append(
            Check(
                share <= QUARANTINE_WARN_SHARE,
                "quarantine rate",
                f"{share:.1%} of ingested events quarantined (look closer above {QUARANTINE_WARN_SHARE:.0%})",
            )
        )
    if c.watermark_synced_at:
        synced = layers.parse_utc(c.watermark_synced_at)
        if synced is not None:
            age = (datetime.now(UTC) - synced).total_seconds()
            when = synced.strftime("%Y-%m-%d %H:%M:%S UTC")
            checks.append(Check(True, "last sync", f"{when} ({_duration(age)} ago)"))
    return checks


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
            ("lateness p50 (after the window's end)", _duration(layers.percentile(late, 50) or 0)),
            ("lateness worst", _duration(max(late))),
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
