"""The Event Hubs target, with ``EventHubProducerClient`` replaced by a recording fake.

Event Hubs' AMQP endpoint cannot run here, so the fake stands at the client boundary. Its batches
are the SDK's own ``EventDataBatch`` (real size accounting, real ValueError when full); the fake
records what each ``send_batch`` carried and refuses any batch over the size limit, as the
service would.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from azure.eventhub import EventDataBatch
from azure.identity import DefaultAzureCredential

import producer.cli
import producer.sending
from producer.cli import main
from producer.generate import EventGenerator, Generated, Plan
from settings import Settings, load_settings

START = "2026-11-01T00:00:00Z"


class RecordingBatch(EventDataBatch):
    """The SDK's batch, remembering the bodies it accepted."""

    def __init__(self, max_size_in_bytes: int, partition_key: str | None) -> None:
        super().__init__(max_size_in_bytes=max_size_in_bytes, partition_key=partition_key)
        self.key = partition_key
        self.bodies: list[bytes] = []

    def add(self, event_data: Any) -> None:
        super().add(event_data)  # raises ValueError when the batch is full
        self.bodies.append(b"".join(event_data.body))


class FakeProducerClient:
    """Stands in for ``azure.eventhub.EventHubProducerClient``."""

    max_batch_bytes: ClassVar[int] = 1024 * 1024
    instances: ClassVar[list[FakeProducerClient]] = []

    def __init__(
        self,
        fully_qualified_namespace: str | None = None,
        eventhub_name: str | None = None,
        credential: Any = None,
        **kwargs: Any,
    ) -> None:
        self.namespace = fully_qualified_namespace
        self.eventhub_name = eventhub_name
        self.credential = credential
        self.connection_string: str | None = None
        self.sent: list[tuple[str | None, list[bytes]]] = []
        self.closed = False
        FakeProducerClient.instances.append(self)

    @classmethod
    def from_connection_string(cls, conn_str: str, **kwargs: Any) -> FakeProducerClient:
        client = cls(eventhub_name=kwargs["eventhub_name"])
        client.connection_string = conn_str
        return client

    def create_batch(
        self,
        *,
        partition_id: str | None = None,
        partition_key: str | None = None,
        max_size_in_bytes: int | None = None,
    ) -> RecordingBatch:
        if max_size_in_bytes and max_size_in_bytes > self.max_batch_bytes:
            raise ValueError("max_size_in_bytes is larger than the link allows")
        return RecordingBatch(max_size_in_bytes or self.max_batch_bytes, partition_key)

    def send_batch(self, event_data_batch: Any, **kwargs: Any) -> None:
        assert not self.closed
        assert isinstance(event_data_batch, RecordingBatch), "send whole EventDataBatch objects"
        if event_data_batch.size_in_bytes > self.max_batch_bytes:
            raise ValueError(f"batch of {event_data_batch.size_in_bytes} bytes is over the limit")
        assert len(event_data_batch) == len(event_data_batch.bodies)
        self.sent.append((event_data_batch.key, list(event_data_batch.bodies)))

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeProducerClient]]:
    monkeypatch.setattr(producer.sending, "EventHubProducerClient", FakeProducerClient)
    FakeProducerClient.instances = []
    FakeProducerClient.max_batch_bytes = 1024 * 1024
    yield FakeProducerClient


def eventhub_settings(tmp_path: Path, **values: str) -> Settings:
    environ = {"PIPELINE_HOME": str(tmp_path), "EVENTHUB_NAME": "telemetry", **values}
    return load_settings(environ=environ, local_settings_file=tmp_path / "none")


CONNECTION = "Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=x"


def expected_events(count: int, **plan: Any) -> list[Generated]:
    generator = EventGenerator(Plan(start_time=datetime(2026, 11, 1, tzinfo=UTC), **plan))
    return [next(generator) for _ in range(count)]


def by_key(pairs: list[tuple[str | None, bytes]]) -> dict[str | None, list[bytes]]:
    grouped: dict[str | None, list[bytes]] = defaultdict(list)
    for key, body in pairs:
        grouped[key].append(body)
    return dict(grouped)


def test_no_event_lost_or_reordered_across_batch_boundaries(
    tmp_path: Path, fake_client: type[FakeProducerClient]
) -> None:
    fake_client.max_batch_bytes = 4096  # about a dozen events a batch: many boundaries per device
    args = ["--target", "eventhub", "--count", "4000", "--seed", "11", "--start-time", START, "--quiet"]
    assert main(args, settings=eventhub_settings(tmp_path, EVENTHUB_CONNECTION=CONNECTION)) == 0

    (client,) = fake_client.instances
    assert client.connection_string == CONNECTION
    assert client.eventhub_name == "telemetry"
    assert client.closed
    sent = [(key, body) for key, bodies in client.sent for body in bodies]
    expected = [(e.partition_key, e.body) for e in expected_events(4000, seed=11, devices=50)]
    assert len(sent) == 4000
    # Partition key = deviceId, and each device's events arrive in the order generated.
    assert by_key(sent) == by_key(expected)
    batches_per_key: dict[str | None, int] = defaultdict(int)
    for key, _bodies in client.sent:
        batches_per_key[key] += 1
    assert min(batches_per_key.values()) >= 3


