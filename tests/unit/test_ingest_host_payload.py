"""The local host hands the function what the Python worker would build from the real host's data."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from azure.functions import meta
from azure.functions.eventhub import EventHubTriggerConverter

from localhub import ReceivedEvent
from pipeline.host import build_event_batch

RECEIVED = [
    ReceivedEvent(
        body=b'{"eventId": "a"}',
        properties={"source": "sim", "n": 1},
        partition_key="oslo",
        partition_id="2",
        sequence_number=40,
        offset="8192",
        enqueued_time=datetime(2026, 11, 22, 7, 43, 20, 123000, tzinfo=UTC),
    ),
    ReceivedEvent(
        body=b"\xff not utf-8",
        properties={},
        partition_key=None,
        partition_id="2",
        sequence_number=41,
        offset="8300",
        enqueued_time=datetime(2026, 11, 22, 7, 43, 21, tzinfo=UTC),
    ),
]


class _Bodies:
    def __init__(self, data: list[bytes]) -> None:
        self.bytes = data


def worker_decoded() -> list:  # type: ignore[type-arg]
    """What azure-functions' own converter makes of the host's binding data for this batch."""
    system = [
        {
            "SequenceNumber": 40,
            "Offset": 8192,
            "PartitionKey": "oslo",
            "EnqueuedTimeUtc": "2026-11-22T07:43:20.123Z",
        },
        {
            "SequenceNumber": 41,
            "Offset": 8300,
            "PartitionKey": None,
            "EnqueuedTimeUtc": "2026-11-22T07:43:21.000Z",
        },
    ]
    metadata = {"SystemPropertiesArray": meta.Datum(json.dumps(system), "json")}
    result = EventHubTriggerConverter.decode(
        meta.Datum(_Bodies([e.body for e in RECEIVED]), "collection_bytes"), trigger_metadata=metadata
    )
    assert isinstance(result, list)
    return result


def test_events_carry_the_same_attributes_as_the_workers_own_decoding() -> None:
    ours = build_event_batch(RECEIVED, "weather", "ingest")
    theirs = worker_decoded()

    def attributes(e):  # type: ignore[no-untyped-def]
        return (e.get_body(), e.sequence_number, e.offset, e.enqueued_time, e.partition_key)

    assert [attributes(e) for e in ours] == [attributes(e) for e in theirs]


def test_batch_metadata_has_the_many_cardinality_arrays_and_the_partition_context() -> None:
    events = build_event_batch(RECEIVED, "weather", "ingest")
    metadata = events[0].metadata
    assert metadata is not None

    assert all(e.metadata == metadata for e in events)  # one mapping shared by the batch
    assert [s["SequenceNumber"] for s in metadata["SystemPropertiesArray"]] == [40, 41]
    assert [s["PartitionKey"] for s in metadata["SystemPropertiesArray"]] == ["oslo", None]
    assert metadata["PropertiesArray"] == [{"source": "sim", "n": 1}, {}]
    assert metadata["PartitionContext"]["PartitionId"] == "2"
    assert metadata["PartitionContext"]["ConsumerGroup"] == "ingest"
    assert metadata["PartitionContext"]["EventHubName"] == "weather"
