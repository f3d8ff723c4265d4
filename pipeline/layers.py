"""Read what each layer of the local pipeline holds, for `status`, `report`, the demo and tests.

Everything here only reads: the embedded hub through its consumer API, the local lake's bronze and
quarantine files (layout in docs/architecture.md), silver and gold with ``deltalake``, and the SQL
target's table, watermark and ``sync_runs``. A layer that does not exist yet counts as empty, so a
fresh ``$PIPELINE_HOME`` reads as zeros.

The columnar readers (:func:`hub_event_table`, :func:`delta_table` with storage options, and
:func:`pipeline.lake_records.lake_table` for bronze and quarantine files) give a layer as Arrow
columns, for checks over a million events (``pipeline audit``), on the local folder and on ADLS
alike.
"""

from __future__ import annotations

import math
import sqlite3
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from contract.lake_layout import superseded
from contract.sql_names import is_identifier
from functions.lake import LocalLake
from pipeline.failures import describe, first_line
from pipeline.lake_records import (
    FILE_COLUMN,
    lake_table,
    plausible_records,
    quarantine_reasons,
)
from settings import Settings
from spark.lake import SPARK_WRITER


@dataclass(frozen=True)
class SparkFigures:
    """What the Spark job wrote, summed from its commits' operation metrics in each table's Delta
    history (commits it tagged as its own; the log keeps 30 days by default)."""

    commits: int = 0
    silver_inserted: int = 0
    silver_updated: int = 0
    silver_deleted: int = 0
    duplicates_skipped: int = 0  # valid rows that were twice in a micro-batch or already in silver
    quarantined: int = 0
    gold_inserted: int = 0
    gold_updated: int = 0
    gold_deleted: int = 0

    @property
    def gold_windows_merged(self) -> int:
        return self.gold_inserted + self.gold_updated

    def as_json(self) -> dict[str, int]:
        return {**self.__dict__, "gold_windows_merged": self.gold_windows_merged}


