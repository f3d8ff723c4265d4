"""The embedded event hub: a partitioned, persistent event log in one SQLite file (WAL mode).

Several processes may produce and consume at once: every write is one ``BEGIN IMMEDIATE``
transaction (SQLite serialises writers; ``busy_timeout`` makes the others wait instead of
failing), and WAL lets readers run while a writer commits.

Tables (one file may hold several hubs, told apart by ``hub``):

* ``hubs(hub, hub_id, partitions)`` - the fixed partition count of each hub.
* ``partitions(hub, partition_id, next_sequence_number, next_offset, last_offset,
  last_enqueued_ms)`` - the running counters, updated in the same transaction as the events.
* ``batches(id, last_sequence_number, first_offset, enqueued_ms, partition_key, lengths,
  properties, bodies)`` - the log itself, one row per sent batch (as Event Hubs enqueues a batch
  atomically): the bodies concatenated, their lengths as little-endian uint32s, and their
  application properties as a JSON list (NULL when no event has any). ``id`` packs hub, partition
  and the batch's first sequence number (:func:`_event_key`), so the log is one append-mostly
  b-tree. One row per batch instead of per event is what makes sending cheap (~0.3 µs an event).
* ``checkpoints(hub, consumer_group, partition_id, sequence_number, offset, updated_ms)``.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time
import zlib
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

DEFAULT_PARTITIONS = 4
# The Event Hubs default (and Standard tier) maximum batch size.
DEFAULT_MAX_BATCH_BYTES = 1024 * 1024
# A rough stand-in for the AMQP framing the real SDK adds per event, so batches fill up at about
# the same point as real ones.
EVENT_OVERHEAD_BYTES = 8
_BUSY_TIMEOUT_MS = 60_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hubs (
    hub TEXT PRIMARY KEY,
    hub_id INTEGER NOT NULL UNIQUE,
    partitions INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS partitions (
    hub TEXT NOT NULL,
    partition_id INTEGER NOT NULL,
    next_sequence_number INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    last_offset INTEGER NOT NULL DEFAULT -1,
    last_enqueued_ms INTEGER,
    PRIMARY KEY (hub, partition_id)
);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    last_sequence_number INTEGER NOT NULL,
    first_offset INTEGER NOT NULL,
    enqueued_ms INTEGER NOT NULL,
    partition_key TEXT,
    lengths BLOB NOT NULL,
    properties TEXT,
    bodies BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    hub TEXT NOT NULL,
    consumer_group TEXT NOT NULL,
    partition_id INTEGER NOT NULL,
    sequence_number INTEGER NOT NULL,
    offset TEXT NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (hub, consumer_group, partition_id)
);
"""


# batches.id = hub_id << 50 | partition << 38 | sequence_number: 2^38 events per partition,
# 4096 partitions per hub (Event Hubs allows at most 2048), 8191 hubs per file.
_SEQ_BITS = 38
_PARTITION_BITS = 12
_MAX_PARTITIONS = 1 << _PARTITION_BITS


def _event_key(hub_id: int, partition: int, sequence_number: int) -> int:
    return (hub_id << (_SEQ_BITS + _PARTITION_BITS)) | (partition << _SEQ_BITS) | sequence_number


class HubEvent(Protocol):
    """What the hub needs from an event: ``azure.eventhub.EventData`` or ``AmqpAnnotatedMessage``.

    Application properties are read from ``properties`` (EventData) or ``application_properties``
    (AmqpAnnotatedMessage, whose ``properties`` are the AMQP message properties instead).
    """

    @property
    def body(self) -> Any: ...


def partition_for_key(partition_key: str | bytes, partitions: int) -> int:
    """Map a partition key to a partition index, the same in every process and every run.

    CRC-32 of the key's UTF-8 bytes, not Python's ``hash()``, which is salted per process.
    """
    key = partition_key.encode("utf-8") if isinstance(partition_key, str) else partition_key
    return zlib.crc32(key) % partitions


def body_bytes(event: HubEvent) -> bytes:
    """The body of an ``EventData`` as one bytes object (its data body may come in sections)."""
    body = event.body
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return b"".join(section if isinstance(section, bytes) else bytes(section) for section in body)


