"""The trigger payload: an embedded-hub batch as the Python worker hands it to a function.

For a many-cardinality Event Hubs function the Functions host sends the events' bodies plus
trigger metadata (``SystemPropertiesArray``, ``PropertiesArray``, ``PartitionContext``, ...), and
the worker builds one ``azure.functions.EventHubEvent`` per event from them. This module builds
the same objects from :class:`localhub.ReceivedEvent` s.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import orjson
from azure.functions import meta

from localhub import ReceivedEvent


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def trigger_metadata(received: Sequence[ReceivedEvent], hub_name: str, consumer_group: str) -> dict[str, Any]:
    """The trigger metadata the Functions host sends with a many-cardinality Event Hubs batch.

    Name to value; the host sends each value as JSON (``TypedData.json``). Offsets are numbers in
    ``SystemPropertiesArray`` (the .NET host serializes them so) and strings in ``OffsetArray``.
    """
    system_array = []
    for event in received:
        enqueued = _rfc3339(event.enqueued_time)
        system: dict[str, Any] = {
            "x-opt-sequence-number": event.sequence_number,
            "x-opt-offset": int(event.offset),
            "x-opt-enqueued-time": enqueued,
        }
        if event.partition_key is not None:
            system["x-opt-partition-key"] = event.partition_key
        system.update(
            SequenceNumber=event.sequence_number,
            Offset=int(event.offset),
            PartitionKey=event.partition_key,
            EnqueuedTimeUtc=enqueued,
        )
        system_array.append(system)
    return {
        "SystemPropertiesArray": system_array,
        "PropertiesArray": [event.properties or {} for event in received],
        "PartitionContext": {
            "FullyQualifiedNamespace": "localhub",
            "EventHubName": hub_name,
            "ConsumerGroup": consumer_group,
            "PartitionId": received[0].partition_id if received else "",
        },
        "SequenceNumberArray": [s["SequenceNumber"] for s in system_array],
        "OffsetArray": [str(s["Offset"]) for s in system_array],
        "EnqueuedTimeUtcArray": [s["EnqueuedTimeUtc"] for s in system_array],
        "PartitionKeyArray": [s["PartitionKey"] for s in system_array],
    }


def build_event_batch(
    received: Sequence[ReceivedEvent], hub_name: str, consumer_group: str
) -> list[func.EventHubEvent]:
    """The ``list[EventHubEvent]`` the Python worker hands a many-cardinality function.

    The worker builds each event from the host's ``SystemPropertiesArray`` entry (so the offset
    arrives as an int) and shares one trigger-metadata mapping across the batch.
    tests/integration/test_worker_conformance.py checks the handler writes the same files from
    these events as from the ones the real worker decodes out of the same host invocation.
    """
    metadata = {
        name: meta.Datum(orjson.dumps(value).decode(), "json")
        for name, value in trigger_metadata(received, hub_name, consumer_group).items()
    }
    return [
        func.EventHubEvent(
            body=event.body,
            trigger_metadata=metadata,
            enqueued_time=event.enqueued_time.astimezone(UTC),
            partition_key=event.partition_key,
            sequence_number=event.sequence_number,
            offset=int(event.offset),  # type: ignore[arg-type]  # the worker passes an int here
            iothub_metadata={},
        )
        for event in received
    ]
