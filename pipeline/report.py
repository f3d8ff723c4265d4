"""A self-contained HTML report that answers "is the pipeline healthy?", plus a PNG of the gold chart.

Sections: health checks, the summary (the same figures as `status` and the demo), freshness over
time and as a distribution, each stage's lag over time (from ``lag.jsonl``), the event flow per
stage, quarantine reasons with example records and the files they are in, duplicates and late
events, the sync history (``sync_runs``), gold temperatures, and the settings and commands that
wrote the folder (``runs.jsonl``, secrets masked). Charts are inline SVG, so the one file can be
mailed or opened offline. Every figure is read from the state folder; nothing is estimated.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from contract import BODY_NOT_JSON, EVENT_TIME_FIELD, FUTURE_TIME
from pipeline import history, lake_records, layers
from settings import Settings, SettingsError

TOP_REASONS = 10  # the summary lists this many reasons; the chart and the examples show more
EXAMPLES_PER_REASON = 1
EXAMPLE_BODY_CHARS = 160
FIELD_OF_REASON = {FUTURE_TIME: EVENT_TIME_FIELD}  # reasons without a ":field" that still name one
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


# --- reading --------------------------------------------------------------------------------------


def collect(settings: Settings) -> ReportData:
    """Read the layers and records under the settings' home into what the report shows."""
    from pipeline.orchestrate import sample_lag

    enqueued: list[datetime] = []
    ingested: list[datetime] = []
    seen_ids: set[str] = set()
    duplicates = 0
    for path in lake_records.lake_files(settings, settings.bronze_container):
        for record in lake_records.iter_records(path):
            _times(record, enqueued, ingested)
            event_id = record.get("EventId")
            if event_id in seen_ids:
                duplicates += 1
            elif event_id is not None:
                seen_ids.add(str(event_id))
    examples: dict[str, list[QuarantineExample]] = defaultdict(list)
    for path in lake_records.lake_files(settings, settings.quarantine_container):
        for number, record in enumerate(lake_records.iter_records(path), start=1):
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
    if reason == BODY_NOT_JSON:  # broken JSON is usually cut short or malformed at its end
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


def duration_text(seconds: float) -> str:
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
            checks.append(Check(True, "last sync", f"{when} ({duration_text(age)} ago)"))
    return checks
