"""The job's Delta tables as Delta Lake on Spark writes them, and as the sync Function reads them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from pyspark.sql import functions as F

from functions.gold_source import DeltaGoldSource
from pipeline.layers import spark_figures
from settings import load_settings
from spark.bronze_source import FileSource
from spark.delta_tables import WINDOW_MINUTES_PROPERTY, DeltaTables, WindowSizeMismatchError
from spark.job import process_batch
from spark.lake import LakeConfig
from tests.fixtures.bronze_files import envelope, lake_at, weather_body, write_bronze_file

pytestmark = [pytest.mark.spark, pytest.mark.integration]

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def bronze_file(lake: LakeConfig, bodies: list[Any], first_seq: int = 0, partition: str = "0") -> None:
    records = [
        envelope(
            body,
            partition_id=partition,
            sequence_number=first_seq + i,
            enqueued_time=T0 + timedelta(minutes=1),
        )
        for i, body in enumerate(bodies)
    ]
    write_bronze_file(Path(lake.bronze_path).parent, "weather", records, lake.bronze_format)


def read_bronze(spark: Any, lake: LakeConfig) -> Any:
    return FileSource(spark, lake).read_batch(T0.date())


def versions(lake: LakeConfig) -> list[int]:
    return [DeltaTable(t).version() for t in (lake.silver_table, lake.quarantine_table, lake.gold_table)]


@contextmanager
def session_defaults(spark: Any, **properties: str) -> Iterator[None]:
    """New Delta tables' default properties, as a platform sets them (Databricks: deletion vectors)."""
    keys = {f"spark.databricks.delta.properties.defaults.{k}": v for k, v in properties.items()}
    for key, value in keys.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key in keys:
            spark.conf.unset(key)


def test_a_replayed_micro_batch_writes_nothing_because_delta_knows_its_transaction(
    spark: Any, tmp_path: Path
) -> None:
    settings = load_settings(environ={"PIPELINE_HOME": str(tmp_path)})
    lake = lake_at(tmp_path / "lake")
    tables = DeltaTables(spark, lake, window_minutes=5)
    tables.prepare()
    bronze_file(lake, [weather_body("Oslo", T0, event_id=f"a{i}") for i in range(5)] + [b"not json"])
    first = process_batch(tables, read_bronze(spark, lake), 0, window_minutes=5, app_id="q")
    before = versions(lake)

    # The same batch id again, now with rows a MERGE would insert: Delta's transaction
    # identifiers skip all three writes, so it is not the MERGE conditions that keep it out.
    bronze_file(lake, [weather_body("Rome", T0, event_id="b0"), b"[]"], first_seq=6)
    replay = process_batch(tables, read_bronze(spark, lake), 0, window_minutes=5, app_id="q")

    assert (first["silver_inserted"], first["quarantined"], first["gold_inserted"]) == (5, 1, 1)
    assert replay["replayed_writes_skipped"] == 3 and replay["silver_inserted"] == 0
    assert versions(lake) == before
    assert (
        "b0" not in DeltaTable(lake.silver_table).to_pyarrow_table(columns=["event_id"]).column(0).to_pylist()
    )

    following = process_batch(tables, read_bronze(spark, lake), 1, window_minutes=5, app_id="q")

    assert (following["silver_inserted"], following["duplicates_skipped"], following["quarantined"]) == (
        1,
        5,
        1,
    )
    assert following["gold_inserted"] == 1 and following["replayed_writes_skipped"] == 0
    # What status shows comes from the same metrics, as the tables' history keeps them.
    figures = spark_figures(settings)
    assert (figures.silver_inserted, figures.duplicates_skipped, figures.quarantined) == (6, 5, 2)
    assert (figures.gold_inserted, figures.gold_windows_merged, figures.commits) == (2, 2, 6)


