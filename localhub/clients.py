"""Clients of the embedded hub shaped like azure-eventhub's: a producer with size-capped batches,
and a consumer that reads after a checkpoint."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

from localhub.hub import (
    DEFAULT_MAX_BATCH_BYTES,
    EVENT_OVERHEAD_BYTES,
    HubEvent,
    LocalEventHub,
    ReceivedEvent,
    application_properties,
    body_bytes,
    properties_json,
)


class LocalEventDataBatch:
    """A batch shaped like ``azure.eventhub.EventDataBatch``: ``add`` raises ValueError when full."""

    def __init__(
        self,
        max_size_in_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        partition_id: str | None = None,
        partition_key: str | None = None,
    ) -> None:
        self.max_size_in_bytes = max_size_in_bytes
        self.partition_id = partition_id
        self.partition_key = partition_key
        self._events: list[tuple[bytes, str | None]] = []
        self._size = EVENT_OVERHEAD_BYTES + (len(partition_key.encode("utf-8")) if partition_key else 0)

    def __len__(self) -> int:
        return len(self._events)

    @property
    def size_in_bytes(self) -> int:
        """The batch's size as counted against ``max_size_in_bytes``."""
        return self._size

    def add(self, event_data: HubEvent) -> None:
        """Add an ``EventData`` (or an ``AmqpAnnotatedMessage``, as the SDK's batch allows).

        Raises:
            ValueError: The event would take the batch over its size limit.
        """
        body = body_bytes(event_data)
        properties = properties_json(application_properties(event_data))
        size = len(body) + EVENT_OVERHEAD_BYTES + (len(properties) if properties else 0)
        if self._size + size > self.max_size_in_bytes:
            raise ValueError(f"EventDataBatch has reached its size limit: {self.max_size_in_bytes}")
        self._events.append((body, properties))
        self._size += size

    @property
    def events(self) -> list[tuple[bytes, str | None]]:
        """The ``(body, properties JSON)`` pairs added so far."""
        return self._events


class LocalProducerClient:
    """Sends to a :class:`LocalEventHub`, shaped like ``azure.eventhub.EventHubProducerClient``.

    Batches with a partition key go to that key's partition, batches with a partition id to that
    partition, and the rest round robin.
    """

    def __init__(self, hub: LocalEventHub, *, close_hub: bool = False) -> None:
        self.hub = hub
        self._close_hub = close_hub
        self._round_robin = itertools.cycle(hub.partition_ids)

    @classmethod
    def from_path(
        cls, path: str | Path, eventhub_name: str = "weather", partitions: int | None = None
    ) -> LocalProducerClient:
        """A client that owns (and closes) its own hub connection."""
        return cls(LocalEventHub(path, eventhub_name, partitions), close_hub=True)

    @property
    def eventhub_name(self) -> str:
        return self.hub.name

    def get_partition_ids(self) -> list[str]:
        return self.hub.partition_ids

    def create_batch(
        self,
        *,
        partition_id: str | None = None,
        partition_key: str | None = None,
        max_size_in_bytes: int | None = None,
    ) -> LocalEventDataBatch:
        """A new empty batch (1 MiB limit unless ``max_size_in_bytes`` says otherwise)."""
        if partition_id is not None:
            self.hub.partition_index(partition_id)  # fail now, not at send time
        return LocalEventDataBatch(max_size_in_bytes or DEFAULT_MAX_BATCH_BYTES, partition_id, partition_key)

    def send_batch(
        self,
        event_data_batch: LocalEventDataBatch | Iterable[HubEvent],
        *,
        partition_id: str | None = None,
        partition_key: str | None = None,
    ) -> None:
        """Append a batch (or a list of EventData) to one partition in one transaction."""
        if isinstance(event_data_batch, LocalEventDataBatch):
            batch = event_data_batch
        else:
            batch = self.create_batch(partition_id=partition_id, partition_key=partition_key)
            for event in event_data_batch:
                batch.add(event)
        if not batch.events:
            return
        if batch.partition_id is not None:
            target = batch.partition_id
        elif batch.partition_key is not None:
            target = self.hub.partition_for_key(batch.partition_key)
        else:
            target = next(self._round_robin)
        self.hub.append(target, batch.events, batch.partition_key)

    def close(self) -> None:
        if self._close_hub:
            self.hub.close()

    def __enter__(self) -> LocalProducerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalConsumer:
    """Reads a hub for one consumer group and keeps that group's per-partition checkpoints."""

    def __init__(self, hub: LocalEventHub, consumer_group: str = "$Default") -> None:
        self.hub = hub
        self.consumer_group = consumer_group

    @property
    def partition_ids(self) -> list[str]:
        return self.hub.partition_ids

    def receive_batch(
        self, partition_id: str, max_batch_size: int = 300, after_sequence_number: int | None = None
    ) -> list[ReceivedEvent]:
        """The next events after the group's checkpoint (or after ``after_sequence_number``).

        Receiving does not move the checkpoint: until :meth:`checkpoint` is called the same events
        come back, which is how a crashed consumer replays (at least once).
        """
        if after_sequence_number is None:
            checkpoint = self.hub.get_checkpoint(self.consumer_group, partition_id)
            after_sequence_number = checkpoint[0] if checkpoint else -1
        return self.hub.read(partition_id, after_sequence_number, max_batch_size)

    def checkpoint(self, partition_id: str, sequence_number: int, offset: str) -> None:
        """Mark everything up to and including ``sequence_number`` as handled by this group."""
        self.hub.set_checkpoint(self.consumer_group, partition_id, sequence_number, offset)

    def get_checkpoint(self, partition_id: str) -> tuple[int, str] | None:
        """The group's ``(sequence_number, offset)`` in a partition, or None before the first."""
        return self.hub.get_checkpoint(self.consumer_group, partition_id)

    def last_sequence_number(self, partition_id: str) -> int:
        """The last sequence number enqueued in the partition (-1 when it is empty)."""
        return self.hub.get_partition_properties(partition_id).last_enqueued_sequence_number

    def backlog(self) -> dict[str, int]:
        """Per partition, how many events the group has not checkpointed yet."""
        done = self.hub.checkpoints(self.consumer_group)
        return {p: max(0, n - 1 - done.get(p, -1)) for p, n in self.hub.next_sequence_numbers().items()}
