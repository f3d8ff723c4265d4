"""The ingest Function's pure core: one Event Hubs batch in, bronze and quarantine records out.

No I/O here. Every event of a batch ends up in exactly one of the two lists the core returns:
``bronze`` (the body passed the contract) or ``quarantine`` (it did not; the record says why and
keeps the original bytes). The record shapes are the ones docs/architecture.md "Bronze records"
documents, as plain dicts so that the encoders in :mod:`functions.bronze` stay fast.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, TypedDict

import orjson

from contract import validate_batch

UNKNOWN_SEQUENCE_NUMBER = -1
# ".000Z" to ".999Z": the millisecond tails of RFC 3339 times (see BatchTimeFormatter).
_MILLISECOND_TAILS = tuple(f".{ms:03d}Z" for ms in range(1000))
# Partition ids go into file names: anything but these characters makes the id "unknown".
_SAFE_PARTITION_ID = re.compile(r"^[A-Za-z0-9_]{1,32}$")


@dataclass(slots=True)
class HubEvent:
    """One event as the Event Hubs trigger delivered it (body and the host's metadata)."""

    body: bytes
    sequence_number: int
    offset: str
    enqueued_time: datetime
    partition_key: str | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    system_properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EventColumns:
    """A batch as parallel lists, one entry per event: the hot path's shape (no object per event)."""

    bodies: Sequence[bytes]
    sequence_numbers: Sequence[int]
    offsets: Sequence[str]
    enqueued_times: Sequence[datetime]
    partition_keys: Sequence[str | None]
    properties: Sequence[Mapping[str, str]]
    system_properties: Sequence[Mapping[str, str]]

    @classmethod
    def from_events(cls, events: Sequence[HubEvent]) -> EventColumns:
        return cls(
            bodies=[e.body for e in events],
            sequence_numbers=[e.sequence_number for e in events],
            offsets=[e.offset for e in events],
            enqueued_times=[e.enqueued_time for e in events],
            partition_keys=[e.partition_key for e in events],
            properties=[e.properties for e in events],
            system_properties=[e.system_properties for e in events],
        )

    def __len__(self) -> int:
        return len(self.bodies)


class BronzeRecord(TypedDict):
    """One valid event; ``Body`` is bytes here and text in JSON lines."""

    SequenceNumber: int
    Offset: str
    EnqueuedTimeUtc: str
    SystemProperties: Mapping[str, str]
    Properties: Mapping[str, str]
    Body: bytes
    PartitionId: str
    PartitionKey: str | None
    EventId: str
    IngestedTimeUtc: str


class QuarantineRecord(TypedDict):
    """One rejected event: the bronze envelope plus why, with the body as text or base64."""

    SequenceNumber: int
    Offset: str
    EnqueuedTimeUtc: str
    SystemProperties: Mapping[str, str]
    Properties: Mapping[str, str]
    Body: str
    BodyEncoding: str
    PartitionId: str
    PartitionKey: str | None
    EventId: str | None
    IngestedTimeUtc: str
    Reasons: list[str]


@dataclass(frozen=True)
class BatchResult:
    """Where every event of one batch goes, and the names its files get.

    Attributes:
        folder: ``<stream>/ingest_date=YYYY-MM-DD/hour=HH`` (the same under both containers).
        file_stem: ``p<partition>-<first seq:020d>-<last seq:020d>``; the extension is the format's.
        bronze: Records of the valid events, in batch order.
        quarantine: Records of the rejected events, in batch order.
        reasons: How many rejected events carried each reason code.
        body_bytes: Total size of the batch's bodies.
    """

    folder: str
    file_stem: str
    bronze: list[BronzeRecord]
    quarantine: list[QuarantineRecord]
    reasons: Counter[str]
    body_bytes: int

    @property
    def event_count(self) -> int:
        return len(self.bronze) + len(self.quarantine)


def rfc3339_ms(moment: datetime) -> str:
    """Format a time as RFC 3339 UTC with milliseconds (``2026-11-22T07:43:20.123Z``).

    A naive time is taken as UTC, as the Functions host's naive times are.
    """
    # isoformat of an aware UTC time ends in "+00:00": the cheapest exact way (a hot spot).
    return as_utc(moment).isoformat(timespec="milliseconds")[:-6] + "Z"


def as_utc(moment: datetime) -> datetime:
    """Return an aware UTC time; a naive one is taken as UTC."""
    tz = moment.tzinfo
    if tz is UTC:
        return moment
    if tz is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def string_map(values: Mapping[str, Any] | None) -> dict[str, str]:
    """Render property values as strings: text as is, bytes as UTF-8, anything else as JSON."""
    if not values:
        return {}
    if type(values) is dict:
        for value in values.values():
            if type(value) is not str:
                break
        else:
            return values  # already strings (the usual case, e.g. from JSON): no copy
    rendered: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, str):
            rendered[str(key)] = value
        elif type(value) is int:  # the common case, and much cheaper than JSON
            rendered[str(key)] = str(value)
        elif isinstance(value, bytes | bytearray):
            rendered[str(key)] = bytes(value).decode("utf-8", errors="backslashreplace")
        else:
            rendered[str(key)] = orjson.dumps(value, default=str).decode()
    return rendered


