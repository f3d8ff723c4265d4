"""A micro-batch's checked rows, held while the job writes them (port ``CheckedBatch``).

The job asks the same questions of every batch: its deduplicated silver rows, its rejected rows,
their event dates, how many bronze rows it had, the gold of its windows, and the silver rows
again as a Spark frame (to find the windows to recompute from silver). Two ways to hold the
answers, picked by the engine:

* :class:`SparkCheckedBatch` keeps the rows as cached Spark frames (Databricks: the Delta writes
  take frames, and a batch may not fit the driver);
* :class:`ArrowCheckedBatch` converts the checked batch to Arrow once and answers the rest with
  ``pyarrow.compute`` (local: ``deltalake`` writes Arrow anyway, so one Spark pass replaces a
  cache plus a Spark job per question).

Both give the same rows: the Arrow side filters the Spark-computed columns of
:func:`spark.transforms.flat_checked`, deduplicates with the order of
:func:`spark.transforms.dedupe_events`, and aggregates gold from Spark-computed window starts and
fixed-point integers (:func:`gold_arrow`; tests/integration/test_spark_batch.py compares each
answer with the Spark one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import date, datetime, timedelta
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import StructType

from spark.schemas import GOLD_SCHEMA, QUARANTINE_SCHEMA, SILVER_SCHEMA
from spark.transforms import (
    _FIXED_POINT,
    FIXED_POINT_COLUMNS,
    QUARANTINE_ONLY_COLUMNS,
    VALID_COLUMN,
    WINDOW_START_COLUMN,
    dedupe_events,
    fixed_point_column,
    flat_checked,
    has_duplicate_ids,
    silver_to_gold,
    split_checked,
)

#: Rows handed to the engine's writes: a Spark frame, or an Arrow table with the same columns.
Rows: TypeAlias = DataFrame | pa.Table

# dedupe_events' order: first enqueued, then lowest partition and sequence number (nulls first,
# as Spark sorts ascending).
_FIRST = ["enqueued_time", "partition_id", "sequence_number"]


class CheckedBatch(ABC):
    """The checked rows of one micro-batch; :meth:`release` when the batch's writes are done."""

    silver: Rows
    """Valid rows in ``SILVER_SCHEMA``, one per ``event_id``."""
    rejected: Rows
    """Rejected rows in ``QUARANTINE_SCHEMA``."""

    @abstractmethod
    def dates(self) -> list[date]:
        """The distinct ``event_date`` values of the silver rows, sorted."""

    @abstractmethod
    def bronze_rows(self) -> int:
        """How many bronze rows the batch had (valid, rejected and duplicates)."""

    @abstractmethod
    def silver_frame(self, columns: list[str]) -> DataFrame:
        """The silver rows' ``columns`` as a Spark frame (to find the windows they touch)."""

    @abstractmethod
    def gold(self, window_minutes: int, updated_at: datetime) -> tuple[Rows, int]:
        """:func:`~spark.transforms.silver_to_gold` of the silver rows, and how many windows."""

    @abstractmethod
    def release(self) -> None:
        """Free what the batch holds."""


class SparkCheckedBatch(CheckedBatch):
    """Cached Spark frames: the checked batch, and its deduplicated silver rows."""

    def __init__(self, checked: DataFrame) -> None:
        self._checked = checked.persist()
        self._gold: DataFrame | None = None
        valid, self.rejected = split_checked(self._checked)
        self.silver = (dedupe_events(valid) if has_duplicate_ids(valid) else valid).persist()

    def dates(self) -> list[date]:
        return sorted(row[0] for row in self.silver.select("event_date").distinct().collect())

    def bronze_rows(self) -> int:
        return self._checked.count()

    def silver_frame(self, columns: list[str]) -> DataFrame:
        return self.silver.select(*columns)

    def gold(self, window_minutes: int, updated_at: datetime) -> tuple[Rows, int]:
        self._gold = silver_to_gold(self.silver, window_minutes, updated_at).persist()
        return self._gold, self._gold.count()

    def release(self) -> None:
        if self._gold is not None:
            self._gold.unpersist()
        self.silver.unpersist()
        self._checked.unpersist()


def split_arrow(flat: pa.Table, extra: list[str] | None = None) -> tuple[pa.Table, pa.Table]:
    """Split a :func:`~spark.transforms.flat_checked` table into ``(valid, rejected)`` tables
    (valid: the silver columns, then the ``extra`` ones)."""
    valid = flat[VALID_COLUMN]
    silver = flat.select([*SILVER_SCHEMA.names, *(extra or [])])
    names = [QUARANTINE_ONLY_COLUMNS.get(name, name) for name in QUARANTINE_SCHEMA.names]
    rejected = flat.select(names).rename_columns(QUARANTINE_SCHEMA.names)
    if valid.null_count == 0 and pc.all(valid).as_py():
        return silver, rejected.slice(0, 0)  # the usual batch: no copy of a million valid rows
    return silver.filter(valid), rejected.filter(pc.invert(valid))


def has_duplicate_ids_arrow(silver: pa.Table) -> bool:
    """Whether any ``event_id`` occurs twice."""
    return bool(pc.count_distinct(silver["event_id"], mode="all").as_py() < silver.num_rows)


