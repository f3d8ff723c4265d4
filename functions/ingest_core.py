"""The ingest Function's plain core: one Event Hubs batch in, its bronze and quarantine files out.

No I/O and nothing of Azure: :func:`ingest_batch` takes the batch as columns (what
:mod:`functions.eventhub_trigger` reads from the trigger) and returns the files to write and the
report to log; :mod:`functions.landing` writes them. Every event of a batch ends up in exactly
one of two places: bronze (the body passed the contract) or quarantine (it did not; the record
says why and keeps the original bytes). The record shapes are the ones docs/architecture.md
"Bronze records" documents (:mod:`functions.records`); file names and folders come from
:mod:`contract.lake_layout`.
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from contract import EVENT_ID_FIELD, MISSING, Verdict, field_reason, validate_batch
from contract.bronze import BODY_BASE64, BODY_UTF8, QUARANTINE_FORMAT, as_utc, rfc3339_ms
from contract.lake_layout import BatchFile, BatchName, is_safe_partition_id
from functions.bronze import encode_bronze, encode_quarantine
from functions.fast_columns import BatchTimeFormatter, taker, utc_times
from functions.records import BronzeBatch, QuarantineRecord
from settings import Settings

UNKNOWN_SEQUENCE_NUMBER = -1


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


def hub_tag(event_hub: str, namespace: str = "", connection: str = "") -> str:
    """The short tag of the event hub that assigned a batch's sequence numbers (8 hex digits).

    Sequence numbers alone do not name an event: they start again at 0 when a hub is recreated,
    and two hubs writing into one lake count independently. The tag is a digest of
    ``<namespace>/<event hub>`` (lower case: both names are case-insensitive), so two hubs' files
    differ by name. The namespace comes from ``namespace`` (the identity-based setting) or else
    the connection string's ``Endpoint``; a connection string's ``EntityPath`` names the hub.
    The embedded hub has no namespace (empty).
    """
    parts = dict(p.split("=", 1) for p in connection.split(";") if "=" in p)
    fields = {key.strip().lower(): value.strip() for key, value in parts.items()}
    namespace = namespace or fields.get("endpoint", "")
    namespace = namespace.lower().removeprefix("sb://").removeprefix("amqps://").strip("/")
    event_hub = fields.get("entitypath") or event_hub
    return hashlib.sha256(f"{namespace}/{event_hub.lower()}".encode()).hexdigest()[:8]


#: The tag of the local default hub (``weather`` on the embedded hub): what callers get unless
#: they say which hub a batch came from.
DEFAULT_HUB_TAG = hub_tag("weather")


@dataclass(frozen=True)
class IngestConfig:
    """What the ingest Function needs from the settings."""

    stream: str = "weather"
    bronze_format: str = "jsonl"
    bronze_container: str = "bronze"
    quarantine_container: str = "quarantine"
    hub: str = DEFAULT_HUB_TAG  # the event hub's tag in file names (hub_tag)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            stream=settings.bronze_stream,
            bronze_format=settings.bronze_format,
            bronze_container=settings.bronze_container,
            quarantine_container=settings.quarantine_container,
            hub=hub_tag(settings.eventhub_name, settings.eventhub_namespace, settings.eventhub_connection),
        )


# --- one batch ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchResult:
    """Where every event of one batch goes, and the names its files get.

    Attributes:
        name: The batch's file name, whatever the format (:class:`contract.lake_layout.BatchName`).
        bronze: The valid events, in batch order (columns that read as records).
        quarantine: Records of the rejected events, in batch order.
        reasons: How many rejected events carried each reason code.
        body_bytes: Total size of the batch's bodies.
    """

    name: BatchName
    bronze: BronzeBatch
    quarantine: list[QuarantineRecord]
    reasons: Counter[str]
    body_bytes: int

    @property
    def folder(self) -> str:
        """The batch's date and hour folder (the same under both containers)."""
        return self.name.folder

    @property
    def file_stem(self) -> str:
        """The stem of the batch's file names (:class:`contract.lake_layout.BatchName`)."""
        return self.name.stem

    @property
    def event_count(self) -> int:
        return len(self.bronze) + len(self.quarantine)


