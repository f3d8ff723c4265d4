"""The ingest Function's pure core: one Event Hubs batch in, bronze and quarantine records out.

No I/O here. Every event of a batch ends up in exactly one of the two lists the core returns:
``bronze`` (the body passed the contract) or ``quarantine`` (it did not; the record says why and
keeps the original bytes). The record shapes are the ones docs/architecture.md "Bronze records"
documents, as plain dicts so that the encoders in :mod:`functions.bronze` stay fast.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from operator import attrgetter, itemgetter
from typing import Any, TypedDict, overload

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


@dataclass(frozen=True, eq=False)
class BronzeBatch(Sequence[BronzeRecord]):
    """Valid events as columns, one per :class:`BronzeRecord` field, read as a sequence of records.

    The encoders in :mod:`functions.bronze` write a whole file from the columns without a dict
    per event (the hot path); indexing, iterating and comparing give the records themselves.
    """

    sequence_numbers: Sequence[int]
    offsets: Sequence[str]
    enqueued_times: Sequence[str]
    system_properties: Sequence[Mapping[str, str]]
    properties: Sequence[Mapping[str, str]]
    bodies: Sequence[bytes]
    partition_ids: Sequence[str]
    partition_keys: Sequence[str | None]
    event_ids: Sequence[str]
    ingested_times: Sequence[str]

    @classmethod
    def from_records(cls, records: Sequence[BronzeRecord]) -> BronzeBatch:
        """Columns from records (a BronzeBatch is returned as it is)."""
        if isinstance(records, BronzeBatch):
            return records
        return cls(*([r[name] for r in records] for name in _BRONZE_FIELDS))  # type: ignore[literal-required]

    def __len__(self) -> int:
        return len(self.bodies)

    @overload
    def __getitem__(self, index: int) -> BronzeRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[BronzeRecord]: ...

    def __getitem__(self, index: int | slice) -> BronzeRecord | list[BronzeRecord]:
        if isinstance(index, slice):
            return list(self)[index]
        return self._record(*(column[index] for column in self._columns()))

    def __iter__(self) -> Iterator[BronzeRecord]:
        return itertools.starmap(self._record, zip(*self._columns(), strict=True))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BronzeBatch({list(self)!r})"

    def _columns(self) -> list[Sequence[Any]]:
        return [getattr(self, name) for name in _COLUMN_NAMES]

    @staticmethod
    def _record(*values: Any) -> BronzeRecord:
        return dict(zip(_BRONZE_FIELDS, values, strict=True))  # type: ignore[return-value]


# The record fields in their documented order, and the BronzeBatch column holding each.
_BRONZE_FIELDS = tuple(BronzeRecord.__annotations__)
_COLUMN_NAMES = tuple(f.name for f in fields(BronzeBatch))


@dataclass(frozen=True)
class BatchResult:
    """Where every event of one batch goes, and the names its files get.

    Attributes:
        folder: ``<stream>/ingest_date=YYYY-MM-DD/hour=HH`` (the same under both containers).
        file_stem: ``p<partition>-<first seq:020d>-<last seq:020d>-<first enqueued>-<hub tag>``
            (:func:`batch_file_stem`); the extension is the format's.
        bronze: The valid events, in batch order (columns that read as records).
        quarantine: Records of the rejected events, in batch order.
        reasons: How many rejected events carried each reason code.
        body_bytes: Total size of the batch's bodies.
    """

    folder: str
    file_stem: str
    bronze: BronzeBatch
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


def batch_file_stem(
    partition_id: str | None, events: Sequence[HubEvent] | EventColumns, hub: str = DEFAULT_HUB_TAG
) -> str:
    """Name a batch's files from what the hub assigned: ``p<partition>-<first>-<last>-<time>-<hub>``.

    The first and last sequence numbers, the first event's enqueued time (UTC, milliseconds,
    ``20261122T074320123Z``) and the hub's tag (:func:`hub_tag`). The name depends only on what
    the hub assigned, so a replay of the same batch gets the same name, while the same sequence
    numbers from a recreated hub (a later enqueued time) or from another hub (another tag) get
    another. When the host did not say which partition the batch came from (or gave no sequence
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
    enqueued = as_utc(batch.enqueued_times[0])
    stamp = f"{enqueued:%Y%m%dT%H%M%S}{enqueued.microsecond // 1000:03d}Z"
    return f"{prefix}-{max(first, 0):020d}-{max(last, 0):020d}-{stamp}-{hub}"


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
    times = batch.enqueued_times
    if set(map(attrgetter("tzinfo"), times)) != {UTC}:
        times = [as_utc(t) for t in times]
    # The whole batch in one call per step, column by column: this is the hot path.
    outcomes: list[Any] = validate_batch(batch.bodies, times)
    if set(map(type, outcomes)) != {str}:
        # A Verdict without reasons is valid by the slow path's word: keep just its eventId.
        outcomes = [o if type(o) is str or o.reasons or o.event_id is None else o.event_id for o in outcomes]
    time_texts = BatchTimeFormatter(times[0]).format_all(times)
    valid = [i for i, o in enumerate(outcomes) if type(o) is str]
    take = _taker(valid, len(outcomes))
    bronze = BronzeBatch(
        sequence_numbers=take(batch.sequence_numbers),
        offsets=take(batch.offsets),
        enqueued_times=take(time_texts),
        system_properties=take(batch.system_properties),
        properties=take(batch.properties),
        bodies=take(batch.bodies),
        partition_ids=[partition] * len(valid),
        partition_keys=take(batch.partition_keys),
        event_ids=take(outcomes),
        ingested_times=[ingested] * len(valid),
    )
    quarantine: list[QuarantineRecord] = []
    reasons: Counter[str] = Counter()
    rejected = [i for i, o in enumerate(outcomes) if type(o) is not str] if len(valid) < len(outcomes) else []
    for position in rejected:
        outcome, body = outcomes[position], batch.bodies[position]
        codes = list(outcome.reasons) or ["missing:eventId"]
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
                "EventId": outcome.event_id,
                "IngestedTimeUtc": ingested,
                "Reasons": codes,
            }
        )
    return BatchResult(
        folder=batch_folder(stream, times[0]),
        file_stem=batch_file_stem(partition_id, batch, hub),
        bronze=bronze,
        quarantine=quarantine,
        reasons=reasons,
        body_bytes=sum(map(len, batch.bodies)),
    )


def _taker(positions: list[int], length: int) -> Any:
    """A function picking ``positions`` from a column of ``length`` values (one C call per column)."""
    if len(positions) == length:
        return list
    if len(positions) > 1:
        pick = itemgetter(*positions)
        return lambda column: list(pick(column))
    return lambda column: [column[i] for i in positions]


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
