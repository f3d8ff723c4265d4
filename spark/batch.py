"""A micro-batch's checked rows, held while the job writes them (port ``CheckedBatch``).

The job asks the same questions of every batch: its deduplicated silver rows, its rejected rows,
their event dates, how many bronze rows it had, and the silver rows again as a Spark frame for
gold. Two ways to hold the answers, picked by the engine:

* :class:`SparkCheckedBatch` keeps the rows as cached Spark frames (Databricks: the Delta writes
  take frames, and a batch may not fit the driver);
* :class:`ArrowCheckedBatch` converts the checked batch to Arrow once and answers the rest with
  ``pyarrow.compute`` (local: ``deltalake`` writes Arrow anyway, so one Spark pass replaces a
  cache plus a Spark job per question).

Both give the same rows: the Arrow side filters the Spark-computed columns of
:func:`spark.transforms.flat_checked` and deduplicates with the order of
:func:`spark.transforms.dedupe_events`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import date
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from spark.schemas import QUARANTINE_SCHEMA, SILVER_SCHEMA
from spark.transforms import (
    QUARANTINE_ONLY_COLUMNS,
    VALID_COLUMN,
    dedupe_events,
    flat_checked,
    has_duplicate_ids,
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
        """The silver rows' ``columns`` as a Spark frame (to aggregate gold or find windows)."""

    @abstractmethod
    def release(self) -> None:
        """Free what the batch holds."""


class SparkCheckedBatch(CheckedBatch):
    """Cached Spark frames: the checked batch, and its deduplicated silver rows."""

    def __init__(self, checked: DataFrame) -> None:
        self._checked = checked.persist()
        valid, self.rejected = split_checked(self._checked)
        self.silver = (dedupe_events(valid) if has_duplicate_ids(valid) else valid).persist()

    def dates(self) -> list[date]:
        return sorted(row[0] for row in self.silver.select("event_date").distinct().collect())

    def bronze_rows(self) -> int:
        return self._checked.count()

    def silver_frame(self, columns: list[str]) -> DataFrame:
        return self.silver.select(*columns)

    def release(self) -> None:
        self.silver.unpersist()
        self._checked.unpersist()


def split_arrow(flat: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Split a :func:`~spark.transforms.flat_checked` table into ``(valid, rejected)`` tables."""
    valid = flat[VALID_COLUMN]
    silver = flat.filter(valid).select(SILVER_SCHEMA.names)
    names = [QUARANTINE_ONLY_COLUMNS.get(name, name) for name in QUARANTINE_SCHEMA.names]
    rejected = flat.filter(pc.invert(valid)).select(names).rename_columns(QUARANTINE_SCHEMA.names)
    return silver, rejected


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


class ArrowCheckedBatch(CheckedBatch):
    """The checked batch as Arrow tables, from one Spark pass (``toArrow``)."""

    def __init__(self, spark: SparkSession, checked: DataFrame) -> None:
        self._spark = spark
        flat = flat_checked(checked).toArrow()
        self._bronze_rows = flat.num_rows
        silver, self.rejected = split_arrow(flat)
        self.silver = dedupe_arrow(silver) if has_duplicate_ids_arrow(silver) else silver

    def dates(self) -> list[date]:
        return sorted(pc.unique(self.silver["event_date"]).to_pylist())

    def bronze_rows(self) -> int:
        return self._bronze_rows

    def silver_frame(self, columns: list[str]) -> DataFrame:
        schema = StructType([SILVER_SCHEMA[name] for name in columns])
        frame = self._spark.createDataFrame(self.silver.select(columns), schema)
        # createDataFrame makes a partition per Arrow batch (~100 for 1M rows); aggregating that
        # many partitions serialises a partial mode() buffer per window per partition (gold took
        # 2x as long). One partition per core is enough for rows already in memory.
        return frame.coalesce(self._spark.sparkContext.defaultParallelism)

    def release(self) -> None:
        # The tables can be large; let them go before the next micro-batch.
        self.silver = self.rejected = pa.table({})
