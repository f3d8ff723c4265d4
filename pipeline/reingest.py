"""Read a batch's events from the event hub again and run them through the ingest Function's core.

What ``pipeline repair`` re-ingests a damaged bronze file from, and what the audit checks a file
against: the events a partition holds between two sequence numbers, read with a small port,
:class:`HubRange` — the embedded hub (:class:`LocalHubRange`), or Azure Event Hubs within its
retention (:class:`EventHubsRange`, the SDK's consumer client). :func:`rebuild_batch` turns them
into the Function's records the way the Function does: the trigger payload the host builds
(``pipeline.host.build_event_batch``), the Function's own decoding of it
(``functions.ingest.columns_from_trigger``) and its plain core (``functions.ingest_core.
process_batch``). No second implementation: a repaired file holds what the Function would write.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from functions.ingest_core import BatchResult, EventColumns, process_batch
from localhub import ReceivedEvent
from settings import Settings


class HubReadError(Exception):
    """The hub could not give the events asked for; the message says why, in one line."""


class HubRange(ABC):
    """Port: the events of one partition between two sequence numbers, in order."""

    @abstractmethod
    def read(self, partition_id: str, first: int, last: int) -> list[ReceivedEvent]:
        """Events ``first``..``last`` (inclusive) of a partition: fewer when the hub no longer has them.

        Raises:
            HubReadError: the hub cannot be read.
        """

    @abstractmethod
    def describe(self) -> str:
        """Where the events come from, for messages (never a secret)."""


class LocalHubRange(HubRange):
    """The embedded event hub (``localhub``) of the state folder."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.local_hub_path
        self.name = settings.eventhub_name

    def read(self, partition_id: str, first: int, last: int) -> list[ReceivedEvent]:
        from localhub import LocalEventHub, hub_names

        if self.name not in hub_names(self.path):
            raise HubReadError(f"no embedded hub {self.name!r} in {self.path}")
        with LocalEventHub(self.path, name=self.name, partitions=None) as hub:
            if partition_id not in hub.partition_ids:
                raise HubReadError(f"the embedded hub {self.name!r} has no partition {partition_id}")
            return hub.read(partition_id, first - 1, last - first + 1)

    def describe(self) -> str:
        return f"embedded hub {self.name!r} ({self.path})"


