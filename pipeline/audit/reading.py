"""What the audit reads once: the lake's bronze and quarantine records, and the embedded hub's
events matched to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contract.bronze import RECORDS_IN_FILE
from contract.lake_layout import parse_path, superseded
from functions.ingest_core import hub_tag
from functions.lake import LakeStorage
from pipeline.audit.common import HUB_KEY, MAX_PARTITIONS, distinct, semi
from pipeline.lake_records import FILE_COLUMN, lake_table, plausible_records
from pipeline.layers import (
    epoch_ms,
    hub_checkpoints,
    hub_event_table,
)
from settings import Settings

# --- the checks -------------------------------------------------------------------------------------


@dataclass
class AuditedLake:
    """What the checks read from the lake, once.

    ``bronze`` holds the records of the bronze files that count: a file a repair superseded
    (``superseded``, indexes into ``bronze_files``) is left out, its repair counts instead.
    ``unreadable`` names the files that could not be read whole (index: why not).
    """

    bronze: pa.Table
    bronze_files: list[str]
    quarantine: pa.Table
    quarantine_files: list[str]
    unreadable: dict[int, str] = field(default_factory=dict)
    superseded: set[int] = field(default_factory=set)


def read_lake(lake: LakeStorage, settings: Settings) -> AuditedLake:
    fields = ["PartitionId", "SequenceNumber", "EnqueuedTimeUtc", "EventId"]
    bronze = lake_table(lake, settings.bronze_container, settings.bronze_stream, [*fields, RECORDS_IN_FILE])
    quarantine = lake_table(
        lake, settings.quarantine_container, settings.bronze_stream, [*fields, "Body", "BodyEncoding"]
    )
    replaced = superseded(bronze.files)
    gone = {i for i, f in enumerate(bronze.files) if f in replaced}
    records = bronze.table
    if gone:
        indexes = pa.array(sorted(gone), pa.int32())
        records = records.filter(pc.invert(pc.is_in(records[FILE_COLUMN], value_set=indexes)))
    unreadable = {i: why for i, why in bronze.damaged.items() if i not in gone}
    records = plausible_records(records, bronze.files, set(unreadable))
    rejected = plausible_records(quarantine.table, quarantine.files, set(quarantine.damaged))
    return AuditedLake(records, bronze.files, rejected, quarantine.files, unreadable, gone)


def hub_keys(records: pa.Table, files: list[str], tag: str) -> tuple[pa.Table, int]:
    """Records named for hub ``tag`` (or with no tag: older names) as hub keys plus ``file``;
    and how many records are of other hubs (or carry no partition id)."""
    tags = [name.name.hub_tag if (name := parse_path(f)) else None for f in files]
    ours = np.array([t in (tag, None) for t in tags] or [False], dtype=bool)
    mine = pc.and_(
        pa.array(ours[records[FILE_COLUMN].to_numpy()] if records.num_rows else [], pa.bool_()),
        pc.utf8_is_digit(pc.fill_null(records["PartitionId"], "")),
    )
    kept = records.filter(mine)
    keys = pa.table(
        {
            "partition": pc.cast(kept["PartitionId"], pa.int32()),
            "sequence_number": kept["SequenceNumber"],
            "enqueued_ms": epoch_ms(kept["EnqueuedTimeUtc"]),
            FILE_COLUMN: kept[FILE_COLUMN],
        }
    )
    return keys, records.num_rows - kept.num_rows


@dataclass
class HubMatch:
    """The embedded hub's events matched against bronze and quarantine (by hub key)."""

    hub: pa.Table
    bronze: pa.Table
    quarantine: pa.Table
    in_bronze: pa.Table
    in_quarantine: pa.Table
    missing: pa.Table  # hub events in neither container
    checkpoints: np.ndarray  # per partition index, the ingest group's checkpoint (-1: none)
    other_hub: int  # records of other hubs (or without a partition id)


def embedded_hub(settings: Settings) -> tuple[pa.Table | None, str | None]:
    """The embedded hub's events, or None and why the hub cannot be listed."""
    if settings.eventhub_connection or settings.eventhub_namespace:
        return None, "the hub cannot be listed (Azure Event Hubs keeps events only for its retention)"
    hub = hub_event_table(settings.local_hub_path, settings.eventhub_name)
    if hub is None:
        return None, f"no embedded hub {settings.eventhub_name!r} in {settings.local_hub_path}"
    return hub, None


def match_hub(settings: Settings, lake: AuditedLake, hub: pa.Table) -> HubMatch:
    tag = hub_tag(settings.eventhub_name, settings.eventhub_namespace, settings.eventhub_connection)
    bronze, bronze_other = hub_keys(lake.bronze, lake.bronze_files, tag)
    quarantine, quarantine_other = hub_keys(lake.quarantine, lake.quarantine_files, tag)
    in_bronze, in_quarantine = distinct(bronze, HUB_KEY), distinct(quarantine, HUB_KEY)
    missing = semi(semi(hub, in_bronze, HUB_KEY, anti=True), in_quarantine, HUB_KEY, anti=True)
    checkpoints = np.full(MAX_PARTITIONS, -1, np.int64)
    for partition, number in hub_checkpoints(settings).items():
        checkpoints[int(partition)] = number
    return HubMatch(
        hub,
        bronze,
        quarantine,
        in_bronze,
        in_quarantine,
        missing,
        checkpoints,
        bronze_other + quarantine_other,
    )
