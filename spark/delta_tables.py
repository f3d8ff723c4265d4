"""The silver, silver-quarantine and gold Delta tables, written with the Delta Lake Spark API.

The one writer of all three tables, on Databricks and locally alike: insert-only MERGE on
``event_id`` for silver, an insert-only MERGE keyed by where a row came from for the quarantine,
and a MERGE of recomputed windows for gold. Each write of a micro-batch carries an idempotent-write
token (Delta's ``txnAppId``/``txnVersion``): a replayed micro-batch's write is skipped by Delta
itself. Counts come from Delta's own operation metrics.

Tables are created with their properties stated rather than left to the platform's defaults:
the sync Function and the local tooling read them with the ``deltalake`` package, which cannot
read deletion vectors (Databricks turns them on for new tables), so they are off; gold keeps its
change data feed, and records its window size so that a run with another size is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StructType

from spark.lake import SPARK_WRITER, LakeConfig, is_path, table_ref
from spark.schemas import (
    GOLD_KEY,
    GOLD_SCHEMA,
    GOLD_VALUE_COLUMNS,
    QUARANTINE_SCHEMA,
    SILVER_CONTENT_COLUMNS,
    SILVER_PARTITION_COLUMN,
    SILVER_SCHEMA,
    SOURCE_FILE_COLUMN,
)

# A malformed bronze line has no partition or sequence number: the kept text tells lines apart.
QUARANTINE_KEY = [SOURCE_FILE_COLUMN, "partition_id", "sequence_number", "body"]
#: The gold table property that records its window size.
WINDOW_MINUTES_PROPERTY = "weather.windowMinutes"
# Properties every table is created with (see the module docstring).
_COMMON_PROPERTIES = {"delta.enableDeletionVectors": "false"}
# Silver's file statistics: event_id prunes the insert-only MERGE, event_time the reads of a day's
# windows; statistics on every column made writing 1M rows cost 7.1 CPU-seconds instead of 6.1.
_SILVER_STATS_COLUMNS = "event_id,event_time"
_TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
_TXN_VERSION = "spark.databricks.delta.write.txnVersion"
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


def commit_tag(txn: Txn | None, valid_rows: int | None = None) -> str:
    """The ``userMetadata`` of one of the job's commits: its idempotent-write token, if any, and for
    silver the micro-batch's valid rows (so duplicates dropped before the write are counted too)."""
    tag: dict[str, object] = {"writer": SPARK_WRITER}
    if txn is not None:
        tag.update(txnAppId=txn.app_id, txnVersion=txn.version)
    if valid_rows is not None:
        tag["validRows"] = valid_rows
    return json.dumps(tag, separators=(",", ":"))


class WindowSizeMismatchError(ValueError):
    """Gold was built with another window size than the job was asked to use."""


def window_size_mismatch(gold_table: str, recorded: str, window_minutes: int) -> str:
    """What to say when gold holds windows of another size (and how to rebuild)."""
    return (
        f"gold ({gold_table}) holds {recorded}-minute windows, but WINDOW_MINUTES is {window_minutes}: "
        f"set it back to {recorded}, or build gold anew in another table (GOLD_TABLE_URI) and "
        "reprocess the dates you need"
    )


@dataclass(frozen=True)
class Txn:
    """An idempotent-write token: a write with a version at or below the table's is skipped."""

    app_id: str
    version: int


@dataclass(frozen=True)
class WriteResult:
    """What one write changed, from Delta's metrics (``skipped``: a replay Delta left alone)."""

    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    skipped: bool = False


def _day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    return (
        datetime.combine(start, time(), UTC),
        datetime.combine(end + timedelta(days=1), time(), UTC),
    )


def _changed(columns: Iterable[str]) -> str:
    return " OR ".join(f"(t.{c} IS DISTINCT FROM s.{c})" for c in columns)


def _on(columns: Iterable[str]) -> str:
    return " AND ".join(f"t.{c} = s.{c}" for c in columns)


def _on_null_safe(columns: Iterable[str]) -> str:
    return " AND ".join(f"(t.{c} <=> s.{c})" for c in columns)


def _date_list(dates: Iterable[date]) -> str:
    return ", ".join(f"DATE'{d.isoformat()}'" for d in dates) or "NULL"