class EventHubsRange(HubRange):
    """Azure Event Hubs, through the SDK's ``EventHubConsumerClient.receive_batch``.

    Receives from one partition starting at a sequence number (inclusive), in its own consumer
    group (``$Default`` unless told: the ingest Function's group holds exclusive receivers), and
    stops at the last one asked for, or when nothing more arrives within ``max_wait_time``
    (the rest is past the hub's retention, or was never there).

    Args:
        make_client: Returns a new ``EventHubConsumerClient`` (one per read; closing it ends the
            receive).
        max_wait_time: Seconds without events after which the range is taken as ended.
        timeout: Seconds a whole read may take.
    """

    def __init__(
        self,
        make_client: Callable[[], Any],
        *,
        where: str = "Azure Event Hubs",
        max_wait_time: float = 10.0,
        timeout: float = 300.0,
    ) -> None:
        self.make_client = make_client
        self.where = where
        self.max_wait_time = max_wait_time
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: Settings, consumer_group: str = "$Default") -> EventHubsRange:
        """The namespace and hub the settings name, by connection string or Entra ID."""
        from azure.eventhub import EventHubConsumerClient

        if settings.eventhub_connection:

            def make_client() -> Any:
                return EventHubConsumerClient.from_connection_string(
                    settings.eventhub_connection,
                    consumer_group=consumer_group,
                    eventhub_name=settings.eventhub_name,
                )

            where = f"event hub {settings.eventhub_name!r}"
        elif settings.eventhub_namespace:
            from functions import credentials

            def make_client() -> Any:
                return EventHubConsumerClient(
                    fully_qualified_namespace=settings.eventhub_namespace,
                    eventhub_name=settings.eventhub_name,
                    consumer_group=consumer_group,
                    credential=credentials.PROCESS_CREDENTIAL.get(),
                )

            where = f"event hub {settings.eventhub_name!r} in {settings.eventhub_namespace}"
        else:
            raise HubReadError(
                "reading Azure Event Hubs needs EVENTHUB_CONNECTION or "
                "EVENTHUB_CONNECTION__fullyQualifiedNamespace"
            )
        return cls(make_client, where=f"{where}, consumer group {consumer_group}")

    def read(self, partition_id: str, first: int, last: int) -> list[ReceivedEvent]:
        client = self.make_client()
        received: list[ReceivedEvent] = []
        errors: list[BaseException] = []
        done = threading.Event()

        def on_event_batch(_context: Any, batch: list[Any]) -> None:
            if done.is_set():
                return
            if not batch:  # max_wait_time without an event: the partition holds no more
                done.set()
                return
            for event in batch:
                if event.sequence_number > last:
                    done.set()
                    return
                if event.sequence_number >= first:
                    received.append(received_event(event, partition_id))
            if received and received[-1].sequence_number >= last:
                done.set()

        def on_error(_context: Any, error: Exception) -> None:
            errors.append(error)
            done.set()

        receiver = threading.Thread(
            target=client.receive_batch,
            kwargs={
                "on_event_batch": on_event_batch,
                "on_error": on_error,
                "partition_id": partition_id,
                "starting_position": first,  # an int is a sequence number
                "starting_position_inclusive": True,
                "max_batch_size": min(max(last - first + 1, 1), 1000),
                "max_wait_time": self.max_wait_time,
            },
            name=f"event-hubs-range-{partition_id}",
            daemon=True,
        )
        receiver.start()
        finished = done.wait(self.timeout)
        client.close()  # ends receive_batch
        receiver.join(30)
        if errors:
            error = errors[0]
            raise HubReadError(f"{self.where}: {type(error).__name__}: {error}") from error
        if not finished:
            raise HubReadError(f"{self.where}: partition {partition_id} gave no answer in {self.timeout:g} s")
        return received

    def describe(self) -> str:
        return self.where


def received_event(event: Any, partition_id: str) -> ReceivedEvent:
    """An ``azure.eventhub.EventData`` as received, in the shape the local host delivers."""
    body = event.body
    raw = body if isinstance(body, bytes) else b"".join(body)
    key = event.partition_key
    return ReceivedEvent(
        body=raw,
        properties=_text_keys(event.properties),
        partition_key=key.decode("utf-8", "replace") if isinstance(key, bytes) else key,
        partition_id=partition_id,
        sequence_number=int(event.sequence_number),
        offset=str(event.offset),
        enqueued_time=event.enqueued_time.astimezone(UTC),
    )


def _text_keys(properties: Mapping[Any, Any] | None) -> dict[str, Any]:
    return {
        (k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)): v
        for k, v in (properties or {}).items()
    }


def hub_for(settings: Settings, consumer_group: str = "$Default") -> HubRange:
    """The hub the settings name: Azure Event Hubs when a connection is set, else the embedded hub."""
    if settings.eventhub_connection or settings.eventhub_namespace:
        return EventHubsRange.from_settings(settings, consumer_group)
    return LocalHubRange(settings)


def rebuild_batch(
    received: Iterable[ReceivedEvent], settings: Settings, ingested_at: datetime | None = None
) -> tuple[EventColumns, BatchResult]:
    """What the ingest Function makes of these events, delivered as one batch.

    Returns:
        The batch as the Function decodes it, and the core's result (records, folder, file stem).
    """
    from functions.ingest import IngestConfig, columns_from_trigger
    from pipeline.host import build_event_batch

    events = build_event_batch(list(received), settings.eventhub_name, settings.eventhub_consumer_group)
    partition_id, columns = columns_from_trigger(events)
    if columns is None:
        raise ValueError("a batch has at least one event")
    config = IngestConfig.from_settings(settings)
    result = process_batch(columns, partition_id, config.stream, ingested_at or datetime.now(UTC), config.hub)
    return columns, result
