"""The Delta engine adapter: where bronze comes from and how silver, quarantine and gold are written.

One interface, two implementations picked by environment:

* :class:`DatabricksEngine` - Auto Loader (``cloudFiles``) for bronze, the Delta Spark API for
  MERGE, idempotent writes through Delta's ``txnAppId``/``txnVersion``.
* :class:`LocalEngine` - Spark's file source (or the local Avro data source) for bronze, the
  ``deltalake`` package for the tables, idempotent writes through its app transactions.

Both write the same tables with the same MERGE semantics; the transforms never know which runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType

from spark.batch import ArrowCheckedBatch, CheckedBatch, Rows, SparkCheckedBatch
from spark.schemas import (
    BRONZE_AVRO_SCHEMA,
    BRONZE_JSON_SCHEMA,
    CORRUPT_RECORD_COLUMN,
    GOLD_KEY,
    GOLD_SCHEMA,
    GOLD_VALUE_COLUMNS,
    QUARANTINE_SCHEMA,
    SILVER_CONTENT_COLUMNS,
    SILVER_PARTITION_COLUMN,
    SILVER_SCHEMA,
    SOURCE_FILE_COLUMN,
)

BRONZE_FORMATS = ("jsonl", "jsonl.gz", "avro")
_AVRO_SOURCE = "weather_bronze_avro"  # spark.avro_source.FORMAT_NAME, registered in prepare()
# A malformed bronze line has no partition or sequence number: the kept text tells lines apart.
_QUARANTINE_KEY = [SOURCE_FILE_COLUMN, "partition_id", "sequence_number", "body"]


@dataclass(frozen=True)
class LakeConfig:
    """Where the job reads and writes. Tables are paths/URIs, or Unity Catalog names on Databricks."""

    bronze_path: str
    bronze_format: str
    silver_table: str
    quarantine_table: str
    gold_table: str
    checkpoint: str
    schema_location: str = ""

    def __post_init__(self) -> None:
        if self.bronze_format not in BRONZE_FORMATS:
            raise ValueError(f"bronze format must be one of {', '.join(BRONZE_FORMATS)}")


@dataclass(frozen=True)
class Txn:
    """An idempotent-write token: a write with a version at or below the table's is skipped."""

    app_id: str
    version: int


@dataclass(frozen=True)
class WriteResult:
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
    return " AND ".join(f"(t.{c} IS NOT DISTINCT FROM s.{c})" for c in columns)


def _arrow(rows: Rows, schema: StructType) -> pa.Table:
    """The rows as an Arrow table of the schema's columns (a frame is collected once)."""
    if isinstance(rows, pa.Table):
        return rows.select(schema.names)
    return rows.select(*schema.names).toArrow()


class DeltaEngine(ABC):
    """The port the job and reprocessing talk to."""

    def __init__(self, spark: SparkSession, lake: LakeConfig) -> None:
        self.spark = spark
        self.lake = lake

    @abstractmethod
    def prepare(self) -> None:
        """Create the silver, quarantine and gold tables when missing (gold with change data feed)."""

    @abstractmethod
    def read_bronze_stream(self) -> DataFrame:
        """Bronze envelope rows plus ``source_file``, as a stream."""

    @abstractmethod
    def read_bronze_batch(self, min_ingest_date: date) -> DataFrame:
        """Bronze envelope rows plus ``source_file`` from ``ingest_date`` folders on or after a date."""

    @abstractmethod
    def read_silver(self, event_dates: list[date]) -> DataFrame:
        """Silver rows of the given event dates (the current table version)."""

    def silver_has_dates(self, event_dates: list[date]) -> bool:
        """Whether silver may hold rows on any of these event dates (True when unsure)."""
        return True

    def hold(self, checked: DataFrame, window_minutes: int) -> CheckedBatch:
        """Hold a micro-batch's :func:`~spark.transforms.check_bronze` rows for its writes."""
        return SparkCheckedBatch(checked)

    @abstractmethod
    def insert_new_silver(self, rows: Rows, dates: list[date], txn: Txn) -> WriteResult:
        """Insert-only MERGE on ``event_id`` pruned by ``event_date``; a known event is left alone."""

    @abstractmethod
    def append_quarantine(self, rows: Rows, txn: Txn | None) -> WriteResult:
        """Insert rejected rows not already quarantined (keyed by file, partition, sequence, text)."""

    @abstractmethod
    def merge_gold(
        self, rows: Rows, txn: Txn | None, replace: tuple[date, date] | None = None
    ) -> WriteResult:
        """MERGE recomputed windows on the key; update only windows whose values changed.

        With ``replace``, gold windows starting in that date range that ``rows`` lacks are deleted.
        """

    @abstractmethod
    def replace_silver_range(self, rows: DataFrame, start: date, end: date) -> WriteResult:
        """Make silver for ``start``..``end`` (event dates) equal ``rows``, touching only what differs."""


