"""Reading a partition's range from Event Hubs, with ``EventHubConsumerClient`` replaced by a recording
fake (tests/fixtures/eventhubs.py: the SDK's own ``EventData`` with the service's annotations)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from azure.eventhub import EventData

from pipeline.reingest import EventHubsRange, HubReadError, hub_for, received_event
from settings import Settings
from tests.fixtures.eventhubs import T0, FakeConsumerClient, service_event


def event(number: int, body: bytes | None = None, key: bytes | None = b"oslo") -> EventData:
    return service_event(
        number,
        body if body is not None else b'{"n": %d}' % number,
        offset=str(number * 100),
        enqueued_time=T0 + timedelta(milliseconds=number),
        partition_key=key,
        properties={b"producer": b"test", "n": number},
    )


def test_a_range_is_received_from_its_first_sequence_number_inclusive_and_the_client_closed() -> None:
    client = FakeConsumerClient({"2": [event(n) for n in range(0, 30)]})
    hub = EventHubsRange(lambda: client, max_wait_time=0.01)

    received = hub.read("2", 10, 19)

    assert [e.sequence_number for e in received] == list(range(10, 20))
    [call] = client.calls
    assert call["partition_id"] == "2"
    assert (call["starting_position"], call["starting_position_inclusive"]) == (10, True)
    assert call["max_batch_size"] == 10
    assert client.closed.is_set()


def test_a_received_event_keeps_body_properties_key_offset_and_enqueued_time() -> None:
    client = FakeConsumerClient({"0": [event(7, body=b'{"eventId": "e7"}')]})

    [got] = EventHubsRange(lambda: client, max_wait_time=0.01).read("0", 7, 7)

    assert got.body == b'{"eventId": "e7"}'
    assert got.properties == {"producer": b"test", "n": 7}
    assert got.partition_key == "oslo"
    assert (got.partition_id, got.sequence_number, got.offset) == ("0", 7, "700")
    assert got.enqueued_time == T0 + timedelta(milliseconds=7)


def test_an_event_without_a_partition_key_has_none() -> None:
    assert received_event(event(1, key=None), "0").partition_key is None


def test_events_past_the_retention_are_missing_from_the_range_rather_than_waited_for() -> None:
    # The partition keeps events from 50 on; a range from 40 gets what is left of it, and stops.
    client = FakeConsumerClient({"1": [event(n) for n in range(50, 70)]})

    received = EventHubsRange(lambda: client, max_wait_time=0.01).read("1", 40, 60)

    assert [e.sequence_number for e in received] == list(range(50, 61))


def test_a_range_ending_after_the_last_event_stops_when_nothing_more_arrives() -> None:
    client = FakeConsumerClient({"1": [event(n) for n in range(0, 5)]})

    received = EventHubsRange(lambda: client, max_wait_time=0.01, timeout=5).read("1", 3, 9)

    assert [e.sequence_number for e in received] == [3, 4]


def test_a_receive_error_is_one_line_naming_the_hub() -> None:
    client = FakeConsumerClient({"0": []}, fail_with=ConnectionError("amqp link detached"))
    hub = EventHubsRange(lambda: client, where="event hub 'weather'", max_wait_time=0.01)

    with pytest.raises(HubReadError, match=r"^event hub 'weather': ConnectionError: amqp link detached$"):
        hub.read("0", 0, 3)
    assert client.closed.is_set()


def test_the_settings_choose_event_hubs_with_a_connection_and_the_embedded_hub_without(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[dict[str, Any]] = []

    class Recording(FakeConsumerClient):
        @classmethod
        def from_connection_string(cls, conn_str: str, **kwargs: Any) -> Recording:
            made.append({"conn_str": conn_str, **kwargs})
            return cls({"0": [event(0)]})

    monkeypatch.setattr("azure.eventhub.EventHubConsumerClient", Recording)
    connection = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=x"
    azure = hub_for(
        Settings(values={"PIPELINE_HOME": str(tmp_path), "EVENTHUB_CONNECTION": connection}), "repair"
    )
    local = hub_for(Settings(values={"PIPELINE_HOME": str(tmp_path)}))

    assert isinstance(azure, EventHubsRange)
    azure.max_wait_time = 0.01
    assert [e.sequence_number for e in azure.read("0", 0, 0)] == [0]
    assert made == [{"conn_str": connection, "consumer_group": "repair", "eventhub_name": "weather"}]
    assert "consumer group repair" in azure.describe() and "SharedAccessKey" not in azure.describe()
    assert "embedded hub" in local.describe()
