"""Reading a many-cardinality Event Hubs trigger batch, through azure-functions' public API only.

The Python worker hands the ingest Function a ``list[EventHubEvent]``: each event's body and the
attributes the worker took from the host's ``SystemPropertiesArray`` (sequence number, offset,
enqueued time, partition key), and one trigger-metadata mapping shared by the whole batch
(``EventHubEvent.metadata``: ``SystemPropertiesArray``, ``PropertiesArray``, ``PartitionContext``,
...). :func:`columns_from_trigger` turns that into the plain
:class:`functions.ingest_core.EventColumns` the core takes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from operator import methodcaller
from typing import Any

import azure.functions as func

from contract.bronze import as_utc
from functions.fast_columns import all_of_type
from functions.ingest_core import UNKNOWN_SEQUENCE_NUMBER, EventColumns

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
# The empty properties of every event that has none (shared: records never change them).
_NONE: Mapping[str, Any] = {}


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
    # One metadata mapping serves the whole batch: the library decodes it once, on first use.
    metadata = events[0].metadata or {}
    system_array = _list_of_dicts(metadata.get("SystemPropertiesArray"), len(events))
    properties = _list_of_dicts(metadata.get("PropertiesArray"), len(events))
    bodies = [event.get_body() for event in events]
    numbers: list[Any] = [event.sequence_number for event in events]
    offsets: list[Any] = [event.offset for event in events]  # the worker passes ints
    times: list[Any] = [event.enqueued_time for event in events]
    keys: list[Any] = [event.partition_key for event in events]
    if not all_of_type(bodies, bytes):
        bodies = [b if type(b) is bytes else bytes(b or b"") for b in bodies]
    if not all_of_type(numbers, int):
        numbers = [
            _int_or(n if n is not None else s.get("SequenceNumber"), UNKNOWN_SEQUENCE_NUMBER)
            for n, s in zip(numbers, system_array, strict=True)
        ]
    if all_of_type(offsets, int):
        offsets = list(map(str, offsets))
    elif not all_of_type(offsets, str):
        offsets = [
            o if type(o) is str else _offset_text(o, s) for o, s in zip(offsets, system_array, strict=True)
        ]
    if None in times:
        times = [
            t or _parse_time(s.get("EnqueuedTimeUtc")) or datetime.now(UTC)
            for t, s in zip(times, system_array, strict=True)
        ]
    if None in keys:
        system_keys = list(map(methodcaller("get", "PartitionKey"), system_array))
        if system_keys.count(None) != len(system_keys):  # some event's key is in the array only
            keys = [
                k if k is not None or sk is None else str(sk) for k, sk in zip(keys, system_keys, strict=True)
            ]
    if set().union(*system_array) <= _PROMOTED:  # no other system properties at all (the usual batch)
        others: list[Mapping[str, Any]] = [_NONE] * len(events)
    else:
        others = [
            _NONE if s.keys() <= _PROMOTED else {k: v for k, v in s.items() if k not in _PROMOTED}
            for s in system_array
        ]
    columns = EventColumns(
        bodies=bodies,
        sequence_numbers=numbers,
        offsets=offsets,
        enqueued_times=times,
        partition_keys=keys,
        # Property values keep the type the producer sent (Avro bronze stores them typed; JSON
        # lines render them as text when writing).
        properties=properties,
        system_properties=others,
    )
    return partition_id_from_metadata(metadata, system_array), columns


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
        return [_NONE] * length
    # type() first: an isinstance check against the Mapping ABC is slow, and JSON gives dicts.
    return [item if type(item) is dict or isinstance(item, Mapping) else _NONE for item in value]


def _offset_text(offset: Any, system: Mapping[str, Any]) -> str:
    if offset is None:
        offset = system.get("Offset")
    return "" if offset is None else str(offset)


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
