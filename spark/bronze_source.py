"""Where bronze rows come from: the one difference between Databricks and local runs.

Both sources read the files the ingest Function writes with the same explicit schema (no
inference) and yield the same envelope columns (:data:`ENVELOPE_COLUMNS`), whatever the format:

* :class:`AutoLoaderSource` - Databricks' Auto Loader (``cloudFiles``), which tracks the files it
  has seen in the checkpoint and rescues values that do not fit the schema;
* :class:`FileSource` - Spark's own file source, for local runs and tests.

Avro bronze is Event Hubs Capture's record (contract/bronze.py): the exact enqueued time comes
from the pipeline's ``EnqueuedTimeRfc3339`` field, since Capture's own ``EnqueuedTimeUtc`` text
stops at the second.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import date
from functools import reduce
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from contract.bronze import EXACT_ENQUEUED_TIME, FORMATS, RECORDS_IN_FILE
from spark.lake import LakeConfig
from spark.schemas import (
    BODY_COLUMN,
    BRONZE_AVRO_SCHEMA,
    BRONZE_JSON_SCHEMA,
    CORRUPT_RECORD_COLUMN,
    RESCUED_ENVELOPE_COLUMN,
    SOURCE_FILE_COLUMN,
)


def envelope_schema(body_type: T.DataType | None = None) -> T.StructType:
    """What every source yields (and :func:`spark.transforms.check_bronze` reads): ``Body`` is
    text from JSON lines and bytes from Avro."""
    return T.StructType(
        [
            T.StructField("SequenceNumber", T.LongType()),
            T.StructField("EnqueuedTimeUtc", T.StringType()),  # RFC 3339 UTC
            T.StructField(BODY_COLUMN, body_type or T.StringType()),
            T.StructField("PartitionId", T.StringType()),
            T.StructField("EventId", T.StringType()),
            T.StructField("IngestedTimeUtc", T.StringType()),
            # How many records the file was written with (null in files from before the field).
            T.StructField(RECORDS_IN_FILE, T.LongType()),
            # A JSON line the reader could not parse (null otherwise).
            T.StructField(CORRUPT_RECORD_COLUMN, T.StringType()),
            # Auto Loader: envelope values that did not fit the schema, as JSON (null otherwise).
            T.StructField(RESCUED_ENVELOPE_COLUMN, T.StringType()),
            T.StructField(SOURCE_FILE_COLUMN, T.StringType()),
        ]
    )


ENVELOPE_COLUMNS = envelope_schema().names


class BronzeSource(ABC):
    """Reads the bronze files of one stream as envelope rows plus the file each came from."""

    def __init__(self, spark: SparkSession, lake: LakeConfig) -> None:
        self.spark = spark
        self.lake = lake

    @property
    def _is_avro(self) -> bool:
        return self.lake.bronze_format == "avro"

    @property
    def _file_format(self) -> str:
        return _spark_format(self.lake.bronze_format)

    @property
    def _schema(self) -> T.StructType:
        return _schema_of(self.lake.bronze_format)

    def _options(self, fmt: str | None = None) -> dict[str, str]:
        """Reader options shared by every read of bronze (of the configured format by default).

        A damaged file must not block the stream: Spark reads what it can of it (the job then
        finds it short of its ``RecordsInFile`` and quarantines it), and a file deleted after it
        was listed is skipped (the audit reports what it held).
        """
        fmt = fmt or self.lake.bronze_format
        options = {
            # "*.jsonl" does not match "*.jsonl.gz": each format reads only its own files.
            "pathGlobFilter": f"*.{fmt}",
            "ignoreCorruptFiles": "true",
            "ignoreMissingFiles": "true",
        }
        if fmt != "avro":
            options["columnNameOfCorruptRecord"] = CORRUPT_RECORD_COLUMN
        return options

    @abstractmethod
    def read_stream(self) -> DataFrame:
        """Bronze rows as a stream (new files only, tracked in the checkpoint)."""

    def read_batch(self, min_ingest_date: date) -> DataFrame:
        """Bronze rows of every ``ingest_date`` folder on or after a date (reprocessing).

        Every bronze format is read, not only the configured one: after ``BRONZE_FORMAT`` changed,
        history holds files of both, and a rebuild that read one would drop the other's events.
        ``Body`` is then bytes, as Avro's (check_bronze reads either).
        """
        frames = [self._read_format(fmt, min_ingest_date) for fmt in FORMATS]
        found = [frame for frame in frames if not frame.isEmpty()]
        if len(found) <= 1:
            return found[0] if found else frames[FORMATS.index(self.lake.bronze_format)]
        as_bytes = [frame.withColumn(BODY_COLUMN, F.col(BODY_COLUMN).cast(T.BinaryType())) for frame in found]
        return reduce(DataFrame.unionByName, as_bytes)

    def _read_format(self, fmt: str, min_ingest_date: date) -> DataFrame:
        # The stream's options: a damaged file must not fail a rebuild either.
        reader = self.spark.read.format(_spark_format(fmt)).schema(_schema_of(fmt))
        frame = reader.options(**self._options(fmt)).load(self.lake.bronze_path)
        # Partition discovery reads ingest_date=/hour= folders as columns, so the filter prunes
        # (a lake without any such folder has no rows to filter).
        if "ingest_date" in frame.columns:
            frame = frame.where(F.col("ingest_date") >= F.lit(min_ingest_date))
        return self.envelope(frame, fmt)

    def envelope(self, frame: DataFrame, fmt: str | None = None) -> DataFrame:
        """The read rows (of the configured format by default) as :data:`ENVELOPE_COLUMNS`."""
        columns: dict[str, Column] = {name: F.col(name) for name in ENVELOPE_COLUMNS}
        if (fmt or self.lake.bronze_format) == "avro":
            columns["EnqueuedTimeUtc"] = F.col(EXACT_ENQUEUED_TIME)
        if CORRUPT_RECORD_COLUMN not in frame.columns:
            columns[CORRUPT_RECORD_COLUMN] = F.lit(None).cast("string")
        if RESCUED_ENVELOPE_COLUMN not in frame.columns:
            columns[RESCUED_ENVELOPE_COLUMN] = F.lit(None).cast("string")
        columns[SOURCE_FILE_COLUMN] = F.col("_metadata.file_path")
        return frame.select(*[column.alias(name) for name, column in columns.items()])


def _spark_format(fmt: str) -> str:
    """Spark's reader for a bronze format (gzip'd JSON lines are read by extension)."""
    return "avro" if fmt == "avro" else "json"


def _schema_of(fmt: str) -> T.StructType:
    return BRONZE_AVRO_SCHEMA if fmt == "avro" else BRONZE_JSON_SCHEMA


class FileSource(BronzeSource):
    """Spark's file source: the local lake folder (or any path Spark can list)."""

    def read_stream(self) -> DataFrame:
        if "://" not in self.lake.bronze_path and not self.lake.bronze_path.startswith("file:"):
            # A stream needs its folder to exist; a new local lake has none until the first batch.
            Path(self.lake.bronze_path).mkdir(parents=True, exist_ok=True)
        reader = (
            self.spark.readStream.format(self._file_format)
            .schema(self._schema)
            .option("recursiveFileLookup", "true")
            .options(**self._options())
        )
        return self.envelope(reader.load(self.lake.bronze_path))


