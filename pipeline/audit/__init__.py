"""Reconcile every layer with the one before it: the proof that a run lost and doubled nothing.

Five checks, each over whole columns (pyarrow joins and group-bys, never a Python loop per event):

* ``hub_bronze`` (only where the hub can be listed: the embedded hub) - every hub event, by
  partition, sequence number and enqueued time, is in exactly one of bronze and quarantine; a
  replayed batch (the same event in two files of one container) counts once. Only files named for
  this hub (their hub tag, see ``functions.ingest_core.hub_tag``) are matched; events of other
  hubs (``other_hub``), or of this hub before it was recreated (``not_in_hub``), are counted apart.
* ``bronze_silver`` - every distinct ``EventId`` of bronze is in exactly one of silver (once) and
  the silver quarantine.
* ``silver_gold`` - per gold window, ``event_count``, the sums (averages and total), the minima
  and maxima equal what silver holds. Recomputed from silver the way ``spark.transforms.
  silver_to_gold`` computes them (fixed-point integer sums, so the result does not depend on row
  order), then compared with a tolerance of :data:`GOLD_REL_TOL` (the last bits of a division).
  ``dominant_*`` are not recomputed (the gold -> SQL check compares them).
* ``gold_sql`` - every gold row equals its SQL row (doubles within :data:`SQL_REL_TOL`, since a
  database may round-trip them through text), no row missing or extra.
* ``devices`` - per device, ``deviceSeq`` gaps (numbers missing between a device's lowest and
  highest) and repeats in silver, with how many of the missing ones are in a quarantine. Reported,
  never failed on: a gap is an event lost before the hub, a repeat a device that restarted.

Events still on their way (after the ingest consumer group's checkpoint, or in bronze files no
silver row names yet) are ``pending``, not ``lost``; the audit is ``ok`` only when nothing is
lost, doubled, unexpected (downstream with no upstream) or pending, and SQL equals gold.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc

from contract.bronze import BODY_UTF8
from contract.gold import GOLD_COLUMN_TYPES
from functions.gold_source import storage_options_from_settings
from functions.lake import LakeStorage, lake_from_settings
from pipeline.audit.common import AuditReport, Check, concat
from pipeline.audit.damaged import DamagedFile, check_bronze_files, find_damaged
from pipeline.audit.hub_check import check_hub_bronze
from pipeline.audit.layer_checks import (
    check_bronze_silver,
    check_devices,
    check_gold_sql,
    check_silver_gold,
    first_per_event,
    quarantined_device_seqs,
)
from pipeline.audit.reading import AuditedLake, HubMatch, embedded_hub, match_hub, read_lake
from pipeline.layers import delta_table
from settings import Settings

__all__ = ["SILVER_TYPES", "AuditReport", "Check", "DamagedFile", "find_damaged_files", "run_audit"]

# --- everything ---------------------------------------------------------------------------------------


def _empty(columns: dict[str, pa.DataType]) -> pa.Table:
    return pa.schema(list(columns.items())).empty_table()


#: The silver columns the audit reads, with their Arrow types.
SILVER_TYPES = {
    "event_id": pa.string(),
    "device_id": pa.string(),
    "device_seq": pa.int64(),
    "location": pa.string(),
    "event_time": pa.timestamp("us", tz="UTC"),
    "source_file": pa.string(),
    "temperature": pa.float64(),
    "humidity": pa.float64(),
    "wind_speed": pa.float64(),
    "precipitation": pa.float64(),
}
_SILVER_QUARANTINE_TYPES = {"event_id": pa.string(), "source_file": pa.string(), "body": pa.string()}
_GOLD_TYPES = {
    name: {
        "string": pa.string(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "long": pa.int64(),
        "double": pa.float64(),
    }[kind]
    for name, kind in GOLD_COLUMN_TYPES.items()
}


def run_audit(
    settings: Settings,
    lake: LakeStorage | None = None,
    on_step: Callable[[str], None] | None = None,
) -> AuditReport:
    """Read every layer once and run every check.

    Args:
        settings: Where the layers are (local state folder, or ADLS and the SQL database).
        lake: The bronze/quarantine storage; default the one the settings name.
        on_step: Called with a short description before each reading step (progress output).
    """
    started = time.monotonic()
    step = on_step or (lambda _: None)
    lake = lake or lake_from_settings(settings)
    step("reading bronze and quarantine")
    files = read_lake(lake, settings)
    match, hub_skipped = _hub_match(settings, files)
    damaged = find_damaged(settings, files, match)
    step("reading silver and gold")
    silver, _ = _delta(settings, settings.silver_table_uri, SILVER_TYPES)
    silver_quarantine, _ = _delta(settings, settings.silver_quarantine_table_uri, _SILVER_QUARANTINE_TYPES)
    gold_table, gold_version = _delta(settings, settings.gold_table_uri, _GOLD_TYPES)
    step("reconciling")
    events = first_per_event(silver)
    checks = [
        check_hub_bronze(settings, files, match, hub_skipped, damaged),
        check_bronze_files(files, damaged),
        check_bronze_silver(files, silver, silver_quarantine, damaged),
        check_silver_gold(events, gold_table, settings.window_minutes),
        check_gold_sql(settings, gold_table, gold_version),
    ]
    utf8 = pc.fill_null(pc.equal(files.quarantine["BodyEncoding"], BODY_UTF8), False)
    # As bytes: a damaged file's rows in the silver quarantine may hold bodies that are not UTF-8.
    raw = concat(files.quarantine["Body"].filter(utf8), silver_quarantine["body"])
    bodies = [b.decode("utf-8", "replace") if b else None for b in pc.cast(raw, pa.binary()).to_pylist()]
    checks.append(check_devices(events, quarantined_device_seqs(bodies)))
    return AuditReport(checks, time.monotonic() - started, damaged)


def _hub_match(settings: Settings, files: AuditedLake) -> tuple[HubMatch | None, str | None]:
    hub, skipped = embedded_hub(settings)
    return (None, skipped) if hub is None else (match_hub(settings, files, hub), None)


def find_damaged_files(settings: Settings, lake: LakeStorage | None = None) -> list[DamagedFile]:
    """The damaged bronze files the audit reports, reading only bronze, quarantine and the hub."""
    files = read_lake(lake or lake_from_settings(settings), settings)
    match, _ = _hub_match(settings, files)
    return find_damaged(settings, files, match)


def _delta(settings: Settings, uri: str, columns: dict[str, pa.DataType]) -> tuple[pa.Table, int | None]:
    """A Delta table's columns and version (empty and None when it does not exist yet)."""
    table = delta_table(uri, storage_options_from_settings(settings, uri=uri))
    if table is None:
        return _empty(columns), None
    return table.to_pyarrow_table(columns=list(columns)), int(table.version())
