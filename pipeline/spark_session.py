"""The local SparkSession (runs and tests); on Databricks the runtime provides the session.

Local Spark runs the same job as Databricks: Delta Lake for Spark 4.0 and spark-avro come from
the jars `make install` fetched with Maven into ``.spark-jars/`` (scripts/spark-jars/pom.xml), so
a run needs no network.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pyspark.sql import SparkSession

from settings import PROJECT_ROOT
from spark.watchdog import STOP_TIMEOUT

_LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties").as_uri()
SPARK_JARS_DIR = PROJECT_ROOT / ".spark-jars"
# The jars the session needs (their versions are set in scripts/spark-jars/pom.xml).
_JAR_PREFIXES = ("delta-spark_2.13-", "delta-storage-", "spark-avro_2.13-")


class SparkJarsMissingError(RuntimeError):
    """Delta Lake's or spark-avro's jar is not in .spark-jars/ (run `make install`)."""


def spark_jars(folder: Path = SPARK_JARS_DIR) -> list[Path]:
    """The Delta Lake and spark-avro jars, one per artifact; fails in one line when one is missing."""
    found = sorted(folder.glob("*.jar")) if folder.is_dir() else []
    missing = [p.rstrip("-_") for p in _JAR_PREFIXES if not any(j.name.startswith(p) for j in found)]
    if missing:
        raise SparkJarsMissingError(
            f"local Spark needs {', '.join(missing)} in {folder}: run `make install` (it fetches them "
            "with Maven once)"
        )
    return [j for j in found if j.name.startswith(_JAR_PREFIXES)]


def local_spark_session(app_name: str = "weather-pipeline", cores: int = 2) -> SparkSession:
    """Return a small local session with Delta Lake and Avro: UTC everywhere, no UI, few partitions."""
    jars = ",".join(str(j) for j in spark_jars())
    session = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app_name)
        .config("spark.jars", jars)
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        # Delta reads its log with this many tasks (default 50): one or two cores need few.
        .config("spark.databricks.delta.snapshotPartitions", str(cores))
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
    # PySpark takes the worker interpreter from PYSPARK_PYTHON or "python3"; the contract check's
    # workers need this interpreter (and its msgspec) without touching the environment.
    session.sparkContext.pythonExec = sys.executable
    return session


def quiet(spark: SparkSession) -> None:
    """Keep the console for our own progress: Spark logs errors only, no stage progress bars."""
    spark.sparkContext.setLogLevel("ERROR")