def dedupe_arrow(silver: pa.Table) -> pa.Table:
    """:func:`~spark.transforms.dedupe_events` on an Arrow table: the first row per ``event_id``."""
    keys = ["event_id", *_FIRST]
    order = pc.sort_indices(silver, sort_keys=[(name, "ascending", "at_start") for name in keys])
    ranked = silver.take(order)
    ids = ranked["event_id"].combine_chunks()
    if len(ids) < 2:
        return ranked
    # A row is the first of its id when the id differs from the row before; nulls are one id,
    # as in Spark's window partitions.
    later, earlier = ids[1:], ids[:-1]
    same = pc.or_kleene(pc.equal(later, earlier), pc.and_(pc.is_null(later), pc.is_null(earlier)))
    first = pa.concat_arrays([pa.array([True]), pc.invert(pc.fill_null(same, False))])
    return ranked.filter(first)


def _mode(rows: pa.Table, keys: list[str], column: str) -> pa.Table:
    """``mode(column, deterministic=true)`` per key: the most frequent value, ties to the least
    (bytewise, as Spark orders strings), nulls ignored."""
    present = rows.filter(pc.is_valid(rows[column]))
    counts = present.group_by([*keys, column]).aggregate([([], "count_all")])
    ranked = counts.sort_by(
        [*[(k, "ascending") for k in keys], ("count_all", "descending"), (column, "ascending")]
    )
    return ranked.group_by(keys, use_threads=False).aggregate([(column, "first")])


def gold_arrow(rows: pa.Table, window_minutes: int) -> pa.Table:
    """:func:`~spark.transforms.silver_to_gold` over silver rows carrying
    :func:`~spark.transforms.gold_inputs` (window start and fixed-point values computed by Spark).

    Sums are of the same integers, so they are exact and equal; averages divide them as Spark
    does (double by double); ``updated_at`` is the rows' ``processed_at``, the micro-batch time.
    """
    keys = ["location", WINDOW_START_COLUMN]
    fixed = [fixed_point_column(name) for name in FIXED_POINT_COLUMNS]
    groups = rows.group_by(keys).aggregate(
        [
            ([], "count_all"),
            *[(name, "sum") for name in fixed],
            ("temperature", "min"),
            ("temperature", "max"),
            ("wind_speed", "max"),
            ("processed_at", "min"),
        ]
    )
    for column in ("wind_direction", "conditions"):
        groups = groups.join(_mode(rows, keys, column), keys, join_type="left outer")
    count = groups["count_all"].cast(pa.float64())

    def total(name: str) -> pa.ChunkedArray:
        return pc.divide(groups[f"{fixed_point_column(name)}_sum"].cast(pa.float64()), float(_FIXED_POINT))

    def average(name: str) -> pa.ChunkedArray:
        return pc.divide(
            pc.divide(groups[f"{fixed_point_column(name)}_sum"].cast(pa.float64()), count),
            float(_FIXED_POINT),
        )

    start = groups[WINDOW_START_COLUMN]
    columns = {
        "location": groups["location"],
        "window_start": start,
        "window_end": pc.add(start, pa.scalar(timedelta(minutes=window_minutes), pa.duration("us"))),
        "event_count": groups["count_all"],
        "avg_temperature": average("temperature"),
        "min_temperature": groups["temperature_min"],
        "max_temperature": groups["temperature_max"],
        "avg_humidity": average("humidity"),
        "avg_wind_speed": average("wind_speed"),
        "max_wind_speed": groups["wind_speed_max"],
        "total_precipitation": total("precipitation"),
        "dominant_wind_direction": groups["wind_direction_first"],
        "dominant_conditions": groups["conditions_first"],
        "updated_at": groups["processed_at_min"],
    }
    return pa.table(columns).cast(to_arrow_schema(GOLD_SCHEMA))


class ArrowCheckedBatch(CheckedBatch):
    """The checked batch as Arrow tables, from one Spark pass (``toArrow``)."""

    def __init__(self, spark: SparkSession, checked: DataFrame, window_minutes: int) -> None:
        self._spark = spark
        self._window_minutes = window_minutes
        flat = flat_checked(checked, window_minutes).toArrow()
        self._bronze_rows = flat.num_rows
        extra = [WINDOW_START_COLUMN, *[fixed_point_column(name) for name in FIXED_POINT_COLUMNS]]
        valid, self.rejected = split_arrow(flat, extra)
        if has_duplicate_ids_arrow(valid):
            valid = dedupe_arrow(valid)
        self.silver = valid.select(SILVER_SCHEMA.names)
        self._gold_rows = valid.select(
            ["location", "temperature", "wind_speed", "wind_direction", "conditions", "processed_at", *extra]
        )

    def dates(self) -> list[date]:
        return sorted(pc.unique(self.silver["event_date"]).to_pylist())

    def bronze_rows(self) -> int:
        return self._bronze_rows

    def silver_frame(self, columns: list[str]) -> DataFrame:
        schema = StructType([SILVER_SCHEMA[name] for name in columns])
        frame = self._spark.createDataFrame(self.silver.select(columns), schema)
        # createDataFrame makes a partition per Arrow batch (~100 for 1M rows); aggregating that
        # many partitions (distinct windows, silver_to_gold) costs far more than the rows do.
        # One partition per core is enough for rows already in memory.
        return frame.coalesce(self._spark.sparkContext.defaultParallelism)

    def gold(self, window_minutes: int, updated_at: datetime) -> tuple[Rows, int]:
        # The window starts were computed for the window size given when the batch was held.
        if window_minutes != self._window_minutes:
            raise ValueError(f"batch held for {self._window_minutes}-minute windows, not {window_minutes}")
        table = gold_arrow(self._gold_rows, window_minutes)
        return table, table.num_rows

    def release(self) -> None:
        # The tables can be large; let them go before the next micro-batch.
        self.silver = self.rejected = self._gold_rows = pa.table({})