def test_tables_keep_deletion_vectors_off_whatever_the_platform_defaults_and_gold_its_feed_and_window(
    spark: Any, tmp_path: Path
) -> None:
    lake = lake_at(tmp_path)
    tables = DeltaTables(spark, lake, window_minutes=10)
    with session_defaults(spark, enableDeletionVectors="true"):
        tables.prepare()

    for table in (lake.silver_table, lake.quarantine_table, lake.gold_table):
        assert tables.table_properties(table)["delta.enableDeletionVectors"] == "false"
    assert (
        tables.table_properties(lake.silver_table)["delta.dataSkippingStatsColumns"] == "event_id,event_time"
    )
    gold = tables.table_properties(lake.gold_table)
    assert gold["delta.enableChangeDataFeed"] == "true" and gold[WINDOW_MINUTES_PROPERTY] == "10"
    assert "deletionVectors" not in (DeltaTable(lake.gold_table).protocol().reader_features or [])


def test_gold_built_with_another_window_size_is_refused_with_what_to_do(spark: Any, tmp_path: Path) -> None:
    lake = lake_at(tmp_path)
    DeltaTables(spark, lake, window_minutes=5).prepare()

    with pytest.raises(WindowSizeMismatchError, match="holds 5-minute windows, but WINDOW_MINUTES is 10"):
        DeltaTables(spark, lake, window_minutes=10).prepare()
    DeltaTables(spark, lake, window_minutes=5).prepare()  # the same size is fine


def gold_changes(lake: LakeConfig, after: int = -1) -> Any:
    read = DeltaGoldSource(lake.gold_table).read_changes(after)
    assert read is not None
    return read


def test_the_sync_reader_reads_gold_the_job_updated_by_merge_through_its_change_feed(
    spark: Any, tmp_path: Path
) -> None:
    lake = lake_at(tmp_path)
    with session_defaults(spark, enableDeletionVectors="true"):
        tables = DeltaTables(spark, lake, window_minutes=5)
        tables.prepare()
        # Enough rows per file that an update rewrites part of one (where deletion vectors would go).
        bodies = [weather_body("Oslo", T0 + timedelta(seconds=i), event_id=f"a{i}") for i in range(60)]
        bronze_file(lake, bodies)
        process_batch(tables, read_bronze(spark, lake), 0, window_minutes=5, app_id="q")
        synced = gold_changes(lake).to_version
        bronze_file(lake, [weather_body("Oslo", T0, event_id="late", temperature=-30.0)], first_seq=60)
        process_batch(tables, read_bronze(spark, lake), 1, window_minutes=5, app_id="q")

    changes = gold_changes(lake, synced)

    assert changes.mode == "cdf"
    assert sorted((r["location"], r["event_count"], r["_change_type"]) for r in changes.rows) == [
        ("Oslo", 60, "update_preimage"),
        ("Oslo", 61, "update_postimage"),
    ]


def test_gold_with_deletion_vectors_is_what_the_sync_reader_cannot_read(spark: Any, tmp_path: Path) -> None:
    # Why the job turns them off: the same MERGE on a table that has them leaves a table the
    # deltalake reader (the sync Function's) refuses.
    path = str(tmp_path / "gold_dv")
    spark.range(200).select(F.col("id").cast("string").alias("k"), F.lit(1).alias("v")).coalesce(
        1
    ).write.format("delta").option("delta.enableDeletionVectors", "true").save(path)
    from delta.tables import DeltaTable as SparkDeltaTable

    source = spark.createDataFrame([("7", 2)], "k string, v int")
    SparkDeltaTable.forPath(spark, path).alias("t").merge(
        source.alias("s"), "t.k = s.k"
    ).whenMatchedUpdateAll().execute()
    metrics = SparkDeltaTable.forPath(spark, path).history(1).collect()[0]["operationMetrics"]
    assert int(metrics["numTargetDeletionVectorsAdded"]) >= 1

    with pytest.raises(Exception, match="deletionVectors"):
        DeltaGoldSource(path).read_changes(-1)