def batch_file_stem(partition_id: str | None, events: Sequence[HubEvent] | EventColumns) -> str:
    """Name a batch's files from its partition and its first and last sequence numbers.

    The name depends only on what the hub assigned, so a replay of the same batch gets the same
    name. When the host did not say which partition the batch came from (or gave no sequence
    numbers), a digest of the batch's offsets, sequence numbers and bodies stands in for the
    partition id: two partitions' batches then still get different names (unless they are the
    same events).
    """
    batch = events if isinstance(events, EventColumns) else EventColumns.from_events(events)
    first, last = min(batch.sequence_numbers), max(batch.sequence_numbers)
    known_numbers = first >= 0
    if known_numbers and partition_id is not None and _SAFE_PARTITION_ID.match(partition_id):
        prefix = f"p{partition_id}"
    else:
        digest = hashlib.sha256()
        for number, offset, body in zip(batch.sequence_numbers, batch.offsets, batch.bodies, strict=True):
            digest.update(f"{number}\x00{offset}\x00".encode())
            digest.update(hashlib.sha256(body).digest())
        prefix = f"px{digest.hexdigest()[:16]}"
    return f"{prefix}-{max(first, 0):020d}-{max(last, 0):020d}"


def batch_folder(stream: str, first_enqueued: datetime) -> str:
    """The date/hour folder of a batch, from its first event's enqueued time (UTC)."""
    moment = as_utc(first_enqueued)
    return f"{stream}/ingest_date={moment:%Y-%m-%d}/hour={moment:%H}"


class BatchTimeFormatter:
    """:func:`rfc3339_ms` for the many close-together UTC times of one batch, about 3x faster.

    The date-and-seconds part is formatted once per distinct second (a batch spans a few), from
    the offset to the batch's first second; only the millisecond tail differs per event.
    """

    __slots__ = ("base", "seconds")

    def __init__(self, first: datetime) -> None:
        self.base = as_utc(first).replace(microsecond=0)
        self.seconds: dict[int, str] = {}

    def format_all(self, moments: Sequence[datetime]) -> list[str]:
        """Format aware UTC times (``tzinfo is UTC``) as :func:`rfc3339_ms` does."""
        base, seconds, tails = self.base, self.seconds, _MILLISECOND_TAILS
        texts = []
        for moment in moments:
            delta = moment - base
            second = delta.days * 86400 + delta.seconds
            prefix = seconds.get(second)
            if prefix is None:
                prefix = seconds[second] = (base + timedelta(seconds=second)).isoformat()[:-6]
            texts.append(prefix + tails[delta.microseconds // 1000])
        return texts


def process_batch(
    events: Sequence[HubEvent] | EventColumns, partition_id: str | None, stream: str, ingested_at: datetime
) -> BatchResult:
    """Validate a batch and build its bronze and quarantine records.

    Args:
        events: The batch, in the order the hub delivered it (not empty).
        partition_id: The partition the batch came from, or None when the host did not say.
        stream: The stream name (first folder level under each container).
        ingested_at: When the Function handled the batch.

    Returns:
        The records and the names of the files they go to. Bad bodies never raise.
    """
    if not len(events):
        raise ValueError("a batch has at least one event")
    batch = events if isinstance(events, EventColumns) else EventColumns.from_events(events)
    ingested = rfc3339_ms(ingested_at)
    partition = partition_id or ""
    times = batch.enqueued_times
    if set(map(attrgetter("tzinfo"), times)) != {UTC}:
        times = [as_utc(t) for t in times]
    # The whole batch in one call per step, column by column: this is the hot path.
    outcomes = validate_batch(batch.bodies, times)
    time_texts = BatchTimeFormatter(times[0]).format_all(times)
    bronze: list[BronzeRecord] = []
    quarantine: list[QuarantineRecord] = []
    reasons: Counter[str] = Counter()
    keep = bronze.append
    for outcome, body, sequence_number, offset, enqueued, partition_key, properties, system_properties in zip(
        outcomes,
        batch.bodies,
        batch.sequence_numbers,
        batch.offsets,
        time_texts,
        batch.partition_keys,
        batch.properties,
        batch.system_properties,
        strict=True,
    ):
        if type(outcome) is not str and not outcome.reasons and outcome.event_id is not None:
            outcome = outcome.event_id  # valid by the slow path's word
        if type(outcome) is str:  # valid: validate_batch gives its eventId
            keep(
                {
                    "SequenceNumber": sequence_number,
                    "Offset": offset,
                    "EnqueuedTimeUtc": enqueued,
                    "SystemProperties": system_properties,
                    "Properties": properties,
                    "Body": body,
                    "PartitionId": partition,
                    "PartitionKey": partition_key,
                    "EventId": outcome,
                    "IngestedTimeUtc": ingested,
                }
            )
            continue
        assert not isinstance(outcome, str)  # a Verdict from here on (the check is for mypy)
        codes = list(outcome.reasons) or ["missing:eventId"]
        reasons.update(codes)
        text, encoding = body_as_text(body)
        quarantine.append(
            {
                "SequenceNumber": sequence_number,
                "Offset": offset,
                "EnqueuedTimeUtc": enqueued,
                "SystemProperties": system_properties,
                "Properties": properties,
                "Body": text,
                "BodyEncoding": encoding,
                "PartitionId": partition,
                "PartitionKey": partition_key,
                "EventId": outcome.event_id,
                "IngestedTimeUtc": ingested,
                "Reasons": codes,
            }
        )
    return BatchResult(
        folder=batch_folder(stream, times[0]),
        file_stem=batch_file_stem(partition_id, batch),
        bronze=bronze,
        quarantine=quarantine,
        reasons=reasons,
        body_bytes=sum(map(len, batch.bodies)),
    )


def body_as_text(body: bytes) -> tuple[str, str]:
    """Return the body as UTF-8 text, or as base64 when it is not UTF-8, with the encoding's name."""
    try:
        return body.decode("utf-8"), "utf8"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def original_body(record: Mapping[str, Any]) -> bytes:
    """Recover a quarantined event's original bytes (for fixing and replaying it)."""
    if record["BodyEncoding"] == "base64":
        return base64.b64decode(record["Body"])
    return str(record["Body"]).encode("utf-8")