def process_batch(
    events: Sequence[HubEvent] | EventColumns,
    partition_id: str | None,
    stream: str,
    ingested_at: datetime,
    hub: str = DEFAULT_HUB_TAG,
) -> BatchResult:
    """Validate a batch and build its bronze and quarantine records.

    Args:
        events: The batch, in the order the hub delivered it (not empty).
        partition_id: The partition the batch came from, or None when the host did not say.
        stream: The stream name (first folder level under each container).
        ingested_at: When the Function handled the batch.
        hub: The tag of the event hub the batch came from (:func:`hub_tag`), for its file names.

    Returns:
        The records and the names of the files they go to. Bad bodies never raise.
    """
    if not len(events):
        raise ValueError("a batch has at least one event")
    batch = events if isinstance(events, EventColumns) else EventColumns.from_events(events)
    ingested = rfc3339_ms(ingested_at)
    partition = partition_id or ""
    times = utc_times(batch.enqueued_times)
    # The whole batch in one call per step, column by column: this is the hot path.
    outcomes = validate_batch(batch.bodies, times)
    time_texts = BatchTimeFormatter(times[0]).format_all(times)
    valid = [i for i, o in enumerate(outcomes) if type(o) is str]
    take = taker(valid, len(outcomes))
    bronze = BronzeBatch(
        sequence_numbers=take(batch.sequence_numbers),
        offsets=take(batch.offsets),
        enqueued_times=take(time_texts),
        system_properties=take(batch.system_properties),
        properties=take(batch.properties),
        bodies=take(batch.bodies),
        partition_ids=[partition] * len(valid),
        partition_keys=take(batch.partition_keys),
        event_ids=take(outcomes),  # type: ignore[arg-type]  # the valid ones: their eventIds
        ingested_times=[ingested] * len(valid),
    )
    quarantine: list[QuarantineRecord] = []
    reasons: Counter[str] = Counter()
    rejected = (
        [(i, o) for i, o in enumerate(outcomes) if type(o) is Verdict] if len(valid) < len(outcomes) else []
    )
    for position, verdict in rejected:
        body = batch.bodies[position]
        codes = list(verdict.reasons) or [field_reason(MISSING, EVENT_ID_FIELD)]
        reasons.update(codes)
        text, encoding = body_as_text(body)
        quarantine.append(
            {
                "SequenceNumber": batch.sequence_numbers[position],
                "Offset": batch.offsets[position],
                "EnqueuedTimeUtc": time_texts[position],
                "SystemProperties": batch.system_properties[position],
                "Properties": batch.properties[position],
                "Body": text,
                "BodyEncoding": encoding,
                "PartitionId": partition,
                "PartitionKey": batch.partition_keys[position],
                "EventId": verdict.event_id,
                "IngestedTimeUtc": ingested,
                "Reasons": codes,
            }
        )
    return BatchResult(
        name=batch_name(partition_id, batch, stream, hub),
        bronze=bronze,
        quarantine=quarantine,
        reasons=reasons,
        body_bytes=sum(map(len, batch.bodies)),
    )


@dataclass(frozen=True)
class LakeFile:
    """One file to create in the lake: where, under which name, with which bytes."""

    container: str
    file: BatchFile
    data: bytes

    @property
    def path(self) -> str:
        return self.file.path


@dataclass
class BatchReport:
    """What one invocation did: counts for the structured log and the local host's status."""

    partition_id: str | None
    events: int
    valid: int
    quarantined: int
    reasons: dict[str, int]
    body_bytes: int
    duration_ms: float
    files: dict[str, str] = field(default_factory=dict)  # container -> path
    written: dict[str, bool] = field(default_factory=dict)  # container -> False when it existed
    conflicts: dict[str, str] = field(default_factory=dict)  # container -> usual path holding other events

    def as_log(self) -> dict[str, Any]:
        return {
            "event": "ingest_batch",
            "partition_id": self.partition_id,
            "events": self.events,
            "valid": self.valid,
            "quarantined": self.quarantined,
            "quarantined_by_reason": self.reasons,
            "bytes": self.body_bytes,
            "duration_ms": round(self.duration_ms, 3),
            "files": self.files,
            "replayed": [c for c, wrote in self.written.items() if not wrote],
            "conflicts": self.conflicts,
        }


@dataclass(frozen=True)
class IngestedBatch:
    """One batch, ingested: the files to write (bronze first, when there are valid events) and
    the report, whose files the writer completes (:func:`functions.landing.land_batch`)."""

    files: list[LakeFile]
    report: BatchReport


