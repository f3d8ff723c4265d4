"""SparkSession for local runs and tests; on Databricks the runtime provides the session."""

from __future__ import annotations

import sys
from pathlib import Path

from pyspark.sql import SparkSession

from spark.watchdog import STOP_TIMEOUT

_LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties").as_uri()


def local_spark_session(app_name: str = "weather-pipeline", cores: int = 2) -> SparkSession:
    """Return a small local session: UTC everywhere, no UI, few shuffle partitions."""
    session = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(cores))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.streaming.stopTimeout", STOP_TIMEOUT)
        .config(
            "spark.driver.extraJavaOptions",
            # -Xss: stopping a query mid-task makes Spark match the task's (long) Python error
            # against a backtracking regex, which overflows the default thread stack.
            f"-Xss8m -Duser.timezone=UTC -Dlog4j2.configurationFile={_LOG4J_CONFIG}",
        )
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # A micro-batch is cached once and read a few times right away: compressing it costs more
        # than it saves (measured in make bench: bench_spark).
        .config("spark.sql.inMemoryColumnarStorage.compressed", "false")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    # PySpark takes the worker interpreter from PYSPARK_PYTHON or "python3"; the local Avro data
    # source's workers need this interpreter (and its fastavro) without touching the environment.
    session.sparkContext.pythonExec = sys.executable
    return session


def quiet(spark: SparkSession) -> None:
    """Keep the console for our own progress: Spark logs errors only, no stage progress bars."""
    spark.sparkContext.setLogLevel("ERROR")
