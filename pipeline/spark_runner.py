"""Run the Spark job and reprocessing locally: settings -> job options -> spark/ functions.

The local lake's folders and tables come from settings; the code that runs is the same job the
Databricks bundle deploys, Delta Lake on Spark included. Only bronze comes from Spark's file
source here instead of Auto Loader.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date
from typing import Any

from pyspark.sql import SparkSession

from pipeline.spark_session import local_spark_session, quiet
from settings import Settings
from spark.bronze_source import FileSource
from spark.delta_tables import DeltaTables
from spark.job import JobOptions, run_stream
from spark.lake import LakeConfig
from spark.reprocess import reprocess_range

_session_lock = threading.Lock()


def lake_config(settings: Settings) -> LakeConfig:
    """Where the local job reads bronze and writes its tables."""
    bronze = settings.local_lake_path / settings.bronze_container / settings.bronze_stream
    return LakeConfig(
        bronze_path=str(bronze),
        bronze_format=settings.bronze_format,
        silver_table=settings.silver_table_uri,
        quarantine_table=settings.silver_quarantine_table_uri,
        gold_table=settings.gold_table_uri,
        checkpoint=settings.checkpoint_location,
    )


def spark_session() -> SparkSession:
    """The process's one local SparkSession (quiet: errors only, no stage bars)."""
    with _session_lock:
        spark = local_spark_session()
        quiet(spark)
        return spark


def run_spark(
    settings: Settings,
    available_now: bool = True,
    stop: threading.Event | None = None,
    on_batch: Callable[[dict[str, int]], None] | None = None,
) -> dict[str, Any]:
    """Run the streaming job on the local lake.

    Args:
        settings: Paths, bronze format, window size and trigger interval.
        available_now: Process every bronze file present, then return; else a processing-time
            trigger every ``spark_trigger_seconds`` until ``stop`` is set.
        stop: Ends a continuous run.
        on_batch: Called with each micro-batch's counts.

    Returns:
        Totals over the run (batches, bronze rows, silver inserts, quarantined, gold changes).
    """
    options = JobOptions(
        lake=lake_config(settings),
        window_minutes=settings.window_minutes,
        trigger_seconds=None if available_now else settings.spark_trigger_seconds,
        bronze_source="files",
        stall_timeout_seconds=settings.spark_stall_timeout_seconds,
    )
    return run_stream(spark_session(), options, stop=stop or threading.Event(), on_batch=on_batch)


def reprocess(settings: Settings, start: date, end: date) -> dict[str, Any]:
    """Rebuild silver and gold for event dates ``start``..``end`` from the local bronze."""
    spark, lake = spark_session(), lake_config(settings)
    tables = DeltaTables(spark, lake, settings.window_minutes)
    return reprocess_range(FileSource(spark, lake), tables, start, end)