def ingest_batch(
    events: EventColumns,
    partition_id: str | None,
    config: IngestConfig,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> IngestedBatch:
    """Turn one batch into its bronze and quarantine files, encoded, and the report to log.

    Args:
        events: The batch, in the order the hub delivered it (not empty).
        partition_id: The partition the batch came from, or None when the host did not say.
        config: Stream, format and container names, and the hub's tag.
        clock: The ingestion time source.
    """
    result = process_batch(events, partition_id, config.stream, clock(), config.hub)
    report = BatchReport(
        partition_id,
        len(events),
        len(result.bronze),
        len(result.quarantine),
        dict(result.reasons),
        result.body_bytes,
        0.0,
    )
    files = []
    if result.bronze:
        data = encode_bronze(result.bronze, config.bronze_format, result.file_stem)
        files.append(LakeFile(config.bronze_container, result.name.file(config.bronze_format), data))
    if result.quarantine:
        data = encode_quarantine(result.quarantine)
        files.append(LakeFile(config.quarantine_container, result.name.file(QUARANTINE_FORMAT), data))
    return IngestedBatch(files, report)


# --- names and identity ---------------------------------------------------------------------------


def batch_name(
    partition_id: str | None,
    events: Sequence[HubEvent] | EventColumns,
    stream: str = "weather",
    hub: str = DEFAULT_HUB_TAG,
) -> BatchName:
    """Name a batch's files from what the hub assigned (:mod:`contract.lake_layout`).

    The partition, the first and last sequence numbers, the first event's enqueued time (UTC,
    milliseconds) and the hub's tag (:func:`hub_tag`). The name depends only on what the hub
    assigned, so a replay of the same batch gets the same name, while the same sequence numbers
    from a recreated hub (a later enqueued time) or from another hub (another tag) get another.
    When the host did not say which partition the batch came from (or gave no sequence numbers),
    a digest of the batch's offsets, sequence numbers and bodies stands in for the partition id:
    two partitions' batches then still get different names (unless they are the same events).
    """
    batch = events if isinstance(events, EventColumns) else EventColumns.from_events(events)
    first, last = min(batch.sequence_numbers), max(batch.sequence_numbers)
    digest = None
    if first < 0 or partition_id is None or not is_safe_partition_id(partition_id):
        hashed = hashlib.sha256()
        for number, offset, body in zip(batch.sequence_numbers, batch.offsets, batch.bodies, strict=True):
            hashed.update(f"{number}\x00{offset}\x00".encode())
            hashed.update(hashlib.sha256(body).digest())
        partition_id, digest = None, hashed.hexdigest()[:16]
    enqueued = as_utc(batch.enqueued_times[0])
    return BatchName(
        stream=stream,
        partition_id=partition_id,
        digest=digest,
        first_sequence_number=max(first, 0),
        last_sequence_number=max(last, 0),
        first_enqueued=enqueued.replace(microsecond=enqueued.microsecond // 1000 * 1000),
        hub_tag=hub,
    )


def batch_digest(events: EventColumns) -> str:
    """16 hex digits that differ for any two batches with different events (sequence numbers,
    offsets, enqueued times or bodies) and are the same for a replay of one batch."""
    digest = hashlib.sha256()
    for number, offset, moment, body in zip(
        events.sequence_numbers, events.offsets, events.enqueued_times, events.bodies, strict=True
    ):
        digest.update(f"{number}\x00{offset}\x00{rfc3339_ms(moment)}\x00".encode())
        digest.update(hashlib.sha256(body).digest())
    return digest.hexdigest()[:16]


def holds_events_of(records: Sequence[Mapping[str, Any]], events: EventColumns) -> bool:
    """Whether every record of an existing bronze or quarantine file is one of ``events``.

    Compares what the hub assigned (sequence number, offset, enqueued time) and the body. A
    replayed batch passes (its records may be a subset when the contract changed in between and
    the split between bronze and quarantine moved); a different batch that happens to have the
    same file name does not.
    """
    mine = {
        number: (str(offset), rfc3339_ms(moment), body)
        for number, offset, moment, body in zip(
            events.sequence_numbers, events.offsets, events.enqueued_times, events.bodies, strict=True
        )
    }
    if not records:
        return False
    for record in records:
        body = original_body(record) if "BodyEncoding" in record else record.get("Body")
        if isinstance(body, str):
            body = body.encode("utf-8")
        theirs = (str(record.get("Offset")), str(record.get("EnqueuedTimeUtc")), body)
        if mine.get(record.get("SequenceNumber")) != theirs:  # type: ignore[arg-type]
            return False
    return True


def body_as_text(body: bytes) -> tuple[str, str]:
    """Return the body as UTF-8 text, or as base64 when it is not UTF-8, with the encoding's name."""
    try:
        return body.decode("utf-8"), BODY_UTF8
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), BODY_BASE64


def original_body(record: Mapping[str, Any]) -> bytes:
    """Recover a quarantined event's original bytes (for fixing and replaying it)."""
    if record["BodyEncoding"] == BODY_BASE64:
        return base64.b64decode(record["Body"])
    return str(record["Body"]).encode("utf-8")