# ---------------------------------------------------------------------------------------------
# Local: Spark file source + deltalake (delta-rs).


class LocalEngine(DeltaEngine):
    """Local lake folders; Delta tables written with the ``deltalake`` package."""

    def prepare(self) -> None:
        from deltalake import DeltaTable

        Path(self.lake.bronze_path).mkdir(parents=True, exist_ok=True)
        tables: list[tuple[str, StructType, list[str] | None, dict[str, str | None] | None]] = [
            (self.lake.silver_table, SILVER_SCHEMA, [SILVER_PARTITION_COLUMN], None),
            (self.lake.quarantine_table, QUARANTINE_SCHEMA, None, None),
            (self.lake.gold_table, GOLD_SCHEMA, None, {"delta.enableChangeDataFeed": "true"}),
        ]
        for uri, schema, partition_by, configuration in tables:
            DeltaTable.create(
                uri,
                schema=to_arrow_schema(schema),
                mode="ignore",
                partition_by=partition_by,
                configuration=configuration,
            )
        if self.lake.bronze_format == "avro":
            from spark import avro_source  # fastavro is a local-only dependency

            avro_source.register(self.spark)

    def _glob(self) -> str:
        return f"*.{self.lake.bronze_format}"

    def read_bronze_stream(self) -> DataFrame:
        if self.lake.bronze_format == "avro":
            manifest = str(Path(self.lake.checkpoint) / "avro_source_manifest.jsonl")
            return (
                self.spark.readStream.format(_AVRO_SOURCE)
                .option("path", self.lake.bronze_path)
                .option("manifest", manifest)
                .load()
            )
        stream = (
            self.spark.readStream.schema(BRONZE_JSON_SCHEMA)
            .option("recursiveFileLookup", "true")
            .option("pathGlobFilter", self._glob())
            .option("columnNameOfCorruptRecord", CORRUPT_RECORD_COLUMN)
            .json(self.lake.bronze_path)
        )
        return stream.select("*", F.col("_metadata.file_path").alias(SOURCE_FILE_COLUMN))

    def read_bronze_batch(self, min_ingest_date: date) -> DataFrame:
        if self.lake.bronze_format == "avro":
            return (
                self.spark.read.format(_AVRO_SOURCE)
                .option("path", self.lake.bronze_path)
                .option("minIngestDate", min_ingest_date.isoformat())
                .load()
            )
        folders = sorted(
            str(p)
            for p in Path(self.lake.bronze_path).glob("ingest_date=*")
            if p.name.removeprefix("ingest_date=") >= min_ingest_date.isoformat()
        )
        if not folders:
            empty = self.spark.createDataFrame([], BRONZE_JSON_SCHEMA)
            return empty.withColumn(SOURCE_FILE_COLUMN, F.lit(None).cast("string"))
        frame = (
            self.spark.read.schema(BRONZE_JSON_SCHEMA)
            .option("recursiveFileLookup", "true")
            .option("pathGlobFilter", self._glob())
            .option("columnNameOfCorruptRecord", CORRUPT_RECORD_COLUMN)
            .json(folders)
        )
        return frame.select("*", F.col("_metadata.file_path").alias(SOURCE_FILE_COLUMN))

    def _table(self, uri: str) -> Any:
        from deltalake import DeltaTable

        return DeltaTable(uri)

    def read_silver(self, event_dates: list[date]) -> DataFrame:
        # Read exactly the files of the current version: listing the folder would also read
        # files a MERGE has since removed.
        filters = [(SILVER_PARTITION_COLUMN, "in", [d.isoformat() for d in event_dates])]
        table = self._table(self.lake.silver_table)
        uris = table.file_uris(file_pruning_predicate=filters) if event_dates else []
        file_schema = StructType([f for f in SILVER_SCHEMA.fields if f.name != SILVER_PARTITION_COLUMN])
        if not uris:
            return self.spark.createDataFrame([], SILVER_SCHEMA)
        frame = self.spark.read.schema(file_schema).parquet(*uris)
        return frame.withColumn(SILVER_PARTITION_COLUMN, F.to_date("event_time"))

    def silver_has_dates(self, event_dates: list[date]) -> bool:
        if not event_dates:
            return False
        filters = [(SILVER_PARTITION_COLUMN, "in", [d.isoformat() for d in event_dates])]
        return bool(self._table(self.lake.silver_table).file_uris(file_pruning_predicate=filters))

    @staticmethod
    def _commit(txn: Txn | None) -> Any:
        from deltalake import CommitProperties, Transaction

        if txn is None:
            return None
        return CommitProperties(app_transactions=[Transaction(txn.app_id, txn.version)])

    def _done(self, table: Any, txn: Txn | None) -> bool:
        if txn is None:
            return False
        version = table.transaction_version(txn.app_id)
        return version is not None and version >= txn.version

    @staticmethod
    def _result(metrics: dict[str, Any]) -> WriteResult:
        return WriteResult(
            inserted=int(metrics.get("num_target_rows_inserted", 0)),
            updated=int(metrics.get("num_target_rows_updated", 0)),
            deleted=int(metrics.get("num_target_rows_deleted", 0)),
        )

    def hold(self, checked: DataFrame, window_minutes: int) -> CheckedBatch:
        # deltalake writes Arrow: one pass to Arrow answers every question the batch is asked.
        return ArrowCheckedBatch(self.spark, checked, window_minutes)

    def insert_new_silver(self, rows: Rows, dates: list[date], txn: Txn) -> WriteResult:
        from deltalake import write_deltalake

        table = self._table(self.lake.silver_table)
        if self._done(table, txn):
            return WriteResult(skipped=True)
        data = _arrow(rows, SILVER_SCHEMA)
        if data.num_rows == 0:
            return WriteResult()
        day_list = ", ".join(f"'{d.isoformat()}'" for d in dates)
        existing = table.file_uris(
            file_pruning_predicate=[(SILVER_PARTITION_COLUMN, "in", [d.isoformat() for d in dates])]
        )
        if not existing:
            # No silver yet on these dates, and the batch is deduplicated: a plain append is the
            # same insert-only outcome without the join.
            write_deltalake(table, data, mode="append", commit_properties=self._commit(txn))
            return WriteResult(inserted=data.num_rows)
        metrics = (
            table.merge(
                data,
                predicate=f"{_on(['event_id', 'event_date'])} AND t.event_date IN ({day_list})",
                source_alias="s",
                target_alias="t",
                commit_properties=self._commit(txn),
            )
            .when_not_matched_insert_all()
            .execute()
        )
        return self._result(metrics)

    def append_quarantine(self, rows: Rows, txn: Txn | None) -> WriteResult:
        table = self._table(self.lake.quarantine_table)
        if self._done(table, txn):
            return WriteResult(skipped=True)
        data = _arrow(rows, QUARANTINE_SCHEMA)
        if data.num_rows == 0:
            return WriteResult()
        metrics = (
            table.merge(
                data,
                predicate=_on_null_safe(_QUARANTINE_KEY),
                source_alias="s",
                target_alias="t",
                commit_properties=self._commit(txn),
            )
            .when_not_matched_insert_all()
            .execute()
        )
        return self._result(metrics)

    def merge_gold(
        self, rows: Rows, txn: Txn | None, replace: tuple[date, date] | None = None
    ) -> WriteResult:
        table = self._table(self.lake.gold_table)
        if self._done(table, txn):
            return WriteResult(skipped=True)
        data = _arrow(rows, GOLD_SCHEMA)
        if data.num_rows == 0 and replace is None:
            return WriteResult()
        merger = (
            table.merge(
                data,
                predicate=_on(GOLD_KEY),
                source_alias="s",
                target_alias="t",
                commit_properties=self._commit(txn),
            )
            .when_matched_update_all(predicate=_changed(GOLD_VALUE_COLUMNS))
            .when_not_matched_insert_all()
        )
        if replace is not None:
            low, high = _day_bounds(*replace)
            merger = merger.when_not_matched_by_source_delete(
                predicate=f"t.window_start >= '{low.isoformat()}' AND t.window_start < '{high.isoformat()}'"
            )
        return self._result(merger.execute())

    def replace_silver_range(self, rows: DataFrame, start: date, end: date) -> WriteResult:
        table = self._table(self.lake.silver_table)
        data = _arrow(rows, SILVER_SCHEMA)
        in_range = f"t.event_date >= '{start.isoformat()}' AND t.event_date <= '{end.isoformat()}'"
        metrics = (
            table.merge(
                data,
                predicate=f"t.event_id = s.event_id AND t.event_date = s.event_date AND {in_range}",
                source_alias="s",
                target_alias="t",
            )
            # Only the event's content is corrected; the row keeps when and from where it first
            # arrived, so an unchanged event is not rewritten.
            .when_matched_update(
                updates={c: f"s.{c}" for c in SILVER_CONTENT_COLUMNS},
                predicate=_changed(SILVER_CONTENT_COLUMNS),
            )
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(predicate=in_range)
            .execute()
        )
        return self._result(metrics)