def application_properties(event: HubEvent) -> Mapping[Any, Any] | None:
    """The application properties of an ``EventData`` or an ``AmqpAnnotatedMessage``."""
    if hasattr(event, "application_properties"):
        return event.application_properties
    return getattr(event, "properties", None)


def properties_json(properties: Mapping[Any, Any] | None) -> str | None:
    if not properties:
        return None
    plain: dict[str, Any] = {}
    for key, value in properties.items():
        name = key.decode("utf-8") if isinstance(key, bytes) else str(key)
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        elif not isinstance(value, (str, int, float, bool)) and value is not None:
            value = str(value)
        plain[name] = value
    return json.dumps(plain, separators=(",", ":"))


def hub_names(path: str | Path) -> list[str]:
    """The hubs a hub file holds (none when there is no such file); opens it read-only."""
    if not Path(path).is_file():
        return []
    conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_MS / 1000)
    try:
        return [name for (name,) in conn.execute("SELECT hub FROM hubs ORDER BY hub_id")]
    except sqlite3.OperationalError:  # a file without the hubs table holds no hub
        return []
    finally:
        conn.close()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """One event as a consumer sees it (the fields Event Hubs gives a receiver)."""

    body: bytes
    properties: dict[str, Any]
    partition_key: str | None
    partition_id: str
    sequence_number: int
    offset: str
    enqueued_time: datetime


@dataclass(frozen=True, slots=True)
class PartitionProperties:
    """A partition's counters, like ``EventHubConsumerClient.get_partition_properties``."""

    partition_id: str
    beginning_sequence_number: int
    last_enqueued_sequence_number: int  # -1 when the partition is empty
    last_enqueued_offset: str
    last_enqueued_time_utc: datetime | None
    is_empty: bool


