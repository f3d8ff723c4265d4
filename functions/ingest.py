"""The ingest Function: an Event Hubs batch in, bronze and quarantine files out.

A thin adapter: read each event's metadata, call the pure core (:mod:`functions.ingest_core`),
write the files (:mod:`functions.bronze`, :mod:`functions.lake`), log one structured line per
batch. Bad events never fail the batch (they are quarantined with reason codes); only a storage
failure raises, and the retry policy below then tries again until the storage is back. Every
file is create-only, so a retried or replayed batch never doubles anything.

No ``from __future__ import annotations`` here: the Python worker reads the binding parameters'
annotations with ``typing.get_type_hints`` when it indexes the app, so they are kept as the
objects themselves (nothing left to resolve), and the trigger's is ``typing.List[...]``, the form
every worker accepts (docs/ingest.md, "What the Python worker accepts").
"""

import json
import logging
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from operator import attrgetter, methodcaller
from typing import Any, Self

import azure.functions as func
import msgspec
import orjson

from contract.bronze import QUARANTINE_FORMAT
from functions.bronze import encode_bronze, encode_quarantine, file_name
from functions.ingest_core import (
    DEFAULT_HUB_TAG,
    UNKNOWN_SEQUENCE_NUMBER,
    EventColumns,
    as_utc,
    hub_tag,
    process_batch,
)
from functions.lake import LakeStorage, lake_from_settings
from functions.landing import BatchNameConflict, land
from settings import Settings, load_settings

logger = logging.getLogger("functions.ingest")

# The system properties promoted to envelope fields (under the host's names and the AMQP
# annotations they come from); the rest are kept in SystemProperties.
_PROMOTED = frozenset(
    {
        "SequenceNumber",
        "Offset",
        "EnqueuedTimeUtc",
        "PartitionKey",
        "x-opt-sequence-number",
        "x-opt-offset",
        "x-opt-enqueued-time",
        "x-opt-partition-key",
    }
)

# The trigger metadata entries the handler reads (see trigger_metadata).
_METADATA_READ = ("SystemPropertiesArray", "PropertiesArray", "PartitionContext")
_MISSING = object()
# A SystemPropertiesArray entry with promoted keys only (any other key, or a value that is not
# a JSON number, string or null, fails the decoding). See _only_promoted_system_properties.
_PromotedSystemProperties: Any = msgspec.defstruct(
    "PromotedSystemProperties",
    [
        (
            "partition_key" if name == "PartitionKey" else f"promoted_{index}",
            int | float | str | None,
            msgspec.field(default=None, name=name),
        )
        for index, name in enumerate(sorted(_PROMOTED))
    ],
    forbid_unknown_fields=True,
    gc=False,
)
_PROMOTED_ONLY = msgspec.json.Decoder(list[_PromotedSystemProperties])
# PropertiesArray when every value is a string (the usual case): decoded and checked in one call.
_STRING_MAPS = msgspec.json.Decoder(list[dict[str, str]])
# The empty properties of every event that has none (shared: records never change them).
_NONE: Mapping[str, str] = {}

bp = func.Blueprint()


@bp.function_name("ingest")
# Retry until the storage is back, however long (-1): the host writes no checkpoint while a retry
# policy retries, and Event Hubs keeps the events for its retention period, so a partition waits
# and loses nothing (a bounded policy would checkpoint past the failed batch after its last try).
# Bad events never raise (they are quarantined): only a storage failure waits here.
@bp.retry(
    strategy="exponential_backoff",
    max_retry_count="-1",
    minimum_interval="00:00:05",
    maximum_interval="00:05:00",
)
@bp.event_hub_message_trigger(
    arg_name="events",
    event_hub_name="%EVENTHUB_NAME%",
    consumer_group="%EVENTHUB_CONSUMER_GROUP%",
    connection="EVENTHUB_CONNECTION",
    cardinality="many",
    data_type="binary",
)
# typing.List, not list: the worker refuses a builtin generic (`list[...]` is not a type to it).
def ingest(events: typing.List[func.EventHubEvent]) -> None:  # noqa: UP006
    """Event Hubs trigger (many cardinality): validate the batch and write bronze and quarantine."""
    settings = load_settings()
    lake = _lake_for(
        settings.lake_connection_string, settings.lake_account_url, str(settings.local_lake_path)
    )
    handle_batch(events, lake, IngestConfig.from_settings(settings))