# ---------------------------------------------------------------------------------------------
# Databricks: Auto Loader + Delta Spark API. Not runnable here (no Databricks runtime); it uses
# only documented Auto Loader options and DeltaTable/MERGE builder calls.


class DatabricksEngine(DeltaEngine):
    """Auto Loader for bronze; Delta tables by Unity Catalog name or ABFSS path."""

    def _ref(self, table: str) -> str:
        return f"delta.`{table}`" if "/" in table else table

    def _delta(self, table: str) -> Any:
        from delta.tables import DeltaTable  # provided by the Databricks runtime

        if "/" in table:
            return DeltaTable.forPath(self.spark, table)
        return DeltaTable.forName(self.spark, table)

    def prepare(self) -> None:
        for table, schema, extra in [
            (self.lake.silver_table, SILVER_SCHEMA, f"PARTITIONED BY ({SILVER_PARTITION_COLUMN})"),
            (self.lake.quarantine_table, QUARANTINE_SCHEMA, ""),
            (self.lake.gold_table, GOLD_SCHEMA, "TBLPROPERTIES (delta.enableChangeDataFeed = true)"),
        ]:
            columns = ", ".join(f"`{f.name}` {f.dataType.simpleString()}" for f in schema.fields)
            self.spark.sql(f"CREATE TABLE IF NOT EXISTS {self._ref(table)} ({columns}) USING DELTA {extra}")

    def _bronze_schema(self) -> StructType:
        return BRONZE_AVRO_SCHEMA if self.lake.bronze_format == "avro" else BRONZE_JSON_SCHEMA

    def _hints(self) -> str:
        fields = [
            f
            for f in self._bronze_schema().fields
            if f.name not in (SOURCE_FILE_COLUMN, CORRUPT_RECORD_COLUMN)
        ]
        return ", ".join(f"{f.name} {f.dataType.simpleString()}" for f in fields)

    def _file_format(self) -> str:
        return "avro" if self.lake.bronze_format == "avro" else "json"

    def _with_source(self, frame: DataFrame) -> DataFrame:
        names = [
            f.name
            for f in self._bronze_schema().fields
            if f.name in frame.columns and f.name != SOURCE_FILE_COLUMN
        ]
        return frame.select(*names, F.col("_metadata.file_path").alias(SOURCE_FILE_COLUMN))

    def read_bronze_stream(self) -> DataFrame:
        stream = (
            self.spark.readStream.format("cloudFiles")
            .option("cloudFiles.format", self._file_format())
            .option(
                "cloudFiles.schemaLocation", self.lake.schema_location or f"{self.lake.checkpoint}/_schema"
            )
            .option("cloudFiles.schemaHints", self._hints())
            .option("cloudFiles.schemaEvolutionMode", "rescue")
            .option("cloudFiles.inferColumnTypes", "true")
            .option("pathGlobFilter", f"*.{self.lake.bronze_format}")
            .option("columnNameOfCorruptRecord", CORRUPT_RECORD_COLUMN)
            .load(self.lake.bronze_path)
        )
        return self._with_source(stream)

    def read_bronze_batch(self, min_ingest_date: date) -> DataFrame:
        reader = self.spark.read.format(self._file_format()).option(
            "pathGlobFilter", f"*.{self.lake.bronze_format}"
        )
        if self.lake.bronze_format != "avro":
            reader = reader.option("columnNameOfCorruptRecord", CORRUPT_RECORD_COLUMN)
        frame = reader.load(self.lake.bronze_path).where(F.col("ingest_date") >= F.lit(min_ingest_date))
        return self._with_source(frame)

    def read_silver(self, event_dates: list[date]) -> DataFrame:
        return self.spark.table(self._ref(self.lake.silver_table)).where(
            F.col(SILVER_PARTITION_COLUMN).isin(*event_dates)
        )

    def _frame(self, rows: Rows, schema: StructType) -> DataFrame:
        # The job hands Databricks frames (SparkCheckedBatch); a table is turned back into one.
        if isinstance(rows, pa.Table):
            return self.spark.createDataFrame(rows.select(schema.names), schema)
        return rows

    def _with_txn(self, txn: Txn | None) -> None:
        # Delta skips a MERGE whose (txnAppId, txnVersion) it has already committed.
        if txn is None:
            self.spark.conf.unset("spark.databricks.delta.write.txnAppId")
            self.spark.conf.unset("spark.databricks.delta.write.txnVersion")
        else:
            self.spark.conf.set("spark.databricks.delta.write.txnAppId", txn.app_id)
            self.spark.conf.set("spark.databricks.delta.write.txnVersion", str(txn.version))

    def _run(self, merger: Any, txn: Txn | None) -> WriteResult:
        self._with_txn(txn)
        try:
            merger.execute()
        finally:
            self._with_txn(None)
        return WriteResult()

    def insert_new_silver(self, rows: Rows, dates: list[date], txn: Txn) -> WriteResult:
        rows = self._frame(rows, SILVER_SCHEMA)
        day_list = ", ".join(f"DATE'{d.isoformat()}'" for d in dates) or "NULL"
        merger = (
            self._delta(self.lake.silver_table)
            .alias("t")
            .merge(
                rows.alias("s"),
                f"t.event_id = s.event_id AND t.event_date = s.event_date AND t.event_date IN ({day_list})",
            )
            .whenNotMatchedInsertAll()
        )
        return self._run(merger, txn)

    def append_quarantine(self, rows: Rows, txn: Txn | None) -> WriteResult:
        rows = self._frame(rows, QUARANTINE_SCHEMA)
        merger = (
            self._delta(self.lake.quarantine_table)
            .alias("t")
            .merge(rows.alias("s"), _on_null_safe(_QUARANTINE_KEY))
        )
        return self._run(merger.whenNotMatchedInsertAll(), txn)

    def merge_gold(
        self, rows: Rows, txn: Txn | None, replace: tuple[date, date] | None = None
    ) -> WriteResult:
        rows = self._frame(rows, GOLD_SCHEMA)
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
        return self._run(merger, txn)

    def replace_silver_range(self, rows: DataFrame, start: date, end: date) -> WriteResult:
        in_range = f"t.event_date BETWEEN DATE'{start.isoformat()}' AND DATE'{end.isoformat()}'"
        merger = (
            self._delta(self.lake.silver_table)
            .alias("t")
            .merge(rows.alias("s"), f"t.event_id = s.event_id AND t.event_date = s.event_date AND {in_range}")
            .whenMatchedUpdate(
                condition=_changed(SILVER_CONTENT_COLUMNS),
                set={c: f"s.{c}" for c in SILVER_CONTENT_COLUMNS},
            )
            .whenNotMatchedInsertAll()
            .whenNotMatchedBySourceDelete(condition=in_range)
        )
        return self._run(merger, None)


def on_databricks(spark: SparkSession) -> bool:
    """True on a Databricks cluster (its runtime sets the cluster usage tags in the Spark conf)."""
    return bool(spark.conf.get("spark.databricks.clusterUsageTags.clusterId", None))


def pick_engine(spark: SparkSession, lake: LakeConfig, engine: str = "auto") -> DeltaEngine:
    """The adapter for where we run: ``databricks``, ``local``, or ``auto`` (detect)."""
    if engine == "auto":
        engine = "databricks" if on_databricks(spark) else "local"
    if engine not in ("databricks", "local"):
        raise ValueError(f"engine must be auto, databricks or local, got {engine!r}")
    return DatabricksEngine(spark, lake) if engine == "databricks" else LocalEngine(spark, lake)
