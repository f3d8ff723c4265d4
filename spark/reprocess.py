"""Batch reprocessing: rebuild silver and gold for a range of EVENT dates from bronze.

The range ``start``..``end`` (inclusive) is by event date (``silver.event_date``, the UTC date of
``event_time``), because that is how silver is partitioned and how gold windows are placed: a
window never crosses midnight (the window size divides a day), so every gold window belongs to
exactly one event date and there are no partial windows at the range's edges.

Bronze is partitioned by ingest date, and a late event lands in a later ingest folder, so the
rebuild reads every ingest folder from ``start - lookback_days`` on (an event can be enqueued at
most a few minutes before its own event time) and keeps the events whose date is in range.

Silver for the range is made equal to the rebuild with one MERGE: new events inserted, events no
longer valid deleted, a changed event's content updated; an unchanged event keeps its row (and its
``processed_at``). Gold windows of the range are recomputed from silver and MERGEd, updating only
windows whose values changed and deleting windows that no longer have events. A rerun therefore
changes nothing, and the result equals what streaming produced from the same bronze.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timedelta
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from spark.bronze_source import BronzeSource, pick_source
from spark.delta_tables import DeltaTables
from spark.job import add_lake_arguments, hold_checked, job_session, lake_from_args, now_utc
from spark.transforms import dedupe_events, silver_to_gold, split_checked


def event_dates(start: date, end: date) -> list[date]:
    """Every date from ``start`` to ``end`` inclusive."""
    if end < start:
        raise ValueError(f"the range ends ({end}) before it starts ({start})")
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def reprocess_range(
    source: BronzeSource,
    tables: DeltaTables,
    start: date,
    end: date,
    *,
    lookback_days: int = 1,
    processed_at: datetime | None = None,
) -> dict[str, Any]:
    """Rebuild silver and gold for event dates ``start``..``end`` from bronze; idempotent.

    Returns:
        Counts: bronze rows read, silver rows rebuilt, and what changed in each table.
    """
    days = event_dates(start, end)
    processed_at = processed_at or now_utc()
    window_minutes = tables.window_minutes
    tables.prepare()
    checked, bronze_rows, _, incomplete = hold_checked(
        source.read_batch(start - timedelta(days=lookback_days)), processed_at
    )
    try:
        valid, rejected = split_checked(checked)
        in_range = valid.where(F.col("event_date").between(F.lit(start), F.lit(end)))
        silver = dedupe_events(in_range).persist()
        try:
            silver_result = tables.replace_silver_range(silver, start, end)
            quarantine_result = tables.append_quarantine(rejected, None)
            gold = silver_to_gold(tables.read_silver(days), window_minutes, processed_at)
            gold_result = tables.merge_gold(gold, None, replace=(start, end))
            rebuilt = silver.count()
        finally:
            silver.unpersist()
    finally:
        checked.unpersist()
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "bronze_rows": bronze_rows,
        "silver_rows": rebuilt,
        "silver_inserted": silver_result.inserted,
        "silver_updated": silver_result.updated,
        "silver_deleted": silver_result.deleted,
        "quarantined": quarantine_result.inserted,
        "incomplete_files": len(incomplete),
        "gold_inserted": gold_result.inserted,
        "gold_updated": gold_result.updated,
        "gold_deleted": gold_result.deleted,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="weather-spark-reprocess", description=__doc__.splitlines()[0])
    add_lake_arguments(parser)
    parser.add_argument(
        "--from", dest="start", type=date.fromisoformat, required=True, help="first event date"
    )
    parser.add_argument("--to", dest="end", type=date.fromisoformat, required=True, help="last event date")
    parser.add_argument("--lookback-days", type=int, default=1, help="ingest days read before --from")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    spark: SparkSession = job_session()
    lake = lake_from_args(args)
    source = pick_source(spark, lake, args.bronze_source)
    tables = DeltaTables(spark, lake, args.window_minutes)
    print(reprocess_range(source, tables, args.start, args.end, lookback_days=args.lookback_days))
    return 0


if __name__ == "__main__":
    sys.exit(main())