@dataclass(frozen=True)
class LayerCounts:
    """How many events or rows each layer holds right now."""

    hub: int = 0
    hub_backlog: int = 0
    bronze: int = 0
    bronze_files: int = 0
    quarantine: int = 0
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    silver: int = 0
    silver_quarantine: int = 0
    gold: int = 0
    gold_version: int | None = None
    sql: int | None = 0  # None: the SQL target could not be reached (sql_error says why)
    watermark: int | None = None
    watermark_synced_at: str | None = None
    spark: SparkFigures = field(default_factory=SparkFigures)
    sql_error: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The `status --json` object: the documented keys first, then the extras."""
        return {
            "hub": self.hub,
            "bronze": self.bronze,
            "quarantine": self.quarantine,
            "quarantine_reasons": dict(sorted(self.quarantine_reasons.items())),
            "silver": self.silver,
            "gold": self.gold,
            "sql": self.sql,
            "watermark": self.watermark,
            "silver_quarantine": self.silver_quarantine,
            "hub_backlog": self.hub_backlog,
            "bronze_files": self.bronze_files,
            "gold_version": self.gold_version,
            "watermark_synced_at": self.watermark_synced_at,
            "spark": self.spark.as_json(),
            "sql_error": self.sql_error,
        }


# --- timestamps -----------------------------------------------------------------------------------


def parse_utc(value: Any) -> datetime | None:
    """Parse a timestamp as any layer stores it (ISO text, datetime, epoch) into aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value / 1000 if value > 1e11 else value, tz=UTC)
    text = str(value).strip().replace(" ", "T", 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# --- the embedded hub -----------------------------------------------------------------------------


def hub_counts(settings: Settings) -> tuple[int, int]:
    """Return (events in the embedded hub, events the ingest consumer group has not checkpointed)."""
    path = settings.local_hub_path
    if not path.is_file():
        return 0, 0
    from localhub import LocalConsumer, LocalEventHub

    # partitions=None: take the hub's own partition count rather than insisting on the setting's.
    with LocalEventHub(path, name=settings.eventhub_name, partitions=None) as hub:
        total = hub.count()
        pending = sum(LocalConsumer(hub, settings.eventhub_consumer_group).backlog().values())
    return total, pending


def hub_event_table(path: Path, hub_name: str) -> pa.Table | None:
    """Every event an embedded hub holds, as ``partition`` (int32), ``sequence_number`` and
    ``enqueued_ms`` (int64) columns; None when the file holds no hub of that name.

    Read from the hub's batch index (one row per sent batch), never from its bodies.
    """
    from localhub import LocalEventHub, hub_names

    if hub_name not in hub_names(path):
        return None
    with LocalEventHub(path, name=hub_name, partitions=None) as hub:
        ranges = hub.batch_ranges()
    partitions = np.array([int(p) for p, _, _, _ in ranges], np.int32)
    firsts = np.array([f for _, f, _, _ in ranges], np.int64)
    sizes = np.array([last - first + 1 for _, first, last, _ in ranges], np.int64)
    enqueued = np.array([ms for _, _, _, ms in ranges], np.int64)
    # Expand each batch to its events: the batch's first number plus the event's place in it.
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    numbers = np.repeat(firsts, sizes) + (np.arange(int(sizes.sum()), dtype=np.int64) - starts)
    return pa.table(
        {
            "partition": np.repeat(partitions, sizes),
            "sequence_number": numbers,
            "enqueued_ms": np.repeat(enqueued, sizes),
        }
    )


def hub_checkpoints(settings: Settings) -> dict[str, int]:
    """Per partition id, the ingest consumer group's checkpointed sequence number in the embedded hub."""
    from localhub import LocalEventHub, hub_names

    if settings.eventhub_name not in hub_names(settings.local_hub_path):
        return {}
    with LocalEventHub(settings.local_hub_path, name=settings.eventhub_name, partitions=None) as hub:
        return hub.checkpoints(settings.eventhub_consumer_group)


def epoch_ms(texts: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """RFC 3339 UTC texts (``2026-11-22T07:43:20.123Z``) as epoch milliseconds (int64)."""
    return pc.cast(pc.cast(texts, pa.timestamp("ms", tz="UTC")), pa.int64())


# --- Delta tables ---------------------------------------------------------------------------------


def delta_table(uri: str, storage_options: dict[str, str] | None = None) -> Any | None:
    """The Delta table at ``uri``, or None when it has not been created yet."""
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(uri, storage_options=storage_options or None):
        return None
    return DeltaTable(uri, storage_options=storage_options or None)


def delta_rows(uri: str) -> tuple[int, int | None]:
    """Return (rows, version) of a Delta table; (0, None) when it does not exist."""
    table = delta_table(uri)
    if table is None:
        return 0, None
    return int(table.count()), int(table.version())


def read_delta(uri: str, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """All rows of a Delta table as dicts (empty when it does not exist)."""
    table = delta_table(uri)
    if table is None:
        return []
    return table.to_pyarrow_table(columns=list(columns) if columns else None).to_pylist()


# --- the SQL target -------------------------------------------------------------------------------


def _identifier(name: str) -> str:
    if not is_identifier(name):  # the one rule (contract.sql_names); settings checked the length
        raise ValueError(f"not a valid SQL identifier: {name!r}")
    return name


class SqlReader:
    """Read-only access to the SQL target: SQLite at ``warehouse.db`` or an ODBC connection."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._odbc = bool(settings.sql_connection)
        self._conn: Any = None
        if self._odbc:
            from functions.sql_target.connections import dialect_name_for, odbc_connector

            # The sync's own connector: SQL Server without UID/PWD signs in with DefaultAzureCredential.
            connection = settings.sql_connection
            self._conn = odbc_connector(connection, dialect_name_for(connection))()
            self._schema: str | None = _identifier(settings.sql_schema)
        elif settings.sqlite_path.is_file():
            self._conn = sqlite3.connect(f"file:{settings.sqlite_path}?mode=ro", uri=True, timeout=30)
            self._schema = None

    def __enter__(self) -> SqlReader:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()

    def _name(self, table: str) -> str:
        table = _identifier(table)
        return f"{self._schema}.{table}" if self._schema else table

    def rows(self, table: str) -> list[dict[str, Any]] | None:
        """Every row of a table as dicts, or None when the table (or database) does not exist."""
        if self._conn is None:
            return None
        try:
            cursor = self._conn.cursor()
            cursor.execute(f"SELECT * FROM {self._name(table)}")  # identifier validated above
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except Exception as exc:  # a missing table is "nothing synced yet", anything else is raised
            if _is_missing_table(exc):
                return None
            raise

    def count(self, table: str) -> int:
        """Rows in a table; 0 when the table (or database) does not exist."""
        if self._conn is None:
            return 0
        try:
            cursor = self._conn.cursor()
            cursor.execute(f"SELECT COUNT(*) FROM {self._name(table)}")  # identifier validated
            return int(cursor.fetchone()[0])
        except Exception as exc:
            if _is_missing_table(exc):
                return 0
            raise


def _is_missing_table(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(
        s in text for s in ("no such table", "does not exist", "invalid object name", "42s02", "42p01")
    )


def watermark(settings: Settings, reader: SqlReader) -> tuple[int | None, str | None]:
    """The sync watermark: (last synced gold Delta version, when), or (None, None) before any sync."""
    rows = reader.rows("sync_watermark") or []
    if not rows:
        return None, None
    mine = [r for r in rows if str(r.get("table_name", "")).lower().endswith(settings.sql_table.lower())]
    row = max(mine or rows, key=lambda r: int(r.get("delta_version") or -1))
    synced = parse_utc(row.get("synced_at"))
    version = row.get("delta_version")
    return (None if version is None else int(version)), (synced.isoformat() if synced else None)


# --- everything at once ---------------------------------------------------------------------------


def bronze_events(settings: Settings) -> tuple[int, int]:
    """Return (bronze events, bronze files) of the local lake.

    Events are counted once however many files hold them (a replayed batch with other
    boundaries writes some twice), by partition, sequence number, enqueued time and event id; a
    file a repair superseded counts as its repair; a damaged file counts what can be read of it.
    """
    fields = ["PartitionId", "SequenceNumber", "EnqueuedTimeUtc", "EventId"]
    records = lake_table(
        LocalLake(settings.local_lake_path), settings.bronze_container, settings.bronze_stream, fields
    )
    table = plausible_records(records.table, records.files, set(records.damaged))
    gone = superseded(records.files)
    if gone:
        indexes = pa.array([i for i, f in enumerate(records.files) if f in gone], pa.int32())
        table = table.filter(pc.invert(pc.is_in(table[FILE_COLUMN], value_set=indexes)))
    # Hand-made records without a sequence number cannot be told from a replay: each counts.
    numbered = table.filter(pc.is_valid(table["SequenceNumber"]))
    distinct = numbered.select(fields).group_by(fields, use_threads=False).aggregate([])
    return distinct.num_rows + (table.num_rows - numbered.num_rows), len(records.files)


def _job_commits(uri: str) -> list[dict[str, int]]:
    """Operation metrics of the Spark job's commits to a table (as integers), with the commit's
    own ``validRows`` (silver: the micro-batch's valid rows) when it recorded them."""
    table = delta_table(uri)
    if table is None:
        return []
    commits = []
    for commit in table.history():
        try:
            tag = orjson.loads(commit.get("userMetadata") or "{}")
        except orjson.JSONDecodeError:
            continue
        if not isinstance(tag, dict) or tag.get("writer") != SPARK_WRITER:
            continue
        metrics = commit.get("operationMetrics") or {}
        numbers = {str(k): int(v) for k, v in metrics.items() if str(v).lstrip("-").isdigit()}
        if isinstance(tag.get("validRows"), int):
            numbers["validRows"] = tag["validRows"]
        commits.append(numbers)
    return commits


def spark_figures(settings: Settings) -> SparkFigures:
    """Rows the Spark job inserted, skipped as duplicates, quarantined and merged into gold, from
    Delta's own operation metrics (zeros before the job's first write)."""
    silver = _job_commits(settings.silver_table_uri)
    quarantine = _job_commits(settings.silver_quarantine_table_uri)
    gold = _job_commits(settings.gold_table_uri)

    def total(commits: list[dict[str, int]], *names: str) -> int:
        return sum(c.get(name, 0) for c in commits for name in names)

    return SparkFigures(
        commits=len(silver) + len(quarantine) + len(gold),
        # An append reports its rows as numOutputRows; a MERGE as rows inserted, updated, deleted.
        silver_inserted=total(silver, "numTargetRowsInserted")
        + sum(c.get("numOutputRows", 0) for c in silver if "numTargetRowsInserted" not in c),
        silver_updated=total(silver, "numTargetRowsUpdated"),
        silver_deleted=total(silver, "numTargetRowsDeleted"),
        # Valid rows of a micro-batch that did not become silver rows: twice in the batch, or
        # already in silver (a micro-batch of nothing but duplicates commits nothing, so it is
        # not counted here).
        duplicates_skipped=sum(
            c["validRows"] - c.get("numTargetRowsInserted", c.get("numOutputRows", 0))
            for c in silver
            if "validRows" in c
        ),
        quarantined=total(quarantine, "numTargetRowsInserted"),
        gold_inserted=total(gold, "numTargetRowsInserted")
        + sum(c.get("numOutputRows", 0) for c in gold if "numTargetRowsInserted" not in c),
        gold_updated=total(gold, "numTargetRowsUpdated"),
        gold_deleted=total(gold, "numTargetRowsDeleted"),
    )


def count_layers(settings: Settings) -> LayerCounts:
    """Count every layer under the settings' home (zeros for layers that do not exist yet).

    A SQL target that cannot be reached leaves ``sql`` and ``watermark`` as None and says why in
    ``sql_error``; every other layer is still counted.
    """
    hub, backlog = hub_counts(settings)
    bronze, bronze_files = bronze_events(settings)
    quarantined, reasons = quarantine_reasons(settings)
    silver, _ = delta_rows(settings.silver_table_uri)
    silver_quarantine, _ = delta_rows(settings.silver_quarantine_table_uri)
    gold, gold_version = delta_rows(settings.gold_table_uri)
    sql: int | None = None
    version: int | None = None
    synced_at: str | None = None
    sql_error: str | None = None
    try:
        with SqlReader(settings) as reader:
            sql = reader.count(settings.sql_table)
            version, synced_at = watermark(settings, reader)
    except Exception as exc:  # any driver's error: status still shows every other layer
        # The same words a failed sync uses (what failed and what to do), else the error's first line.
        sql_error = f"SQL target unreachable: {describe(exc, settings) or first_line(exc)}"
    return LayerCounts(
        hub=hub,
        hub_backlog=backlog,
        bronze=bronze,
        bronze_files=bronze_files,
        quarantine=quarantined,
        quarantine_reasons=dict(reasons),
        silver=silver,
        silver_quarantine=silver_quarantine,
        gold=gold,
        gold_version=gold_version,
        sql=sql,
        watermark=version,
        watermark_synced_at=synced_at,
        spark=spark_figures(settings),
        sql_error=sql_error,
    )


# --- end-to-end freshness -------------------------------------------------------------------------


def sql_visibility(settings: Settings) -> list[tuple[datetime, datetime]]:
    """For each silver event now visible in SQL: (enqueued time, time it became visible in SQL).

    Definition (docs/architecture.md, "Sync bookkeeping"): visible at the first
    ``sync_runs.finished_at`` whose ``max_source_updated_at`` is at or after the event's silver
    ``processed_at``. Events not yet visible in SQL are left out.
    """
    with SqlReader(settings) as reader:
        runs = reader.rows("sync_runs") or []
    pairs = ((parse_utc(r.get("finished_at")), parse_utc(r.get("max_source_updated_at"))) for r in runs)
    finished = sorted((f, m) for f, m in pairs if f is not None and m is not None)
    if not finished:
        return []
    # Running max of max_source_updated_at over runs in finish order: the first run covering a
    # processed_at is the first whose running max reaches it (the running max is sorted).
    highs: list[datetime] = []
    for _, max_updated in finished:
        highs.append(max_updated if not highs else max(highs[-1], max_updated))
    out: list[tuple[datetime, datetime]] = []
    for event in read_delta(settings.silver_table_uri, ["enqueued_time", "processed_at"]):
        enqueued, processed = parse_utc(event["enqueued_time"]), parse_utc(event["processed_at"])
        if enqueued is None or processed is None:
            continue
        i = bisect_left(highs, processed)
        if i < len(finished):
            out.append((enqueued, finished[i][0]))
    return out


def freshness_seconds(settings: Settings) -> list[float]:
    """Seconds from each silver event's enqueued time to when it became visible in SQL."""
    return [(visible - enqueued).total_seconds() for enqueued, visible in sql_visibility(settings)]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100), None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