class LocalEventHub:
    """A hub (a named, partitioned event log) inside one SQLite file.

    Args:
        path: The SQLite file; created (with its folder) when missing.
        name: The hub's name; one file may hold several hubs.
        partitions: The partition count. A hub's count is fixed when it is first created; asking
            for a different count later raises ``ValueError``. None: the existing count, or 4.
    """

    def __init__(self, path: str | Path, name: str = "weather", partitions: int | None = None) -> None:
        if partitions is not None and not 1 <= partitions <= _MAX_PARTITIONS:
            raise ValueError(f"a hub has 1 to {_MAX_PARTITIONS} partitions, not {partitions}")
        self.path = Path(path)
        self.name = name
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection per hub object, shared by its threads under a lock.
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000
        )
        self._conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        # journal_mode=WAL is persistent; setting it on every open is cheap and idempotent.
        self._conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a commit survives a process crash (only a power loss can undo it).
        self._conn.execute("PRAGMA synchronous = NORMAL")
        with self._write() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            row = conn.execute("SELECT partitions, hub_id FROM hubs WHERE hub = ?", (name,)).fetchone()
            if row is None:
                count = partitions or DEFAULT_PARTITIONS
                hub_id = conn.execute("SELECT COALESCE(MAX(hub_id), 0) + 1 FROM hubs").fetchone()[0]
                conn.execute(
                    "INSERT INTO hubs (hub, hub_id, partitions) VALUES (?, ?, ?)", (name, hub_id, count)
                )
                conn.executemany(
                    "INSERT INTO partitions (hub, partition_id, next_sequence_number, next_offset)"
                    " VALUES (?, ?, 0, 0)",
                    [(name, p) for p in range(count)],
                )
            else:
                count, hub_id = row
                if partitions is not None and partitions != count:
                    # Not "delete the file": that drops events not yet consumed and every checkpoint.
                    raise ValueError(
                        f"hub {name!r} in {self.path} has {count} partitions, not {partitions}: a hub's"
                        f" partition count is fixed when it is created; keep {count}"
                        f" (LOCAL_HUB_PARTITIONS={count}), or put {partitions} partitions in a new hub"
                        " (another EVENTHUB_NAME, or another PIPELINE_HOME)"
                    )
        self.partition_count: int = count
        self._hub_id: int = hub_id

    # --- plumbing ---------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; IMMEDIATE takes the write lock up front so counters can't race."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the connection; the hub object is unusable afterwards."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> LocalEventHub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- partitions -------------------------------------------------------------------------
    @property
    def partition_ids(self) -> list[str]:
        """The partition ids, ``["0", "1", ...]`` as Event Hubs names them."""
        return [str(p) for p in range(self.partition_count)]

    def partition_for_key(self, partition_key: str | bytes) -> str:
        """The partition id a partition key always maps to."""
        return str(partition_for_key(partition_key, self.partition_count))

    def partition_index(self, partition_id: str | int) -> int:
        """The integer index of a partition id; ValueError when the hub has no such partition."""
        try:
            index = int(partition_id)
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < self.partition_count:
            raise ValueError(f"hub {self.name!r} has partitions {self.partition_ids}, not {partition_id!r}")
        return index

    def get_partition_properties(self, partition_id: str) -> PartitionProperties:
        """The partition's last sequence number, offset and enqueued time."""
        index = self.partition_index(partition_id)
        next_seq, last_offset, last_ms = self._read(
            "SELECT next_sequence_number, last_offset, last_enqueued_ms FROM partitions"
            " WHERE hub = ? AND partition_id = ?",
            (self.name, index),
        )[0]
        return PartitionProperties(
            partition_id=str(index),
            beginning_sequence_number=0,
            last_enqueued_sequence_number=next_seq - 1,
            last_enqueued_offset=str(last_offset),
            last_enqueued_time_utc=_utc(last_ms) if last_ms is not None else None,
            is_empty=next_seq == 0,
        )

    def count(self) -> int:
        """How many events the hub holds (from the counters: no scan)."""
        rows = self._read(
            "SELECT COALESCE(SUM(next_sequence_number), 0) FROM partitions WHERE hub = ?", (self.name,)
        )
        return int(rows[0][0])

    def next_sequence_numbers(self) -> dict[str, int]:
        """Per partition id, the sequence number the next event will get (= events so far)."""
        rows = self._read(
            "SELECT partition_id, next_sequence_number FROM partitions WHERE hub = ?", (self.name,)
        )
        return {str(p): int(n) for p, n in rows}

    def batch_ranges(self) -> list[tuple[str, int, int, int]]:
        """Every batch the hub holds, as ``(partition id, first sequence number, last sequence
        number, enqueued time in epoch milliseconds)``, in partition and sequence order.

        One row per sent batch (every event of a batch has its enqueued time): what an audit
        needs to know every event the hub ever assigned, without reading a body.
        """
        rows = self._read(
            "SELECT id, last_sequence_number, enqueued_ms FROM batches WHERE id >= ? AND id < ? ORDER BY id",
            (_event_key(self._hub_id, 0, 0), _event_key(self._hub_id + 1, 0, 0)),
        )
        sequence_mask = (1 << _SEQ_BITS) - 1
        return [
            (str((key >> _SEQ_BITS) & (_MAX_PARTITIONS - 1)), key & sequence_mask, int(last), int(ms))
            for key, last, ms in rows
        ]

    # --- writing ----------------------------------------------------------------------------
    def append(
        self,
        partition_id: str | int,
        events: Iterable[tuple[bytes, str | None]],
        partition_key: str | None = None,
    ) -> tuple[int, int]:
        """Append bodies (with their application-properties JSON) to one partition atomically.

        Args:
            partition_id: The target partition.
            events: ``(body, properties_json_or_None)`` pairs, in order.
            partition_key: The producer's partition key, stored with each event.

        Returns:
            The first and last sequence numbers given (``(n, n - 1)`` when ``events`` is empty).
        """
        index = self.partition_index(partition_id)
        now = _now_ms()
        with self._write() as conn:
            next_seq, next_offset = conn.execute(
                "SELECT next_sequence_number, next_offset FROM partitions WHERE hub = ? AND partition_id = ?",
                (self.name, index),
            ).fetchone()
            events = list(events)
            if not events:
                return next_seq, next_seq - 1
            lengths = array("I", [len(body) for body, _ in events])
            if sys.byteorder != "little":  # pragma: no cover - stored little-endian everywhere
                lengths.byteswap()
            properties = [p for _, p in events]
            properties_json = (
                "[" + ",".join(p or "null" for p in properties) + "]" if any(properties) else None
            )
            total = sum(lengths)
            conn.execute(
                "INSERT INTO batches (id, last_sequence_number, first_offset, enqueued_ms, partition_key,"
                " lengths, properties, bodies) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _event_key(self._hub_id, index, next_seq),
                    next_seq + len(events) - 1,
                    next_offset,
                    now,
                    partition_key,
                    lengths.tobytes(),
                    properties_json,
                    b"".join(body for body, _ in events),
                ),
            )
            seq = next_seq + len(events)
            conn.execute(
                "UPDATE partitions SET next_sequence_number = ?, next_offset = ?, last_offset = ?,"
                " last_enqueued_ms = ? WHERE hub = ? AND partition_id = ?",
                (seq, next_offset + total, next_offset + total - lengths[-1], now, self.name, index),
            )
        return next_seq, seq - 1

    # --- reading ----------------------------------------------------------------------------
    def read(self, partition_id: str, after_sequence_number: int, max_count: int) -> list[ReceivedEvent]:
        """Up to ``max_count`` events of a partition with sequence numbers above the given one."""
        index = self.partition_index(partition_id)
        base = _event_key(self._hub_id, index, 0)
        first_wanted = max(after_sequence_number, -1) + 1
        result: list[ReceivedEvent] = []
        if max_count <= 0:
            return result
        pid = str(index)
        with self._lock:
            # Start at the batch holding first_wanted: the last batch that begins at or before it.
            cursor = self._conn.execute(
                "SELECT id, first_offset, enqueued_ms, partition_key, lengths, properties, bodies"
                " FROM batches WHERE id < ? AND id >="
                " COALESCE((SELECT MAX(id) FROM batches WHERE id >= ? AND id <= ?), ?) ORDER BY id",
                (base + (1 << _SEQ_BITS), base, base + first_wanted, base),
            )
            for batch_key, first_offset, ms, partition_key, raw_lengths, raw_properties, bodies in cursor:
                lengths = array("I")
                lengths.frombytes(raw_lengths)
                if sys.byteorder != "little":  # pragma: no cover
                    lengths.byteswap()
                properties = json.loads(raw_properties) if raw_properties else None
                enqueued = _utc(ms)
                seq = batch_key - base
                offset = first_offset
                position = 0
                for i, length in enumerate(lengths):
                    if seq >= first_wanted:
                        result.append(
                            ReceivedEvent(
                                body=bodies[position : position + length],
                                properties=(properties[i] or {}) if properties else {},
                                partition_key=partition_key,
                                partition_id=pid,
                                sequence_number=seq,
                                offset=str(offset),
                                enqueued_time=enqueued,
                            )
                        )
                        if len(result) >= max_count:
                            cursor.close()
                            return result
                    seq += 1
                    offset += length
                    position += length
        return result

    # --- checkpoints ------------------------------------------------------------------------
    def get_checkpoint(self, consumer_group: str, partition_id: str) -> tuple[int, str] | None:
        """The group's checkpoint in a partition as ``(sequence_number, offset)``, or None."""
        index = self.partition_index(partition_id)
        rows = self._read(
            "SELECT sequence_number, offset FROM checkpoints"
            " WHERE hub = ? AND consumer_group = ? AND partition_id = ?",
            (self.name, consumer_group, index),
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def checkpoints(self, consumer_group: str) -> dict[str, int]:
        """Per partition id, the group's checkpointed sequence number (partitions without one left out)."""
        rows = self._read(
            "SELECT partition_id, sequence_number FROM checkpoints WHERE hub = ? AND consumer_group = ?",
            (self.name, consumer_group),
        )
        return {str(p): int(s) for p, s in rows}

    def set_checkpoint(
        self, consumer_group: str, partition_id: str, sequence_number: int, offset: str
    ) -> None:
        """Record that the group has handled a partition up to and including ``sequence_number``."""
        index = self.partition_index(partition_id)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO checkpoints (hub, consumer_group, partition_id, sequence_number, offset,"
                " updated_ms) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (hub, consumer_group, partition_id) DO UPDATE SET"
                " sequence_number = excluded.sequence_number, offset = excluded.offset,"
                " updated_ms = excluded.updated_ms",
                (self.name, consumer_group, index, int(sequence_number), str(offset), _now_ms()),
            )
