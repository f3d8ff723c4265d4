"""The two ways of holding a micro-batch give the same rows: Arrow (local) and cached frames (Databricks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from pyspark.sql import types as T

from spark.batch import ArrowCheckedBatch, SparkCheckedBatch, dedupe_arrow
from spark.schemas import BRONZE_JSON_SCHEMA, QUARANTINE_SCHEMA, SILVER_SCHEMA
from spark.testing import envelope, weather_body
from spark.transforms import check_bronze, dedupe_events

pytestmark = [pytest.mark.spark, pytest.mark.integration]

PROCESSED = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)
WITH_FILE = T.StructType([*BRONZE_JSON_SCHEMA.fields, T.StructField("source_file", T.StringType())])


def bronze(spark: Any, records: list[dict[str, Any]], corrupt: tuple[str, ...] = ()) -> Any:
    keys = [f.name for f in BRONZE_JSON_SCHEMA.fields if f.name != "_corrupt_record"]
    rows: list[tuple[Any, ...]] = [
        (
            *[r[k].decode() if k == "Body" else r[k] for k in keys],
            None,
            f"file:/lake/b/{r['PartitionId']}.jsonl",
        )
        for r in records
    ]
    rows += [(None,) * len(keys) + (line, "file:/lake/b/x.jsonl") for line in corrupt]
    return spark.createDataFrame(rows, WITH_FILE)


def rows_of(held: Any, name: str, schema: T.StructType) -> list[tuple[Any, ...]]:
    """A held batch's rows as sorted tuples, whichever way it holds them."""
    value = getattr(held, name)
    table = value if isinstance(value, pa.Table) else value.select(*schema.names).toArrow()
    assert table.column_names == schema.names
    return sorted(tuple(map(repr, row.values())) for row in table.to_pylist())


def record(body: Any, seq: int, *, partition: str = "0", enqueued: datetime = T0) -> dict[str, Any]:
    return envelope(body, partition_id=partition, sequence_number=seq, enqueued_time=enqueued)


def test_the_arrow_batch_holds_the_same_silver_quarantine_dates_and_counts_as_the_spark_batch(
    spark: Any,
) -> None:
    dup = weather_body("Oslo", T0, event_id="dup")
    records = [
        record(weather_body("Oslo", T0 - timedelta(days=1), event_id="a", firmware="2"), 0),
        record(weather_body("Bergen", T0, event_id="b"), 1),
        # Three copies of one event: the first enqueued wins, then the lowest partition.
        record(dup, 2, partition="3", enqueued=T0 + timedelta(minutes=2)),
        record(dup, 7, partition="2", enqueued=T0 + timedelta(minutes=1)),
        record(dup, 5, partition="1", enqueued=T0 + timedelta(minutes=1)),
        record(b'{"eventId": "bad", "location": ""}', 3),
        record(b"not json", 4),
    ]
    frame = bronze(spark, records, corrupt=('{"SequenceNumber": 9, "Bo',))

    arrow = ArrowCheckedBatch(spark, check_bronze(frame, PROCESSED), 5)
    cached = SparkCheckedBatch(check_bronze(frame, PROCESSED))
    try:
        assert rows_of(arrow, "silver", SILVER_SCHEMA) == rows_of(cached, "silver", SILVER_SCHEMA)
        assert rows_of(arrow, "rejected", QUARANTINE_SCHEMA) == rows_of(cached, "rejected", QUARANTINE_SCHEMA)
        assert arrow.dates() == cached.dates() == [T0.date() - timedelta(days=1), T0.date()]
        assert arrow.bronze_rows() == cached.bronze_rows() == 8
        assert isinstance(arrow.silver, pa.Table)
        kept = {r["event_id"]: r["partition_id"] for r in arrow.silver.to_pylist()}
        assert kept == {"a": "0", "b": "0", "dup": "1"}
        assert sorted(r[0] for r in arrow.silver_frame(["event_id"]).collect()) == ["a", "b", "dup"]
    finally:
        arrow.release()
        cached.release()