@lru_cache(maxsize=4)
def _lake_for(connection_string: str, account_url: str, local_path: str) -> LakeStorage:
    # One client per lake for the worker's lifetime: connections and credentials are reused.
    return lake_from_settings(
        Settings(
            {
                "LAKE_CONNECTION_STRING": connection_string,
                "LAKE_ACCOUNT_URL": account_url,
                "LOCAL_LAKE_PATH": local_path,
            }
        )
    )


@dataclass(frozen=True)
class IngestConfig:
    """What the handler needs from the settings."""

    stream: str = "weather"
    bronze_format: str = "jsonl"
    bronze_container: str = "bronze"
    quarantine_container: str = "quarantine"
    hub: str = DEFAULT_HUB_TAG  # the event hub's tag in file names (functions.ingest_core.hub_tag)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            stream=settings.bronze_stream,
            bronze_format=settings.bronze_format,
            bronze_container=settings.bronze_container,
            quarantine_container=settings.quarantine_container,
            hub=hub_tag(settings.eventhub_name, settings.eventhub_namespace, settings.eventhub_connection),
        )


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


def handle_batch(
    events: Sequence[func.EventHubEvent],
    lake: LakeStorage,
    config: IngestConfig,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> BatchReport:
    """Turn one trigger batch into bronze and quarantine files.

    Args:
        events: The batch as the host delivered it.
        lake: Where the files go.
        config: Stream, format and container names.
        clock: The ingestion time source.

    Returns:
        The batch's counts and file names.

    Raises:
        BatchNameConflict: a file name of this batch held other events; the batch was written
            under a second name (nothing lost), and the invocation fails so that it is seen.
        Exception: when the storage fails; the batch is then retried whole, and the files
            it already wrote are kept as they are (create-only).
    """
    started = time.perf_counter()
    partition_id, columns = columns_from_trigger(events)
    report = BatchReport(partition_id, len(events), 0, 0, {}, 0, 0.0)
    if columns is not None:
        result = process_batch(columns, partition_id, config.stream, clock(), config.hub)
        report.valid, report.quarantined = len(result.bronze), len(result.quarantine)
        report.reasons, report.body_bytes = dict(result.reasons), result.body_bytes
        if result.bronze:
            path = f"{result.folder}/{file_name(result.file_stem, config.bronze_format)}"
            data = encode_bronze(result.bronze, config.bronze_format, result.file_stem)
            _create(lake, config.bronze_container, path, data, report, columns)
        if result.quarantine:
            path = f"{result.folder}/{file_name(result.file_stem, QUARANTINE_FORMAT)}"
            _create(
                lake, config.quarantine_container, path, encode_quarantine(result.quarantine), report, columns
            )
    report.duration_ms = (time.perf_counter() - started) * 1000
    summary = report.as_log()
    # A JSON message is what App Insights' traces keep verbatim; `extra` carries the same fields
    # as custom dimensions where an OpenTelemetry/Azure Monitor exporter is configured.
    logger.info("ingest_batch %s", json.dumps(summary, sort_keys=True), extra={"custom_dimensions": summary})
    written_elsewhere = {c: report.files[c] for c in report.conflicts if report.written[c]}
    if written_elsewhere:
        # Loud once: a replay of this batch finds its second name holding it and succeeds.
        raise BatchNameConflict(
            "another batch's files already have this batch's names (two event hubs with the same "
            f"namespace and name writing to this lake?): {report.conflicts}; this batch's events were "
            f"written to {written_elsewhere} instead, nothing is lost"
        )
    return report


def _create(
    lake: LakeStorage, container: str, path: str, data: bytes, report: BatchReport, events: EventColumns
) -> None:
    """Write one file of the batch (or find it there: :func:`functions.landing.land`); on a
    storage failure, log it (one line per attempt) and raise."""
    report.files[container] = path
    try:
        landing = land(lake, container, path, data, events)
    except BatchNameConflict:
        raise
    except Exception as exc:
        failure = {
            "event": "ingest_storage_failed",
            "partition_id": report.partition_id,
            "events": report.events,
            "container": container,
            "path": path,
            "error": f"{type(exc).__name__}: {exc}",
        }
        # The retry policy waits and tries again, as long as it takes: the partition waits too.
        logger.warning(
            "ingest_storage_failed %s",
            json.dumps(failure, sort_keys=True),
            extra={"custom_dimensions": failure},
        )
        raise
    report.files[container], report.written[container] = landing.path, landing.written
    if landing.conflict_with is not None:
        report.conflicts[container] = landing.conflict_with


def columns_from_trigger(events: Sequence[func.EventHubEvent]) -> tuple[str | None, EventColumns | None]:
    """Read each event's body and metadata as the many-cardinality trigger supplies them.

    Per-event attributes (sequence number, offset, enqueued time, partition key) come from the
    event, falling back to its ``SystemPropertiesArray`` entry; application and other system
    properties from the batch's trigger metadata (``PropertiesArray``, ``SystemPropertiesArray``);
    the partition id from ``PartitionContext`` when the host supplies it.

    Returns:
        The partition id (None when unknown) and the batch as columns (None when empty).
    """
    if not events:
        return None, None
    bodies, numbers, offsets, times, keys = _attribute_columns(events)  # offsets: the worker's ints
    # The system properties array matters only for what the events lack and for properties
    # other than the promoted ones. When the events lack nothing and the array holds nothing
    # else (the usual batch), checking that is enough: it need not become a dict per event.
    complete = None not in numbers and None not in offsets and None not in times
    string_maps = _string_properties(events[0], len(events))
    only_promoted = complete and _only_promoted_system_properties(
        events[0], len(events), check_key=None in keys
    )
    if only_promoted:
        wanted = ("PartitionContext",) if string_maps is not None else ("PropertiesArray", "PartitionContext")
        metadata = trigger_metadata(events[0], wanted)
        system_array: list[Mapping[str, Any]] = [_NONE] * len(events)
    else:
        metadata = trigger_metadata(events[0])  # shared by every event of a many-cardinality batch
        system_array = _list_of_dicts(metadata.get("SystemPropertiesArray"), len(events))
    partition_id = partition_id_from_metadata(metadata, system_array)
    if set(map(type, bodies)) != {bytes}:
        bodies = [b if type(b) is bytes else bytes(b or b"") for b in bodies]
    # Each check below is one C-level pass over a column; the per-event fallbacks rarely run.
    if set(map(type, numbers)) != {int}:
        numbers = [
            _int_or(n if n is not None else s.get("SequenceNumber"), UNKNOWN_SEQUENCE_NUMBER)
            for n, s in zip(numbers, system_array, strict=True)
        ]
    offset_types = set(map(type, offsets))
    if offset_types == {int}:  # what the worker passes
        offsets = list(map(str, offsets))
    elif offset_types != {str}:
        offsets = [
            o if type(o) is str else _offset_text(o, s) for o, s in zip(offsets, system_array, strict=True)
        ]
    if None in times:
        times = [
            t or _parse_time(s.get("EnqueuedTimeUtc")) or datetime.now(UTC)
            for t, s in zip(times, system_array, strict=True)
        ]
    if None in keys and not only_promoted:  # (only_promoted checked that the array has no key either)
        system_keys = list(map(methodcaller("get", "PartitionKey"), system_array))
        if system_keys.count(None) != len(system_keys):
            keys = [
                k if k is not None or sk is None else str(sk) for k, sk in zip(keys, system_keys, strict=True)
            ]
    if only_promoted or set().union(*system_array) <= _PROMOTED:  # no other system properties at all
        others: list[Mapping[str, Any]] = [_NONE] * len(system_array)
    else:
        others = [
            _NONE if s.keys() <= _PROMOTED else {k: v for k, v in s.items() if k not in _PROMOTED}
            for s in system_array
        ]
    # Property values keep the type the producer sent (Avro bronze stores them typed; JSON lines
    # render them as text when writing).
    properties: Sequence[Mapping[str, Any]]
    if string_maps is not None:
        properties = string_maps
    else:
        properties = _list_of_dicts(metadata.get("PropertiesArray"), len(events))
    columns = EventColumns(
        bodies=bodies,
        sequence_numbers=numbers,
        offsets=offsets,
        enqueued_times=times,
        partition_keys=keys,
        properties=properties,
        system_properties=others,
    )
    return partition_id, columns


# What the public attributes of azure-functions' EventHubEvent return, read straight from the
# instance: one C-level getter per column instead of a Python property call per event.
_PRIVATE_ATTRIBUTES = [
    attrgetter(f"_EventHubEvent__{name}")
    for name in ("body", "sequence_number", "offset", "enqueued_time", "partition_key")
]


def _attribute_columns(events: Sequence[func.EventHubEvent]) -> list[list[Any]]:
    """Bodies, sequence numbers, offsets, enqueued times and partition keys, a list each."""
    if set(map(type, events)) == {func.EventHubEvent}:  # no subclass overriding a property
        try:
            return [list(map(get, events)) for get in _PRIVATE_ATTRIBUTES]
        except AttributeError:
            pass  # another azure-functions version: the public attributes below
    return [
        [e.get_body() for e in events],
        [e.sequence_number for e in events],
        [e.offset for e in events],
        [e.enqueued_time for e in events],
        [e.partition_key for e in events],
    ]


def trigger_metadata(event: func.EventHubEvent, names: Sequence[str] = _METADATA_READ) -> Mapping[str, Any]:
    """The batch's trigger metadata as Python values: only the entries the handler reads.

    ``EventHubEvent.metadata`` decodes every entry, including the four per-event arrays this
    handler never reads (together about as costly as validating the batch). This decodes only
    ``SystemPropertiesArray``, ``PropertiesArray`` and ``PartitionContext``, with orjson as the
    library does (anything orjson refuses goes to the library's own decoding, which then fails
    the same way ``metadata`` would). It reads the event's raw metadata from azure-functions'
    private attribute; should that attribute ever go, it falls back to ``metadata`` (same
    values, slower).
    """
    raw = getattr(event, "_EventHubEvent__trigger_metadata", _MISSING)
    if raw is _MISSING or (raw is not None and not isinstance(raw, Mapping)):
        return event.metadata or {}
    values: dict[str, Any] = {}
    for name in names:
        datum = (raw or {}).get(name)
        if datum is None:
            continue
        if getattr(datum, "type", None) == "json" and isinstance(datum.value, str | bytes):
            try:
                values[name] = orjson.loads(datum.value)
                continue
            except orjson.JSONDecodeError:
                pass
        values[name] = datum.python_value
    return values


def _only_promoted_system_properties(event: func.EventHubEvent, length: int, *, check_key: bool) -> bool:
    """Whether the batch's ``SystemPropertiesArray`` has one entry per event and only promoted keys.

    With ``check_key``, also whether no entry has a non-null ``PartitionKey`` (the fallback for
    events without one). False whenever it cannot tell cheaply; the caller then decodes it all.
    """
    text = _raw_json(event, "SystemPropertiesArray")
    if text is None:
        return False
    try:
        entries = _PROMOTED_ONLY.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return False  # another key (or not the expected shape): the full decoding decides
    if len(entries) != length:
        return False
    return not check_key or set(map(attrgetter("partition_key"), entries)) <= {None}


def _string_properties(event: func.EventHubEvent, length: int) -> Sequence[Mapping[str, str]] | None:
    """The batch's ``PropertiesArray`` when it is one object of strings per event, else None.

    One msgspec call decodes and checks it; anything else (other value types, another length,
    no such entry) is left to the general path, which renders values as strings.
    """
    text = _raw_json(event, "PropertiesArray")
    if text is None:
        return None
    try:
        maps: list[dict[str, str]] = _STRING_MAPS.decode(text)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    return maps if len(maps) == length else None


def _raw_json(event: func.EventHubEvent, name: str) -> str | bytes | None:
    """The undecoded JSON text of one trigger metadata entry, or None when it is not JSON text."""
    raw = getattr(event, "_EventHubEvent__trigger_metadata", None)
    datum = raw.get(name) if isinstance(raw, Mapping) else None
    text = getattr(datum, "value", None)
    if getattr(datum, "type", None) != "json" or not isinstance(text, str | bytes):
        return None
    return text


def _offset_text(offset: Any, system: Mapping[str, Any]) -> str:
    if offset is None:
        offset = system.get("Offset")
    return "" if offset is None else str(offset)


def partition_id_from_metadata(
    metadata: Mapping[str, Any], system_array: Sequence[Mapping[str, Any]]
) -> str | None:
    """The batch's partition id from ``PartitionContext``, else from the system properties."""
    context = metadata.get("PartitionContext")
    if isinstance(context, str):
        try:
            context = json.loads(context)
        except ValueError:
            context = None
    if isinstance(context, Mapping):
        for key, value in context.items():
            if str(key).lower() == "partitionid" and value not in (None, ""):
                return str(value)
    for system in system_array[:1]:
        for key in ("PartitionId", "x-opt-partition-id"):
            if system.get(key) not in (None, ""):
                return str(system[key])
    return None


def _list_of_dicts(value: Any, length: int) -> list[Mapping[str, Any]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, list) or len(value) != length:
        return [{} for _ in range(length)]
    # type() first: an isinstance check against the Mapping ABC is slow, and JSON gives dicts.
    return [item if type(item) is dict or isinstance(item, Mapping) else {} for item in value]


def _int_or(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


# A setting the Function cannot use must fail indexing (the host then loads no ingest function
# and consumes nothing) rather than every batch, which would be checkpointed after its retries.
IngestConfig.from_settings(load_settings())
