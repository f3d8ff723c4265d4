"""The embedded event hub: partitions, ordering, batches, consumer groups and checkpoints."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.eventhub import EventData
from azure.eventhub.amqp import AmqpAnnotatedMessage

from localhub import (
    LocalConsumer,
    LocalEventHub,
    LocalProducerClient,
    ReceivedEvent,
    hub_names,
    partition_for_key,
)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[LocalEventHub]:
    hub = LocalEventHub(tmp_path / "hub.db", "weather", 4)
    yield hub
    hub.close()


def send(client: LocalProducerClient, key: str | None, bodies: list[bytes], **batch_args: Any) -> None:
    batch = client.create_batch(partition_key=key, **batch_args)
    for body in bodies:
        batch.add(EventData(body))
    client.send_batch(batch)


def read_all(hub: LocalEventHub, partition_id: str) -> list[ReceivedEvent]:
    return hub.read(partition_id, -1, 1_000_000)


def test_partition_ids_are_strings_from_zero(hub: LocalEventHub) -> None:
    assert hub.partition_ids == ["0", "1", "2", "3"]


def test_partition_key_maps_to_crc32_of_its_utf8_bytes() -> None:
    # Stable across processes and runs (unlike hash()). Published CRC-32 values: "a" 0xE8B7BE43,
    # "b" 0x71BEEFF9, "c" 0x06B9DF6F, "d" 0x98DD4ACC; modulo 4 that is 3, 1, 3, 0.
    assert [partition_for_key(k, 4) for k in ("a", "b", "c", "d")] == [3, 1, 3, 0]
    assert partition_for_key(b"a", 4) == 3
    assert zlib.crc32(b"device-1") % 4 == partition_for_key("device-1", 4)
    assert partition_for_key("Zürich", 7) == zlib.crc32("Zürich".encode()) % 7


def test_events_with_one_key_land_in_one_partition_in_send_order(hub: LocalEventHub) -> None:
    client = LocalProducerClient(hub)
    for start in range(0, 30, 10):
        send(client, "stn-7", [f"e{i}".encode() for i in range(start, start + 10)])
    partition = hub.partition_for_key("stn-7")
    events = read_all(hub, partition)
    assert [e.body for e in events] == [f"e{i}".encode() for i in range(30)]
    assert [e.sequence_number for e in events] == list(range(30))
    assert {e.partition_key for e in events} == {"stn-7"}
    assert {e.partition_id for e in events} == {partition}
    for other in set(hub.partition_ids) - {partition}:
        assert read_all(hub, other) == []


def test_offsets_are_cumulative_byte_positions(hub: LocalEventHub) -> None:
    client = LocalProducerClient(hub)
    bodies = [b"a", b"bbb", b"cc", b"dddd"]
    send(client, None, bodies, partition_id="2")
    send(client, None, [b"eeeee"], partition_id="2")
    events = read_all(hub, "2")
    assert [e.offset for e in events] == ["0", "1", "4", "6", "10"]
    props = hub.get_partition_properties("2")
    assert props.last_enqueued_sequence_number == 4
    assert props.last_enqueued_offset == "10"
    assert not props.is_empty


def test_each_partition_counts_its_own_sequence_numbers(hub: LocalEventHub) -> None:
    client = LocalProducerClient(hub)
    keys = [f"dev-{i}" for i in range(20)]
    for round_ in range(3):
        for key in keys:
            send(client, key, [f"{key}/{round_}/{j}".encode() for j in range(5)])
    total = 0
    for pid in hub.partition_ids:
        events = read_all(hub, pid)
        total += len(events)
        assert [e.sequence_number for e in events] == list(range(len(events)))
        for key in {e.partition_key or "" for e in events}:
            assert hub.partition_for_key(key) == pid
            mine = [e.body.decode() for e in events if e.partition_key == key]
            assert mine == [f"{key}/{r}/{j}" for r in range(3) for j in range(5)]
    assert total == 20 * 3 * 5
    assert hub.count() == 300


def test_batches_without_key_go_round_robin(hub: LocalEventHub) -> None:
    client = LocalProducerClient(hub)
    for i in range(8):
        send(client, None, [f"b{i}".encode()])
    assert {pid: len(read_all(hub, pid)) for pid in hub.partition_ids} == {"0": 2, "1": 2, "2": 2, "3": 2}
    assert {e.partition_key for pid in hub.partition_ids for e in read_all(hub, pid)} == {None}


def test_batch_refuses_an_event_that_would_exceed_its_size(hub: LocalEventHub) -> None:
    batch = LocalProducerClient(hub).create_batch(max_size_in_bytes=1000)
    added = 0
    with pytest.raises(ValueError, match="size limit"):
        for _ in range(100):
            batch.add(EventData(b"x" * 100))
            added += 1
    assert 1 <= added < 10
    assert len(batch) == added
    assert batch.size_in_bytes <= 1000


def test_default_batch_holds_up_to_one_mebibyte(hub: LocalEventHub) -> None:
    batch = LocalProducerClient(hub).create_batch()
    with pytest.raises(ValueError):
        for _ in range(2000):
            batch.add(EventData(b"y" * 1024))
    assert 1000 <= len(batch) < 1024


def test_properties_and_enqueued_time_come_back(hub: LocalEventHub) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    event = EventData(b"{}")
    event.properties = {"source": "test", "attempt": 2, b"raw": b"bytes"}
    message = AmqpAnnotatedMessage(data_body=b"[]", application_properties={"kind": "amqp"})
    client = LocalProducerClient(hub)
    batch = client.create_batch(partition_id="1")
    batch.add(event)
    batch.add(message)
    client.send_batch(batch)
    after = datetime.now(UTC)
    first, second = read_all(hub, "1")
    assert first.properties == {"source": "test", "attempt": 2, "raw": "bytes"}
    assert second.body == b"[]"
    assert second.properties == {"kind": "amqp"}
    assert before <= first.enqueued_time <= after
    assert first.enqueued_time.tzinfo is not None


def test_send_batch_takes_a_list_of_event_data(hub: LocalEventHub) -> None:
    LocalProducerClient(hub).send_batch([EventData(b"1"), EventData(b"2")], partition_key="k")
    assert [e.body for e in read_all(hub, hub.partition_for_key("k"))] == [b"1", b"2"]


def test_receive_starts_after_the_checkpoint_and_does_not_move_it(hub: LocalEventHub) -> None:
    send(LocalProducerClient(hub), None, [f"{i}".encode() for i in range(10)], partition_id="0")
    consumer = LocalConsumer(hub, "ingest")
    first = consumer.receive_batch("0", max_batch_size=4)
    assert [e.sequence_number for e in first] == [0, 1, 2, 3]
    # Without a checkpoint the same events come back (at least once).
    assert [e.sequence_number for e in consumer.receive_batch("0", 4)] == [0, 1, 2, 3]
    consumer.checkpoint("0", first[-1].sequence_number, first[-1].offset)
    assert consumer.get_checkpoint("0") == (3, "3")
    assert [e.sequence_number for e in consumer.receive_batch("0", 100)] == [4, 5, 6, 7, 8, 9]
    assert [e.sequence_number for e in consumer.receive_batch("0", 2, after_sequence_number=7)] == [8, 9]


def test_a_new_consumer_resumes_from_the_stored_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    with LocalEventHub(path, partitions=2) as hub:
        send(LocalProducerClient(hub), None, [f"{i}".encode() for i in range(6)], partition_id="1")
        consumer = LocalConsumer(hub, "ingest")
        events = consumer.receive_batch("1", 3)
        consumer.checkpoint("1", events[-1].sequence_number, events[-1].offset)
    with LocalEventHub(path) as reopened:
        assert reopened.partition_count == 2
        resumed = LocalConsumer(reopened, "ingest").receive_batch("1", 10)
        assert [e.body for e in resumed] == [b"3", b"4", b"5"]
        # Another group has its own checkpoints and starts at the beginning.
        assert len(LocalConsumer(reopened, "audit").receive_batch("1", 10)) == 6


def test_backlog_and_last_sequence_number_per_partition(hub: LocalEventHub) -> None:
    client = LocalProducerClient(hub)
    send(client, None, [b"a"] * 5, partition_id="0")
    send(client, None, [b"b"] * 3, partition_id="3")
    consumer = LocalConsumer(hub, "ingest")
    assert consumer.backlog() == {"0": 5, "1": 0, "2": 0, "3": 3}
    assert consumer.last_sequence_number("0") == 4
    assert consumer.last_sequence_number("1") == -1
    consumer.checkpoint("0", 1, "1")
    consumer.checkpoint("3", 2, "2")
    assert consumer.backlog() == {"0": 3, "1": 0, "2": 0, "3": 0}
    assert hub.count() == 8


def test_partition_count_is_fixed_once_created(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    LocalEventHub(path, partitions=3).close()
    with pytest.raises(ValueError, match="3 partitions") as refused:
        LocalEventHub(path, partitions=5)
    # The advice keeps the hub's events and checkpoints: never "delete the file".
    assert "LOCAL_HUB_PARTITIONS=3" in str(refused.value)
    assert "another EVENTHUB_NAME" in str(refused.value)
    assert "delete" not in str(refused.value)
    with LocalEventHub(path, "other", partitions=5) as other:
        assert other.partition_ids == ["0", "1", "2", "3", "4"]


def test_hubs_in_one_file_are_separate_logs(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    with LocalEventHub(path, "a", 1) as a, LocalEventHub(path, "b", 1) as b:
        send(LocalProducerClient(a), None, [b"for a"])
        send(LocalProducerClient(b), None, [b"for b", b"again b"])
        assert [e.body for e in read_all(a, "0")] == [b"for a"]
        assert [e.body for e in read_all(b, "0")] == [b"for b", b"again b"]
        assert (a.count(), b.count()) == (1, 2)


def test_unknown_partition_is_a_clear_error(hub: LocalEventHub) -> None:
    with pytest.raises(ValueError, match="not '9'"):
        hub.read("9", -1, 1)
    with pytest.raises(ValueError):
        LocalProducerClient(hub).create_batch(partition_id="x")


def test_paging_through_many_batches_returns_each_event_once_in_order(hub: LocalEventHub) -> None:
    client = LocalProducerClient(hub)
    expected = []
    for b in range(9):
        bodies = [f"batch{b}-event{i}".encode() for i in range(b % 4 + 1)]  # batches of 1 to 4
        send(client, None, bodies, partition_id="3")
        expected += bodies
    got, after = [], -1
    while page := hub.read("3", after, 3):
        assert len(page) <= 3
        got += page
        after = page[-1].sequence_number
    assert [e.body for e in got] == expected
    assert [e.sequence_number for e in got] == list(range(len(expected)))
    assert [int(e.offset) for e in got] == [sum(map(len, expected[:i])) for i in range(len(expected))]


def test_properties_stay_with_their_own_event_in_a_mixed_batch(hub: LocalEventHub) -> None:
    plain, tagged = EventData(b"plain"), EventData(b"tagged")
    tagged.properties = {"tag": "yes"}
    LocalProducerClient(hub).send_batch([plain, tagged, EventData(b"plain again")], partition_id="0")
    assert [(e.body, e.properties) for e in read_all(hub, "0")] == [
        (b"plain", {}),
        (b"tagged", {"tag": "yes"}),
        (b"plain again", {}),
    ]


def test_batch_ranges_name_every_event_with_its_enqueued_time_and_no_other_hubs(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    with LocalEventHub(path, "a", 2) as a, LocalEventHub(path, "b", 2) as b:
        a.append("1", [(b"x", None)] * 3)
        a.append("0", [(b"y", None)] * 2)
        a.append("1", [(b"z", None)])
        b.append("0", [(b"other", None)] * 5)

        ranges = a.batch_ranges()

        events = {p: read_all(a, p) for p in a.partition_ids}
    assert [(p, first, last) for p, first, last, _ in ranges] == [("0", 0, 1), ("1", 0, 2), ("1", 3, 3)]
    for partition, first, last, ms in ranges:
        for event in events[partition][first : last + 1]:
            assert round(event.enqueued_time.timestamp() * 1000) == ms


def test_hub_names_lists_the_hubs_of_a_file_without_creating_one(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    assert hub_names(path) == []
    LocalEventHub(path, "weather", 1).close()
    LocalEventHub(path, "weather2", 1).close()

    assert hub_names(path) == ["weather", "weather2"]
    assert hub_names(tmp_path / "missing.db") == []
    assert not (tmp_path / "missing.db").exists()