class AutoLoaderSource(BronzeSource):
    """Databricks Auto Loader (``cloudFiles``) with the explicit bronze schema.

    ``rescuedDataColumn`` keeps what does not fit the schema (an envelope field of another type,
    say) instead of dropping it silently; the job quarantines such rows as ``bronze_rescued``.
    """

    def read_stream(self) -> DataFrame:
        schema_location = self.lake.schema_location or f"{self.lake.checkpoint}/_schema"
        reader = (
            self.spark.readStream.format("cloudFiles")
            .option("cloudFiles.format", self._file_format)
            .option("cloudFiles.schemaLocation", schema_location)
            .option("cloudFiles.schemaEvolutionMode", "rescue")
            .option("rescuedDataColumn", RESCUED_ENVELOPE_COLUMN)
            .options(**self._options())
            .schema(self._schema)
        )
        return self.envelope(reader.load(self.lake.bronze_path))


def on_databricks(spark: SparkSession) -> bool:
    """True on a Databricks cluster (its runtime sets the cluster usage tags in the Spark conf)."""
    return bool(spark.conf.get("spark.databricks.clusterUsageTags.clusterId", None))


BRONZE_SOURCES = ("auto", "autoloader", "files")


def pick_source(spark: SparkSession, lake: LakeConfig, source: str = "auto") -> BronzeSource:
    """The bronze source: ``autoloader``, ``files``, or ``auto`` (Auto Loader on Databricks)."""
    if source not in BRONZE_SOURCES:
        raise ValueError(f"bronze source must be one of {', '.join(BRONZE_SOURCES)}, got {source!r}")
    if source == "auto":
        source = "autoloader" if on_databricks(spark) else "files"
    return AutoLoaderSource(spark, lake) if source == "autoloader" else FileSource(spark, lake)
