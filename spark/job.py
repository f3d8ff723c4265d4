"""The streaming job: bronze -> silver -> gold, exact under lateness, duplicates and replays.

Each micro-batch (``foreachBatch``):

1. checks and parses its bronze rows, deduplicates them by ``event_id``;
2. inserts the events silver does not have yet (insert-only MERGE on ``event_id``);
3. keeps rejected rows in the silver quarantine table;
4. recomputes, from silver, exactly the gold windows its events fall into and MERGEs them.

No watermark or streaming aggregation state decides what counts, so an event is counted however
late it arrives and a duplicate is dropped however late it comes. Every write carries the
micro-batch id as an idempotent-write token, so a batch replayed after a crash changes nothing.

Run on Databricks as ``weather-spark-stream`` (see databricks.yml); locally through
``python -m pipeline spark``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from contract.bronze import FORMATS
from spark.bronze_source import BRONZE_SOURCES, BronzeSource, pick_source
from spark.delta_tables import DeltaTables, Txn, WriteResult
from spark.lake import LakeConfig
from spark.schemas import GOLD_KEY, SOURCE_FILE_COLUMN
from spark.transforms import (
    GOLD_INPUT_COLUMNS,
    check_bronze,
    dedupe_events,
    file_counts,
    has_duplicate_ids,
    is_incomplete,
    silver_to_gold,
    split_checked,
    touched_windows,
    window_start,
)
from spark.watchdog import STOP_TIMEOUT, StalledQueryError, StallWatch

BatchHook = Callable[[str, int], None]
logger = logging.getLogger("spark.job")
# How often the driver looks at the query (stop requests, stalls).
_POLL_SECONDS = 0.5


@dataclass(frozen=True)
class JobOptions:
    """What the streaming job needs besides the session."""

    lake: LakeConfig
    window_minutes: int = 5
    trigger_seconds: int | None = None  # None: availableNow (process what is there, then stop)
    bronze_source: str = "auto"  # autoloader (Databricks), files (Spark's file source) or auto
    query_name: str = "weather_bronze_to_gold"
    # A micro-batch with no progress at all for this long is stopped and restarted (0: never).
    stall_timeout_seconds: float = 900.0
    stall_restarts: int = 2


@dataclass
class JobTotals:
    """Counts over a run; ``as_dict()`` is what the runner and CLI report."""

    batches: int = 0
    bronze_rows: int = 0
    silver_inserted: int = 0
    duplicates_skipped: int = 0  # valid rows silver already had, or twice in one batch
    quarantined: int = 0
    incomplete_files: int = 0  # bronze files short of their records, quarantined whole
    gold_inserted: int = 0
    gold_updated: int = 0
    replayed_writes_skipped: int = 0
    stalls: int = 0  # micro-batches stopped for making no progress, then replayed
    batch_ids: list[int] = field(default_factory=list)

    def add(self, batch: dict[str, int]) -> None:
        self.batches += 1
        for name in (
            "bronze_rows",
            "silver_inserted",
            "duplicates_skipped",
            "quarantined",
            "incomplete_files",
            "gold_inserted",
            "gold_updated",
            "replayed_writes_skipped",
        ):
            setattr(self, name, getattr(self, name) + batch[name])
        self.batch_ids.append(batch["batch_id"])

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "batch_ids"}


def now_utc() -> datetime:
    """The current time in UTC, to the microsecond (what Delta timestamps hold)."""
    return datetime.now(UTC)


def recompute_windows(
    tables: DeltaTables, touched: DataFrame, dates: list[date], window_minutes: int
) -> DataFrame:
    """Silver rows of the touched (``location``, ``window_start``) keys, read from the table."""
    silver = tables.read_silver(dates)
    keyed = silver.withColumn("window_start", window_start(F.col("event_time"), window_minutes))
    return keyed.join(F.broadcast(touched), GOLD_KEY, "left_semi").drop("window_start")


def _merge_gold(
    tables: DeltaTables,
    rows: DataFrame,
    txn: Txn,
    window_minutes: int,
    processed_at: datetime,
    *,
    new: bool,
) -> WriteResult:
    """Gold of ``rows`` (every silver row of the windows they touch) merged into the table.

    The aggregation reads its input three times (the sums, and each dominant value), and Delta's
    MERGE reads its source again: the few columns it needs are held once, so silver's files or
    the cached batch are scanned once.
    """
    inputs = rows.select(*GOLD_INPUT_COLUMNS).persist()
    try:
        gold = silver_to_gold(inputs, window_minutes, processed_at)
        return tables.merge_gold(gold, txn, windows_are_new=new)
    finally:
        inputs.unpersist()


def hold_checked(bronze: DataFrame, processed_at: datetime) -> tuple[DataFrame, int, int, list[str]]:
    """Check a micro-batch's bronze rows and cache the result once (every write reads it).

    Returns:
        The cached checked rows, how many rows and valid rows, and the files found incomplete
        (short of their ``RecordsInFile``): those files' rows are all rejected as such.
    """
    checked = check_bronze(bronze, processed_at).persist()
    files = file_counts(checked).collect()
    incomplete = sorted(f[SOURCE_FILE_COLUMN] for f in files if is_incomplete(f.rows, f.sequenced, f.written))
    bronze_rows = sum(f.rows for f in files)
    valid_rows = sum(f.valid for f in files if f[SOURCE_FILE_COLUMN] not in incomplete)
    if incomplete:
        # Rare: check the incomplete files' rows again, now rejected whole (their bodies kept).
        logger.warning("bronze files short of their records, quarantined whole: %s", ", ".join(incomplete))
        damaged = F.col(SOURCE_FILE_COLUMN).isin(*incomplete)
        rechecked = check_bronze(bronze.where(damaged), processed_at, incomplete)
        whole = checked.where(~damaged).unionByName(rechecked).persist()
        checked.unpersist()
        checked = whole
    return checked, bronze_rows, valid_rows, incomplete


def process_batch(
    tables: DeltaTables,
    bronze: DataFrame,
    batch_id: int,
    *,
    window_minutes: int,
    app_id: str,
    processed_at: datetime | None = None,
    hook: BatchHook | None = None,
) -> dict[str, int]:
    """Process one micro-batch of bronze rows; safe to run again with the same ``batch_id``.

    Args:
        tables: The silver, quarantine and gold tables.
        bronze: The micro-batch's bronze rows (envelope plus ``source_file``).
        batch_id: Spark's micro-batch id: the idempotent-write version.
        window_minutes: Gold window size.
        app_id: Identifies the query (stable across restarts of one checkpoint).
        processed_at: Stamped on new silver rows and changed gold rows; now when None.
        hook: Called as ``hook(stage, batch_id)`` after each write (tests inject crashes here).

    Returns:
        Counts for this batch (written rows from Delta's operation metrics).
    """
    processed_at = processed_at or now_utc()
    checked, bronze_rows, valid_rows, incomplete = hold_checked(bronze, processed_at)
    deduped: DataFrame | None = None
    try:
        valid, rejected = split_checked(checked)
        silver = valid
        if has_duplicate_ids(valid):
            silver = deduped = dedupe_events(valid).persist()  # sorted once, read by each write
        dates = sorted(row[0] for row in silver.select("event_date").distinct().collect())
        # Asked before the insert: when silver held nothing on these dates, silver's rows of the
        # touched windows afterwards are exactly this batch's, so gold is aggregated from the
        # batch instead of read back from the table (same rows, same exact sums), and neither
        # table can hold those rows or windows yet. A replay finds its own earlier insert and
        # takes the read-back path, where Delta's transaction identifiers skip what was written.
        from_batch = not tables.silver_has_dates(dates)
        silver_txn = Txn(f"{app_id}:silver", batch_id)
        silver_result = tables.insert_new_silver(
            silver, dates, silver_txn, dates_are_new=from_batch, valid_rows=valid_rows
        )
        if hook:
            hook("silver", batch_id)
        # Nothing to quarantine is no write at all (a replay of the batch has nothing either).
        quarantine_result = WriteResult()
        if valid_rows < bronze_rows:
            quarantine_result = tables.append_quarantine(rejected, Txn(f"{app_id}:quarantine", batch_id))
        if hook:
            hook("quarantine", batch_id)
        gold_txn = Txn(f"{app_id}:gold", batch_id)
        if from_batch:
            gold_result = _merge_gold(tables, silver, gold_txn, window_minutes, processed_at, new=True)
        else:
            touched = touched_windows(silver, window_minutes).persist()
            try:
                rows = recompute_windows(tables, touched, dates, window_minutes)
                gold_result = _merge_gold(tables, rows, gold_txn, window_minutes, processed_at, new=False)
            finally:
                touched.unpersist()
        if hook:
            hook("gold", batch_id)
    finally:
        if deduped is not None:
            deduped.unpersist()
        checked.unpersist()
    results = (silver_result, quarantine_result, gold_result)
    return {
        "batch_id": batch_id,
        "bronze_rows": bronze_rows,
        "silver_inserted": silver_result.inserted,
        # A replayed silver write inserts nothing: its rows are not duplicates of anything.
        "duplicates_skipped": 0 if silver_result.skipped else valid_rows - silver_result.inserted,
        "quarantined": quarantine_result.inserted,
        "incomplete_files": len(incomplete),
        "gold_inserted": gold_result.inserted,
        "gold_updated": gold_result.updated,
        "replayed_writes_skipped": sum(r.skipped for r in results),
    }


def run_stream(
    spark: SparkSession,
    options: JobOptions,
    *,
    stop: threading.Event | None = None,
    on_batch: Callable[[dict[str, int]], None] | None = None,
    hook: BatchHook | None = None,
) -> dict[str, Any]:
    """Run the streaming query until bronze is drained (availableNow) or ``stop`` is set.

    A query whose micro-batch makes no progress for ``options.stall_timeout_seconds`` is
    stopped and started again from its checkpoint (see :mod:`spark.watchdog`), up to
    ``options.stall_restarts`` times.

    Args:
        spark: The session.
        options: Paths, window size, trigger, stall handling.
        stop: Set it to stop the query after the current batch (availableNow: before the rest).
        on_batch: Called with each micro-batch's counts (progress display).
        hook: Passed to :func:`process_batch` (fault injection in tests).

    Returns:
        Totals over the run.

    Raises:
        pyspark.errors.StreamingQueryException: When a micro-batch failed; restarting resumes
            from the checkpoint.
        StalledQueryError: When the query stalled more than ``stall_restarts`` times, or could
            not be stopped; restarting resumes from the checkpoint.
    """
    source = pick_source(spark, options.lake, options.bronze_source)
    tables = DeltaTables(spark, options.lake, options.window_minutes)
    tables.prepare()
    totals = JobTotals()
    watch = StallWatch(spark, options.stall_timeout_seconds) if options.stall_timeout_seconds else None
    while True:
        if stop is not None and stop.is_set():  # stopped before (re)starting: nothing to wait for
            return totals.as_dict()
        query = _start_query(source, tables, options, totals, on_batch, hook, watch)
        try:
            stalled = _await_query(query, options.trigger_seconds is None, stop, watch)
        finally:
            if query.isActive:
                _stop_query(query)
        if not stalled:
            return totals.as_dict()
        totals.stalls += 1
        if totals.stalls > options.stall_restarts:
            raise StalledQueryError(
                f"streaming query {options.query_name} stalled {totals.stalls} times "
                f"(no progress for {options.stall_timeout_seconds:g} s); rerun to resume from the checkpoint"
            )
        logger.warning(
            "streaming query %s made no progress for %g s: stopped, restarting from its checkpoint",
            options.query_name,
            options.stall_timeout_seconds,
        )


def _start_query(
    source: BronzeSource,
    tables: DeltaTables,
    options: JobOptions,
    totals: JobTotals,
    on_batch: Callable[[dict[str, int]], None] | None,
    hook: BatchHook | None,
    watch: StallWatch | None,
) -> Any:
    query_id: dict[str, str] = {}
    started = threading.Event()

    def each_batch(bronze: DataFrame, batch_id: int) -> None:
        started.wait(timeout=60)
        counts = process_batch(
            tables,
            bronze,
            batch_id,
            window_minutes=options.window_minutes,
            app_id=f"{options.query_name}:{query_id.get('id', 'unknown')}",
            hook=_beating(hook, watch),
        )
        totals.add(counts)
        if on_batch:
            on_batch(counts)

    writer = (
        source.read_stream()
        .writeStream.queryName(options.query_name)
        .option("checkpointLocation", options.lake.checkpoint)
        .foreachBatch(each_batch)
    )
    if options.trigger_seconds is None:
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=f"{options.trigger_seconds} seconds")
    query = writer.start()
    # The query id survives restarts from the same checkpoint and changes when the checkpoint is
    # new, so a fresh checkpoint never mistakes its batch 0 for an old query's batch 0.
    query_id["id"] = str(query.id)
    started.set()
    return query


def _beating(hook: BatchHook | None, watch: StallWatch | None) -> BatchHook | None:
    """The batch hook, also telling the watch that a write finished (progress outside tasks)."""
    if watch is None:
        return hook

    def beat_then_hook(stage: str, batch_id: int) -> None:
        watch.beat()
        if hook:
            hook(stage, batch_id)

    return beat_then_hook


def _await_query(
    query: Any, available_now: bool, stop: threading.Event | None, watch: StallWatch | None
) -> bool:
    """Wait for the query to end (availableNow) or for ``stop``; True when it stalled."""
    if watch:
        watch.reset()
    while True:
        if available_now or stop is None:
            if query.awaitTermination(_POLL_SECONDS):
                return False
            if stop is not None and stop.is_set():  # Ctrl-C ends an availableNow run early too
                _stop_between_batches(query)
                query.awaitTermination()
                return False
        elif stop.wait(_POLL_SECONDS) or not query.isActive:
            _stop_between_batches(query)
            query.awaitTermination()
            return False
        if watch and watch.stalled(query):
            return True


def _stop_query(query: Any) -> None:
    try:
        query.stop()
    except Exception as error:  # Spark's stop timeout (spark.sql.streaming.stopTimeout)
        raise StalledQueryError(f"streaming query {query.name} could not be stopped: {error}") from error


def _stop_between_batches(query: Any, patience_seconds: float = 120.0) -> None:
    """Stop the query once its current micro-batch is done (stopping mid-batch is safe, since the
    batch replays idempotently, but wastes its work and logs an interruption)."""
    deadline = time.monotonic() + patience_seconds
    while query.isActive and query.status.get("isTriggerActive") and time.monotonic() < deadline:
        time.sleep(0.2)
    if query.isActive:
        query.stop()


# ---------------------------------------------------------------------------------------------
# Entry point for the Databricks job task (and anyone running the wheel).


def add_lake_arguments(parser: argparse.ArgumentParser) -> None:
    """The storage and table parameters shared by the streaming and the reprocess job."""
    parser.add_argument(
        "--bronze-path", required=True, help="bronze folder of the stream (abfss:// or local)"
    )
    parser.add_argument("--bronze-format", choices=FORMATS, default="jsonl")
    parser.add_argument(
        "--silver-table", required=True, help="silver Delta table: catalog.schema.name or a path"
    )
    parser.add_argument("--quarantine-table", required=True, help="silver quarantine Delta table")
    parser.add_argument("--gold-table", required=True, help="gold Delta table")
    parser.add_argument("--checkpoint", required=True, help="streaming checkpoint location")
    parser.add_argument("--schema-location", default="", help="Auto Loader schema location")
    parser.add_argument("--window-minutes", type=int, default=5, help="gold window size in minutes")
    parser.add_argument(
        "--bronze-source",
        choices=BRONZE_SOURCES,
        default="auto",
        help="autoloader (Databricks), files (Spark's file source), auto: Auto Loader on Databricks",
    )


def lake_from_args(args: argparse.Namespace) -> LakeConfig:
    return LakeConfig(
        bronze_path=args.bronze_path,
        bronze_format=args.bronze_format,
        silver_table=args.silver_table,
        quarantine_table=args.quarantine_table,
        gold_table=args.gold_table,
        checkpoint=args.checkpoint,
        schema_location=args.schema_location,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="weather-spark-stream", description=__doc__.splitlines()[0])
    add_lake_arguments(parser)
    parser.add_argument(
        "--trigger",
        choices=("available-now", "processing-time"),
        default="available-now",
        help="available-now: drain bronze and stop; processing-time: run continuously",
    )
    parser.add_argument("--trigger-seconds", type=int, default=10, help="processing-time interval")
    parser.add_argument(
        "--stall-timeout-seconds",
        type=float,
        default=JobOptions.stall_timeout_seconds,
        help="stop and replay a micro-batch with no progress for this long (0: never)",
    )
    return parser


def job_session() -> SparkSession:
    """The runtime's session (Databricks'), in UTC so event dates and windows are UTC days."""
    spark = SparkSession.builder.getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    spark.conf.set("spark.sql.streaming.stopTimeout", STOP_TIMEOUT)
    return spark


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    options = JobOptions(
        lake=lake_from_args(args),
        window_minutes=args.window_minutes,
        trigger_seconds=None if args.trigger == "available-now" else args.trigger_seconds,
        bronze_source=args.bronze_source,
        stall_timeout_seconds=args.stall_timeout_seconds,
    )
    totals = run_stream(job_session(), options)
    print(totals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
