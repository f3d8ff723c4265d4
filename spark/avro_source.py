"""Local Avro bronze reader: a Spark 4 Python data source (batch and streaming) over fastavro.

Databricks reads Avro bronze with Auto Loader; local Spark has no spark-avro jar, so this source
stands in with the same output columns (``BRONZE_AVRO_SCHEMA``), keeping the job code identical.
Streaming offsets are positions in an append-only manifest of discovered files kept next to the
checkpoint, so a replayed micro-batch reads exactly the same files.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fastavro
from pyspark.sql import SparkSession
from pyspark.sql.datasource import (
    DataSource,
    DataSourceReader,
    DataSourceStreamReader,
    InputPartition,
)
from pyspark.sql.types import StructType

from spark.schemas import BRONZE_AVRO_SCHEMA

FORMAT_NAME = "weather_bronze_avro"
_FILES_PER_PARTITION = 16


class _FilesPartition(InputPartition):
    def __init__(self, files: list[str]) -> None:
        super().__init__(files)
        self.files = files


def list_bronze_files(root: str, min_ingest_date: str = "") -> list[str]:
    """Finished Avro bronze files under ``root`` (temp files start with ``_``), sorted."""
    found = []
    for path in Path(root).rglob("*.avro"):
        if path.name.startswith(("_", ".")):
            continue
        if min_ingest_date:
            folder = next((p.name for p in path.parents if p.name.startswith("ingest_date=")), "")
            if folder and folder.removeprefix("ingest_date=") < min_ingest_date:
                continue
        found.append(str(path))
    return sorted(found)


def _read_files(files: list[str]) -> Iterator[tuple[Any, ...]]:
    names = [f.name for f in BRONZE_AVRO_SCHEMA.fields]
    for file in files:
        uri = "file:" + str(Path(file).resolve())  # spelled like the file source's _metadata.file_path
        with open(file, "rb") as handle:
            for record in fastavro.reader(handle):
                row = dict(record)  # type: ignore[arg-type]
                row["source_file"] = uri
                yield tuple(row.get(name) for name in names)


def _partitions(files: list[str]) -> list[InputPartition]:
    return [
        _FilesPartition(files[i : i + _FILES_PER_PARTITION])
        for i in range(0, len(files), _FILES_PER_PARTITION)
    ]


class _BatchReader(DataSourceReader):
    def __init__(self, options: dict[str, str]) -> None:
        self.files = list_bronze_files(options["path"], options.get("minIngestDate", ""))

    def partitions(self) -> list[InputPartition]:
        return _partitions(self.files) or [_FilesPartition([])]

    def read(self, partition: InputPartition) -> Iterator[tuple[Any, ...]]:
        yield from _read_files(partition.files)  # type: ignore[attr-defined]


class _StreamReader(DataSourceStreamReader):
    def __init__(self, options: dict[str, str]) -> None:
        self.root = options["path"]
        self.manifest = Path(options["manifest"])

    def _known(self) -> list[str]:
        if not self.manifest.exists():
            return []
        return [json.loads(line) for line in self.manifest.read_text().splitlines() if line]

    def initialOffset(self) -> dict[str, int]:
        return {"files": 0}

    def latestOffset(self) -> dict[str, int]:
        known = self._known()
        seen = set(known)
        new = [f for f in list_bronze_files(self.root) if f not in seen]
        if new:
            self.manifest.parent.mkdir(parents=True, exist_ok=True)
            with self.manifest.open("a") as out:
                out.writelines(json.dumps(f) + "\n" for f in new)
        return {"files": len(known) + len(new)}

    def partitions(self, start: dict[str, int], end: dict[str, int]) -> list[InputPartition]:
        return _partitions(self._known()[start["files"] : end["files"]])

    def read(self, partition: InputPartition) -> Iterator[tuple[Any, ...]]:
        yield from _read_files(partition.files)  # type: ignore[attr-defined]

    def commit(self, end: dict[str, int]) -> None:
        """Nothing to clean up: bronze files are immutable and kept."""


class BronzeAvroDataSource(DataSource):
    """``spark.read(Stream).format("weather_bronze_avro").option("path", ...)``.

    Options: ``path`` (the stream's bronze folder), ``manifest`` (streaming: a file next to the
    checkpoint) and ``minIngestDate`` (batch: skip older ``ingest_date=`` folders).
    """

    @classmethod
    def name(cls) -> str:
        return FORMAT_NAME

    def schema(self) -> StructType:
        return BRONZE_AVRO_SCHEMA

    def reader(self, schema: StructType) -> DataSourceReader:
        return _BatchReader(self.options)

    def streamReader(self, schema: StructType) -> DataSourceStreamReader:
        return _StreamReader(self.options)


def register(spark: SparkSession) -> None:
    """Register the source; ship this module by value so Python workers need not import it."""
    from pyspark import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    spark.dataSource.register(BronzeAvroDataSource)
