"""The embedded event hub: the local stand-in for Azure Event Hubs (SQLite in WAL mode).

See docs/architecture.md, "Embedded event hub". Imports nothing of ours.
"""

from localhub.clients import LocalConsumer, LocalEventDataBatch, LocalProducerClient
from localhub.hub import (
    DEFAULT_MAX_BATCH_BYTES,
    DEFAULT_PARTITIONS,
    LocalEventHub,
    PartitionProperties,
    ReceivedEvent,
    body_bytes,
    hub_names,
    partition_for_key,
)

__all__ = [
    "DEFAULT_MAX_BATCH_BYTES",
    "DEFAULT_PARTITIONS",
    "LocalConsumer",
    "LocalEventDataBatch",
    "LocalEventHub",
    "LocalProducerClient",
    "PartitionProperties",
    "ReceivedEvent",
    "body_bytes",
    "hub_names",
    "partition_for_key",
]