def test_bad_and_oversized_events_are_sent_within_the_batch_limit(
    tmp_path: Path, fake_client: type[FakeProducerClient]
) -> None:
    args = ["--target", "eventhub", "--count", "600", "--seed", "3", "--start-time", START, "--quiet"]
    args += ["--bad-rate", "0.5", "--duplicate-rate", "0.2"]
    assert main(args, settings=eventhub_settings(tmp_path, EVENTHUB_CONNECTION=CONNECTION)) == 0
    (client,) = fake_client.instances
    sent = [(key, body) for key, bodies in client.sent for body in bodies]
    expected = expected_events(600, seed=3, bad_rate=0.5, duplicate_rate=0.2)
    assert any(e.kind == "bad:too_large" for e in expected)
    assert by_key(sent) == by_key([(e.partition_key, e.body) for e in expected])


def test_an_event_too_large_for_any_batch_is_counted_not_silently_dropped(
    tmp_path: Path, fake_client: type[FakeProducerClient], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_client.max_batch_bytes = 64 * 1024  # a tier whose events must be under 64 KiB
    args = ["--target", "eventhub", "--count", "800", "--seed", "4", "--start-time", START, "--quiet"]
    assert (
        main(
            [*args, "--bad-rate", "0.3"], settings=eventhub_settings(tmp_path, EVENTHUB_CONNECTION=CONNECTION)
        )
        == 0
    )
    expected = expected_events(800, seed=4, bad_rate=0.3)
    too_large = sum(e.kind == "bad:too_large" for e in expected)
    assert too_large > 0
    (client,) = fake_client.instances
    assert sum(len(bodies) for _key, bodies in client.sent) == 800 - too_large
    output = capsys.readouterr().out
    assert "unsendable" in output
    assert f"{800 - too_large:,} events" in output


def test_namespace_setting_connects_with_default_azure_credential(
    tmp_path: Path, fake_client: type[FakeProducerClient]
) -> None:
    settings = eventhub_settings(
        tmp_path, EVENTHUB_CONNECTION__fullyQualifiedNamespace="ns.servicebus.windows.net"
    )
    assert main(["--target", "eventhub", "--count", "10", "--quiet"], settings=settings) == 0
    (client,) = fake_client.instances
    assert client.namespace == "ns.servicebus.windows.net"
    assert client.eventhub_name == "telemetry"
    assert isinstance(client.credential, DefaultAzureCredential)
    assert sum(len(b) for _k, b in client.sent) == 10


def test_ctrl_c_flushes_what_was_queued_and_exits_130(
    tmp_path: Path, fake_client: type[FakeProducerClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    class InterruptedGenerator(EventGenerator):
        def __next__(self) -> Generated:
            if self._n == 1234:
                raise KeyboardInterrupt
            return super().__next__()

    monkeypatch.setattr(producer.cli, "EventGenerator", InterruptedGenerator)
    args = ["--target", "eventhub", "--count", "5000", "--seed", "8", "--start-time", START, "--quiet"]
    assert main(args, settings=eventhub_settings(tmp_path, EVENTHUB_CONNECTION=CONNECTION)) == 130
    (client,) = fake_client.instances
    sent = [(key, body) for key, bodies in client.sent for body in bodies]
    expected = [(e.partition_key, e.body) for e in expected_events(1234, seed=8)]
    assert by_key(sent) == by_key(expected)
    assert client.closed


def test_local_and_eventhub_targets_send_the_same_bodies(
    tmp_path: Path, fake_client: type[FakeProducerClient]
) -> None:
    from localhub import LocalEventHub

    args = ["--count", "500", "--seed", "21", "--start-time", START, "--quiet", "--bad-rate", "0.2"]
    assert (
        main(
            ["--target", "eventhub", *args],
            settings=eventhub_settings(tmp_path, EVENTHUB_CONNECTION=CONNECTION),
        )
        == 0
    )
    assert main(["--hub-path", str(tmp_path / "hub.db"), *args], settings=eventhub_settings(tmp_path)) == 0
    (client,) = fake_client.instances
    via_eventhub = [(key, body) for key, bodies in client.sent for body in bodies]
    with LocalEventHub(tmp_path / "hub.db", "telemetry") as hub:  # the hub is named by EVENTHUB_NAME
        local = [(e.partition_key, e.body) for p in hub.partition_ids for e in hub.read(p, -1, 10_000)]
    assert len(local) == 500
    assert by_key(via_eventhub) == by_key(local)
