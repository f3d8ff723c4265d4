"""hub -> bronze + quarantine: every hub event in exactly one of the two (a replayed batch counts once)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.audit.common import EXAMPLES, HUB_KEY, Check, ms_text, semi
from pipeline.audit.damaged import DamagedFile, covered
from pipeline.audit.reading import AuditedLake, HubMatch
from pipeline.lake_records import FILE_COLUMN
from settings import Settings


def check_hub_bronze(
    settings: Settings,
    lake: AuditedLake,
    match: HubMatch | None,
    skipped: str | None,
    damaged: list[DamagedFile],
) -> Check:
    """Every event of the embedded hub in exactly one of bronze and quarantine.

    Events missing from both that a damaged bronze file's name covers are counted as ``damaged``
    (found, and repairable with ``pipeline repair``), not as lost.
    """
    check = Check(
        "hub_bronze",
        "hub → bronze + quarantine",
        failing=("lost", "doubled", "pending", "damaged"),
    )
    if match is None:
        check.skipped = skipped
        return check
    hub, bronze, quarantine = match.hub, match.bronze, match.quarantine
    in_bronze, in_quarantine, missing = match.in_bronze, match.in_quarantine, match.missing
    doubled = semi(semi(hub, in_bronze, HUB_KEY), in_quarantine, HUB_KEY)
    # Events after the ingest consumer group's checkpoint are not ingested yet: pending.
    after = missing["sequence_number"].to_numpy() > match.checkpoints[missing["partition"].to_numpy()]
    pending, gone = missing.filter(pa.array(after)), missing.filter(pa.array(~after))
    in_damaged = _in_ranges(gone, damaged)
    lost, held = gone.filter(pa.array(~in_damaged)), gone.filter(pa.array(in_damaged))
    mine = pa.concat_tables([in_bronze, in_quarantine]).group_by(HUB_KEY).aggregate([])
    # The same event again in one container: a replayed batch with other boundaries (counts once).
    copies = bronze.num_rows - in_bronze.num_rows + quarantine.num_rows - in_quarantine.num_rows
    check.counts = {
        "hub_events": hub.num_rows,
        "bronze_events": in_bronze.num_rows,
        "quarantine_events": in_quarantine.num_rows,
        "lost": lost.num_rows,
        "doubled": doubled.num_rows,
        "pending": pending.num_rows,
        "damaged": held.num_rows,
        "replayed_copies": copies,
        "not_in_hub": semi(mine, hub, HUB_KEY, anti=True).num_rows,
        "other_hub": match.other_hub,
    }

    def events(table: pa.Table) -> list[dict[str, Any]]:
        return [
            {
                "partition": str(r["partition"]),
                "sequence_number": r["sequence_number"],
                "enqueued_time": ms_text(r["enqueued_ms"]),
            }
            for r in table.slice(0, EXAMPLES).to_pylist()
        ]

    check.examples = {
        "lost": events(lost),
        "doubled": events(doubled),
        "pending": events(pending),
        "damaged": events(held),
    }
    for example, row in zip(check.examples["doubled"], doubled.slice(0, EXAMPLES).to_pylist(), strict=True):
        one = pa.table({k: [row[k]] for k in HUB_KEY}, schema=hub.schema)
        example["bronze_files"] = _files_of(bronze, one, lake.bronze_files)
        example["quarantine_files"] = _files_of(quarantine, one, lake.quarantine_files)
    if check.counts["not_in_hub"]:
        check.notes.append(
            f"{check.counts['not_in_hub']:,} events in files named for this hub are not in it: "
            "from before the hub was recreated"
        )
    if check.counts["other_hub"]:
        check.notes.append(f"{check.counts['other_hub']:,} records come from other hubs (not checked here)")
    if check.counts["damaged"]:
        check.notes.append(
            f"{check.counts['damaged']:,} events are missing from damaged bronze files: "
            "run `python -m pipeline repair`"
        )
    return check


def _in_ranges(events: pa.Table, damaged: list[DamagedFile]) -> np.ndarray:
    """Which hub events (partition, sequence number, enqueued ms) a damaged file's name covers."""
    inside = np.zeros(events.num_rows, dtype=bool)
    for file in damaged if events.num_rows else []:
        if file.name is not None:
            inside |= covered(file.name, events)
    return inside


def _files_of(keys: pa.Table, one: pa.Table, files: list[str]) -> list[str]:
    matched = keys.join(one, HUB_KEY, join_type="inner")
    return sorted({files[i] for i in matched[FILE_COLUMN].to_pylist()})