def test_an_all_valid_batch_takes_the_no_copy_split_with_the_same_rows(spark: Any) -> None:
    records = [record(weather_body("Oslo", T0 + timedelta(minutes=i), event_id=f"e{i}"), i) for i in range(4)]
    frame = bronze(spark, records)
    arrow = ArrowCheckedBatch(spark, check_bronze(frame, PROCESSED), 5)
    cached = SparkCheckedBatch(check_bronze(frame, PROCESSED))
    try:
        assert rows_of(arrow, "silver", SILVER_SCHEMA) == rows_of(cached, "silver", SILVER_SCHEMA)
        assert len(rows_of(arrow, "silver", SILVER_SCHEMA)) == 4
        assert (
            rows_of(arrow, "rejected", QUARANTINE_SCHEMA)
            == rows_of(cached, "rejected", QUARANTINE_SCHEMA)
            == []
        )
    finally:
        arrow.release()
        cached.release()


def test_arrow_dedupe_keeps_the_row_spark_keeps_including_null_ordering_keys(spark: Any) -> None:
    at = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)
    rows = [
        ("x", at, "2", 5),
        ("x", None, "9", 9),  # no enqueued time: sorts first, as in Spark
        ("y", at, None, 3),
        ("y", at, "1", 1),  # no partition id sorts first: the row above wins
        ("z", at, "1", None),
        ("z", at, "1", 0),
        ("w", at, "1", 1),
    ]
    schema = T.StructType(
        [
            T.StructField("event_id", T.StringType()),
            T.StructField("enqueued_time", T.TimestampType()),
            T.StructField("partition_id", T.StringType()),
            T.StructField("sequence_number", T.LongType()),
        ]
    )
    frame = spark.createDataFrame(rows, schema)
    expected = sorted(tuple(r.values()) for r in dedupe_events(frame).toArrow().to_pylist())
    actual = sorted(tuple(r.values()) for r in dedupe_arrow(frame.toArrow()).to_pylist())
    assert actual == expected
    assert [r[1:] for r in actual if r[0] in "xyz"] == [(None, "9", 9), (at, None, 3), (at, "1", None)]


def test_arrow_gold_is_bit_identical_to_spark_gold_ties_duplicates_and_awkward_decimals_included(
    spark: Any,
) -> None:
    import random

    rng = random.Random(11)
    temps = [0.1, 0.2, 0.3, -0.1, 12.345678901, -89.99, 59.5, 1e-10, 2.5e-10, 33.3]
    bodies = []
    for i in range(400):
        bodies.append(
            weather_body(
                rng.choice(["Oslo", "Bergen", "Ålesund"]),
                T0 - timedelta(minutes=rng.randrange(0, 180), seconds=rng.randrange(60)),
                event_id=f"e{i % 370}",  # 30 duplicates
                temperature=rng.choice(temps),
                humidity=rng.choice([0.1, 50.05, 99.99, 100.0]),
                wind_speed=rng.choice([0.0, 0.3, 7.77]),
                wind_direction=rng.choice(["N", "NE", "S"]),  # few values per window: ties
                precipitation=rng.choice([0.0, 0.1, 0.7]),
                conditions=rng.choice(["Rain", "Clear"]),
            )
        )
    records = [
        record(b, i, partition=str(i % 3), enqueued=T0 + timedelta(seconds=i % 7))
        for i, b in enumerate(bodies)
    ]
    frame = bronze(spark, records)
    for minutes in (5, 15):
        arrow = ArrowCheckedBatch(spark, check_bronze(frame, PROCESSED), minutes)
        cached = SparkCheckedBatch(check_bronze(frame, PROCESSED))
        try:
            arrow_gold, arrow_windows = arrow.gold(minutes, PROCESSED)
            spark_gold, spark_windows = cached.gold(minutes, PROCESSED)
            assert arrow_windows == spark_windows > 10
            assert rows_of_table(arrow_gold) == rows_of_table(spark_gold)
        finally:
            arrow.release()
            cached.release()


def rows_of_table(rows: Any) -> list[tuple[str, ...]]:
    """Gold rows as sorted tuples of reprs: doubles compare bit for bit (repr round-trips)."""
    from spark.schemas import GOLD_SCHEMA

    table = rows if isinstance(rows, pa.Table) else rows.select(*GOLD_SCHEMA.names).toArrow()
    assert table.schema.names == GOLD_SCHEMA.names
    return sorted(tuple(map(repr, row.values())) for row in table.to_pylist())