class DeltaTables:
    """The job's tables (port and only adapter: Delta Lake on Spark runs everywhere the job runs).

    Args:
        spark: A session with Delta Lake (Databricks' runtime, or the local session).
        lake: Table locations or names.
        window_minutes: Gold's window size; :meth:`prepare` records it on a new gold table and
            refuses an existing one built with another size.
    """

    def __init__(self, spark: SparkSession, lake: LakeConfig, window_minutes: int) -> None:
        self.spark = spark
        self.lake = lake
        self.window_minutes = window_minutes
        # Event dates silver is known to hold rows on: a running stream stops asking (one Spark job
        # per micro-batch). Only "holds rows" is remembered, which stays true while this writer
        # runs (nothing else deletes silver rows then: reprocessing needs the stream stopped), and
        # a wrong "holds rows" would only take the MERGE path, which is always correct.
        self._dates_with_rows: set[date] = set()

    # --- tables ----------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the three tables when missing, with their properties; check gold's window size."""
        gold_properties = {
            **_COMMON_PROPERTIES,
            "delta.enableChangeDataFeed": "true",
            WINDOW_MINUTES_PROPERTY: str(self.window_minutes),
        }
        silver_properties = {**_COMMON_PROPERTIES, "delta.dataSkippingStatsColumns": _SILVER_STATS_COLUMNS}
        for table, schema, partitioned_by, properties in [
            (self.lake.silver_table, SILVER_SCHEMA, SILVER_PARTITION_COLUMN, silver_properties),
            (self.lake.quarantine_table, QUARANTINE_SCHEMA, None, _COMMON_PROPERTIES),
            (self.lake.gold_table, GOLD_SCHEMA, None, gold_properties),
        ]:
            self._create(table, schema, partitioned_by, properties)
        self._check_window_size()

    def _create(
        self, table: str, schema: StructType, partitioned_by: str | None, properties: dict[str, str]
    ) -> None:
        columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in schema.fields)
        partitioning = f" PARTITIONED BY (`{partitioned_by}`)" if partitioned_by else ""
        settings = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
        self.spark.sql(
            f"CREATE TABLE IF NOT EXISTS {table_ref(table)} ({columns}) USING DELTA"
            f"{partitioning} TBLPROPERTIES ({settings})"
        )

    def table_properties(self, table: str) -> dict[str, str]:
        """A table's properties as Delta reports them."""
        rows = self.spark.sql(f"SHOW TBLPROPERTIES {table_ref(table)}").collect()
        return {row["key"]: row["value"] for row in rows}

    def _check_window_size(self) -> None:
        recorded = self.table_properties(self.lake.gold_table).get(WINDOW_MINUTES_PROPERTY)
        if recorded is not None and recorded != str(self.window_minutes):
            raise WindowSizeMismatchError(
                window_size_mismatch(self.lake.gold_table, recorded, self.window_minutes)
            )

    def _delta(self, table: str) -> Any:
        from delta.tables import DeltaTable  # Delta Lake's Python API (runtime or delta-spark)

        if is_path(table):
            return DeltaTable.forPath(self.spark, table)
        return DeltaTable.forName(self.spark, table)

    def _read(self, table: str) -> DataFrame:
        if is_path(table):
            return self.spark.read.format("delta").load(table)
        return self.spark.read.table(table)

    # --- reads -----------------------------------------------------------------------------------
    def read_silver(self, event_dates: list[date]) -> DataFrame:
        """Silver rows of the given event dates (partition-pruned)."""
        return self._read(self.lake.silver_table).where(F.col(SILVER_PARTITION_COLUMN).isin(*event_dates))

    def silver_has_dates(self, event_dates: list[date]) -> bool:
        """Whether silver holds any row on these event dates."""
        if not event_dates:
            return False
        if set(event_dates) & self._dates_with_rows:
            return True
        return bool(self.read_silver(event_dates).limit(1).count())

    def _note_silver_rows(self, event_dates: list[date], result: WriteResult) -> None:
        if result.inserted or result.skipped:
            self._dates_with_rows.update(event_dates)

    # --- writes ----------------------------------------------------------------------------------
    def _append(self, table: str, rows: DataFrame, txn: Txn, valid_rows: int | None = None) -> WriteResult:
        """Append under an idempotent-write token; the count from the commit's own metrics.

        The commit is tagged with the token (its ``userMetadata``), so the table's latest commit
        says whether this write happened or Delta skipped it as already committed.
        """
        tag = commit_tag(txn, valid_rows)
        writer = (
            rows.write.format("delta")
            .mode("append")
            .option("txnAppId", txn.app_id)
            .option("txnVersion", txn.version)
            .option("userMetadata", tag)
        )
        if is_path(table):
            writer.save(table)
        else:
            writer.saveAsTable(table)
        latest = self._delta(table).history(1).select("userMetadata", "operationMetrics").collect()
        if not latest or latest[0]["userMetadata"] != tag:
            return WriteResult(skipped=True)
        return WriteResult(inserted=int((latest[0]["operationMetrics"] or {}).get("numOutputRows", 0)))

    def _execute(self, merger: Any, txn: Txn | None, valid_rows: int | None = None) -> WriteResult:
        """Run a MERGE under an idempotent-write token; its counts from Delta's metrics."""
        self.spark.conf.set(_USER_METADATA, commit_tag(txn, valid_rows))
        if txn is not None:
            self.spark.conf.set(_TXN_APP_ID, txn.app_id)
            self.spark.conf.set(_TXN_VERSION, str(txn.version))
        try:
            metrics = merger.execute().collect()
        finally:
            for name in (_USER_METADATA, _TXN_APP_ID, _TXN_VERSION):
                self.spark.conf.unset(name)
        if not metrics:  # Delta skipped the write: this token's version is already committed
            return WriteResult(skipped=True)
        row = metrics[0]
        return WriteResult(
            inserted=int(row["num_inserted_rows"]),
            updated=int(row["num_updated_rows"]),
            deleted=int(row["num_deleted_rows"]),
        )

    def insert_new_silver(
        self,
        rows: DataFrame,
        dates: list[date],
        txn: Txn,
        *,
        dates_are_new: bool = False,
        valid_rows: int | None = None,
    ) -> WriteResult:
        """Insert-only MERGE on ``event_id``, pruned by ``event_date``; a known event is left alone.

        With ``dates_are_new`` (silver holds no row on any of ``dates``: see
        :meth:`silver_has_dates`), the rows are appended: the same outcome without the join.
        ``valid_rows`` (the batch's valid rows before deduplication) is recorded with the commit.
        """
        if dates_are_new:
            result = self._append(self.lake.silver_table, rows, txn, valid_rows)
            self._note_silver_rows(dates, result)
            return result
        merger = (
            self._delta(self.lake.silver_table)
            .alias("t")
            .merge(
                rows.alias("s"),
                f"{_on(['event_id', SILVER_PARTITION_COLUMN])} AND t.{SILVER_PARTITION_COLUMN} IN "
                f"({_date_list(dates)})",
            )
            .whenNotMatchedInsertAll()
        )
        result = self._execute(merger, txn, valid_rows)
        self._note_silver_rows(dates, result)
        return result

    def append_quarantine(self, rows: DataFrame, txn: Txn | None) -> WriteResult:
        """Insert rejected rows not already quarantined (keyed by file, partition, sequence, text)."""
        merger = (
            self._delta(self.lake.quarantine_table)
            .alias("t")
            .merge(rows.alias("s"), _on_null_safe(QUARANTINE_KEY))
            .whenNotMatchedInsertAll()
        )
        return self._execute(merger, txn)

    def merge_gold(
        self,
        rows: DataFrame,
        txn: Txn | None,
        replace: tuple[date, date] | None = None,
        *,
        windows_are_new: bool = False,
    ) -> WriteResult:
        """MERGE recomputed windows on the key; update only windows whose values changed.

        With ``replace``, gold windows starting in that date range that ``rows`` lacks are deleted.
        With ``windows_are_new`` (gold cannot hold any of these windows yet: silver had no row on
        their dates), the rows are appended: the same outcome without the join.
        """
        if windows_are_new and txn is not None and replace is None:
            return self._append(self.lake.gold_table, rows, txn)
        merger = (
            self._delta(self.lake.gold_table)
            .alias("t")
            .merge(rows.alias("s"), _on(GOLD_KEY))
            .whenMatchedUpdateAll(condition=_changed(GOLD_VALUE_COLUMNS))
            .whenNotMatchedInsertAll()
        )
        if replace is not None:
            low, high = _day_bounds(*replace)
            merger = merger.whenNotMatchedBySourceDelete(
                condition=(
                    f"t.window_start >= TIMESTAMP'{low.isoformat()}' "
                    f"AND t.window_start < TIMESTAMP'{high.isoformat()}'"
                )
            )
        return self._execute(merger, txn)

    def replace_silver_range(self, rows: DataFrame, start: date, end: date) -> WriteResult:
        """Make silver for event dates ``start``..``end`` equal ``rows``, touching only what differs."""
        in_range = (
            f"t.{SILVER_PARTITION_COLUMN} BETWEEN DATE'{start.isoformat()}' AND DATE'{end.isoformat()}'"
        )
        merger = (
            self._delta(self.lake.silver_table)
            .alias("t")
            .merge(rows.alias("s"), f"{_on(['event_id', SILVER_PARTITION_COLUMN])} AND {in_range}")
            # Only the event's content is corrected; the row keeps when and from where it first
            # arrived, so an unchanged event is not rewritten.
            .whenMatchedUpdate(
                condition=_changed(SILVER_CONTENT_COLUMNS),
                set={c: f"s.{c}" for c in SILVER_CONTENT_COLUMNS},
            )
            .whenNotMatchedInsertAll()
            .whenNotMatchedBySourceDelete(condition=in_range)
        )
        return self._execute(merger, None)
