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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from contract.bronze import BODY_UTF8, BRONZE_INCOMPLETE, BRONZE_UNREADABLE, RECORDS_IN_FILE
from contract.gold import GOLD_COLUMN_TYPES, GOLD_COLUMNS, GOLD_KEY
from contract.lake_layout import CONFLICT_MARKER, BatchName, batch_name, parse_path, superseded
from functions.gold_source import storage_options_from_settings
from functions.ingest_core import hub_tag
from functions.lake import LakeStorage, lake_from_settings
from pipeline.layers import (
    FILE_COLUMN,
    SqlReader,
    delta_table,
    epoch_ms,
    hub_checkpoints,
    hub_event_table,
    lake_table,
    parse_utc,
    plausible_records,
    watermark,
)
from pipeline.reingest import HubRange, HubReadError, LocalHubRange, rebuild_batch
from settings import Settings

EXAMPLES = 20
#: Gold is recomputed exactly as the Spark job computes it: only a division's last bits may differ.
GOLD_REL_TOL = 1e-12
#: SQL holds gold's doubles; drivers may pass them through text with 15 significant digits.
SQL_REL_TOL = 1e-9
_ABS_TOL = 1e-9
# spark.transforms._FIXED_POINT (tests/unit/test_audit.py checks them equal; importing it here
# would load pyspark for every audit): sums in nano-units, as integers.
_FIXED_POINT = 1_000_000_000
_HUB_KEY = ["partition", "sequence_number", "enqueued_ms"]
_MAX_PARTITIONS = 4096  # the embedded hub's limit (Event Hubs allows 2048)
_GOLD_KEY = list(GOLD_KEY)

# Gold's recomputed columns: (gold column, aggregate, silver column). "avg" and "total" are taken
# over fixed-point integers, as silver_to_gold does.
_GOLD_RECIPE = [
    ("avg_temperature", "avg", "temperature"),
    ("min_temperature", "min", "temperature"),
    ("max_temperature", "max", "temperature"),
    ("avg_humidity", "avg", "humidity"),
    ("avg_wind_speed", "avg", "wind_speed"),
    ("max_wind_speed", "max", "wind_speed"),
    ("total_precipitation", "total", "precipitation"),
]


@dataclass
class Check:
    """One reconciliation: its counts, the first examples of each problem, and what fails it."""

    name: str
    title: str
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failing: tuple[str, ...] = ()  # counts that must be 0 for the check to pass
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the check could not run
    report_only: bool = False  # findings are reported, never failed on

    @property
    def problems(self) -> int:
        return sum(self.counts.get(name, 0) for name in self.failing)

    @property
    def status(self) -> str:
        if self.skipped:
            return "skipped"
        if not self.problems:
            return "ok"
        return "warning" if self.report_only else "failed"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "title": self.title, "counts": self.counts}
        out["examples"] = self.examples
        if self.notes:
            out["notes"] = self.notes
        if self.skipped:
            out["skipped"] = self.skipped
        return out


@dataclass
class AuditReport:
    """Every check, and the totals scripts read (``ok``, ``lost``, ``doubled``, ...)."""

    checks: list[Check]
    seconds: float = 0.0
    damaged: list[DamagedFile] = field(default_factory=list)

    def _sum(self, count: str) -> int:
        return sum(c.counts.get(count, 0) for c in self.checks if not c.report_only)

    @property
    def ok(self) -> bool:
        return all(c.status in ("ok", "skipped", "warning") for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        by_name = {c.name: c for c in self.checks}
        devices = by_name.get("devices")
        gold_sql = by_name.get("gold_sql")
        return {
            "ok": self.ok,
            "lost": self._sum("lost"),
            "doubled": self._sum("doubled"),
            "sql_mismatches": gold_sql.counts.get("sql_mismatches", 0) if gold_sql else 0,
            "devices_with_gaps": devices.counts.get("devices_with_gaps", 0) if devices else 0,
            "unexpected": self._sum("unexpected"),
            "pending": self._sum("pending"),
            "damaged": len(self.damaged),
            "damaged_files": [d.as_json() for d in self.damaged],
            "checks": {c.name: c.as_json() for c in self.checks},
            "seconds": round(self.seconds, 3),
        }


# --- helpers ----------------------------------------------------------------------------------------


def _distinct(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    return table.select(list(keys)).group_by(list(keys), use_threads=False).aggregate([])


def _semi(left: pa.Table, right: pa.Table, keys: Sequence[str], anti: bool = False) -> pa.Table:
    """Rows of ``left`` with (or, ``anti``, without) a match in ``right`` on ``keys``."""
    if left.num_rows == 0 or right.num_rows == 0:
        return left if anti or left.num_rows == 0 else left.slice(0, 0)
    kind = "left anti" if anti else "left semi"
    return left.join(right.select(list(keys)), list(keys), join_type=kind, use_threads=True)


def _rows(table: pa.Table, limit: int = EXAMPLES) -> list[dict[str, Any]]:
    """The first rows as JSON-ready dicts (times as RFC 3339 text)."""
    out = []
    for row in table.slice(0, limit).to_pylist():
        out.append({k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()})
    return out


def _concat(*columns: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    """Columns of one type end to end (no copy)."""
    chunks = [
        c for column in columns for c in (column.chunks if isinstance(column, pa.ChunkedArray) else [column])
    ]
    return pa.chunked_array(chunks, columns[0].type)


def _ms_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _micros(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Timestamps as integer microseconds since the epoch (UTC)."""
    return pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())


def _file_tail(path: str) -> str:
    """A lake file's place inside its container, from a path or a URI (``<stream>/.../<name>``)."""
    return "/".join(unquote(path).rstrip("/").split("/")[-4:])


# --- the checks -------------------------------------------------------------------------------------


@dataclass
class _Lake:
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


def _read_lake(lake: LakeStorage, settings: Settings) -> _Lake:
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
    return _Lake(records, bronze.files, rejected, quarantine.files, unreadable, gone)


def _hub_keys(records: pa.Table, files: list[str], tag: str) -> tuple[pa.Table, int]:
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
class _HubMatch:
    """The embedded hub's events matched against bronze and quarantine (by hub key)."""

    hub: pa.Table
    bronze: pa.Table
    quarantine: pa.Table
    in_bronze: pa.Table
    in_quarantine: pa.Table
    missing: pa.Table  # hub events in neither container
    checkpoints: np.ndarray  # per partition index, the ingest group's checkpoint (-1: none)
    other_hub: int  # records of other hubs (or without a partition id)


def _embedded_hub(settings: Settings) -> tuple[pa.Table | None, str | None]:
    """The embedded hub's events, or None and why the hub cannot be listed."""
    if settings.eventhub_connection or settings.eventhub_namespace:
        return None, "the hub cannot be listed (Azure Event Hubs keeps events only for its retention)"
    hub = hub_event_table(settings.local_hub_path, settings.eventhub_name)
    if hub is None:
        return None, f"no embedded hub {settings.eventhub_name!r} in {settings.local_hub_path}"
    return hub, None


def _match_hub(settings: Settings, lake: _Lake, hub: pa.Table) -> _HubMatch:
    tag = hub_tag(settings.eventhub_name, settings.eventhub_namespace, settings.eventhub_connection)
    bronze, bronze_other = _hub_keys(lake.bronze, lake.bronze_files, tag)
    quarantine, quarantine_other = _hub_keys(lake.quarantine, lake.quarantine_files, tag)
    in_bronze, in_quarantine = _distinct(bronze, _HUB_KEY), _distinct(quarantine, _HUB_KEY)
    missing = _semi(_semi(hub, in_bronze, _HUB_KEY, anti=True), in_quarantine, _HUB_KEY, anti=True)
    checkpoints = np.full(_MAX_PARTITIONS, -1, np.int64)
    for partition, number in hub_checkpoints(settings).items():
        checkpoints[int(partition)] = number
    return _HubMatch(
        hub,
        bronze,
        quarantine,
        in_bronze,
        in_quarantine,
        missing,
        checkpoints,
        bronze_other + quarantine_other,
    )


def check_hub_bronze(
    settings: Settings, lake: _Lake, match: _HubMatch | None, skipped: str | None, damaged: list[DamagedFile]
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
    doubled = _semi(_semi(hub, in_bronze, _HUB_KEY), in_quarantine, _HUB_KEY)
    # Events after the ingest consumer group's checkpoint are not ingested yet: pending.
    after = missing["sequence_number"].to_numpy() > match.checkpoints[missing["partition"].to_numpy()]
    pending, gone = missing.filter(pa.array(after)), missing.filter(pa.array(~after))
    in_damaged = _in_ranges(gone, damaged)
    lost, held = gone.filter(pa.array(~in_damaged)), gone.filter(pa.array(in_damaged))
    mine = pa.concat_tables([in_bronze, in_quarantine]).group_by(_HUB_KEY).aggregate([])
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
        "not_in_hub": _semi(mine, hub, _HUB_KEY, anti=True).num_rows,
        "other_hub": match.other_hub,
    }

    def events(table: pa.Table) -> list[dict[str, Any]]:
        return [
            {
                "partition": str(r["partition"]),
                "sequence_number": r["sequence_number"],
                "enqueued_time": _ms_text(r["enqueued_ms"]),
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
        one = pa.table({k: [row[k]] for k in _HUB_KEY}, schema=hub.schema)
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
            inside |= _covered(file.name, events)
    return inside


def _covered(name: BatchName, events: pa.Table) -> np.ndarray:
    """Which hub events a file's name covers: its partition, its sequence range, enqueued from its
    first event's time on (a recreated hub reuses the numbers later)."""
    if name.partition_id is None or not name.partition_id.isdigit():
        return np.zeros(events.num_rows, dtype=bool)
    numbers = events["sequence_number"].to_numpy()
    return (
        (events["partition"].to_numpy() == int(name.partition_id))
        & (numbers >= name.first_sequence_number)
        & (numbers <= name.last_sequence_number)
        & (events["enqueued_ms"].to_numpy() >= name.first_enqueued_ms)
    )


# --- damaged bronze files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DamagedFile:
    """A bronze file that does not hold the records it was written with.

    Attributes:
        file: Its path in the bronze container.
        name: What its name says (None for a name the Function does not write).
        reason: ``bronze_unreadable`` (no record can be read) or ``bronze_incomplete`` (some can).
        problem: What is wrong with it, in one line.
        records_readable: Records that can be read from it.
        records_expected: Records it was written with (its ``RecordsInFile``, or the events the
            hub holds for its name, re-validated), None when neither can be known.
        events_affected: Events held back from silver until it is repaired: all it was written
            with (the Spark job quarantines every row of an incomplete file, and cannot read an
            unreadable one); without ``records_expected``, at most its name's sequence range minus
            what quarantine holds of it.
    """

    file: str
    name: BatchName | None
    reason: str
    problem: str
    records_readable: int
    records_expected: int | None
    events_affected: int

    def as_json(self) -> dict[str, Any]:
        name = self.name
        return {
            "file": self.file,
            "partition": name.partition_id if name else None,
            "first_sequence_number": name.first_sequence_number if name else None,
            "last_sequence_number": name.last_sequence_number if name else None,
            "reason": self.reason,
            "problem": self.problem,
            "records_readable": self.records_readable,
            "records_expected": self.records_expected,
            "events_affected": self.events_affected,
        }


def find_damaged(
    settings: Settings, lake: _Lake, match: _HubMatch | None, hub_range: HubRange | None = None
) -> list[DamagedFile]:
    """The bronze files (not superseded by a repair) that do not hold what they were written with.

    A file is damaged when it cannot be read whole (a cut or corrupt line, an unreadable Avro
    header or block), when its readable records are not exactly its ``RecordsInFile`` distinct
    sequence numbers, or (where the hub can be listed) when hub events its name covers are in no
    file while the Function, given that batch again, would write them into it (a file cut on a
    line boundary, written before ``RecordsInFile``).
    """
    bronze = lake.bronze
    stats = (
        pa.table(
            {
                FILE_COLUMN: bronze[FILE_COLUMN],
                "sequence_number": bronze["SequenceNumber"],
                "written": pc.fill_null(bronze[RECORDS_IN_FILE], 0),
            }
        )
        # In file order: a damaged file's first record comes before the damage, so its
        # RecordsInFile is the one the file was written with.
        .group_by(FILE_COLUMN, use_threads=False)
        .aggregate([([], "count_all"), ("sequence_number", "count_distinct"), ("written", "first")])
    )
    columns = [FILE_COLUMN, "count_all", "sequence_number_count_distinct", "written_first"]
    rows = {f: (n, d, w) for f, n, d, w in zip(*(stats[c].to_pylist() for c in columns), strict=True)}
    problems: dict[int, str] = dict(lake.unreadable)
    for index, (count, distinct, written) in rows.items():
        if written and not count == distinct == written and index not in problems:
            problems[index] = f"{count:,} records readable ({distinct:,} distinct), written with {written:,}"
    covering = _files_covering(lake, match) if match is not None else set()
    reader = hub_range if hub_range is not None else (LocalHubRange(settings) if match is not None else None)
    found = []
    for index in sorted(set(problems) | covering):
        path = lake.bronze_files[index]
        name = batch_name(path)
        count, _, written = rows.get(index, (0, 0, 0))
        expected_numbers = _expected_numbers(settings, name, reader) if name is not None else None
        if index not in problems:
            # Hub events in the file's range are in no file: is it the bronze file that lacks them?
            readable = set(
                lake.bronze.filter(pc.equal(lake.bronze[FILE_COLUMN], index))["SequenceNumber"].to_pylist()
            )
            if expected_numbers is None or expected_numbers <= readable:
                continue
            problems[index] = (
                f"{len(expected_numbers - readable):,} of the {len(expected_numbers):,} events the hub holds "
                "for it are not in it (the file was cut?)"
            )
        expected = written or (len(expected_numbers) if expected_numbers is not None else None)
        found.append(
            DamagedFile(
                file=path,
                name=name,
                reason=BRONZE_UNREADABLE if count == 0 else BRONZE_INCOMPLETE,
                problem=problems[index],
                records_readable=count,
                records_expected=expected,
                events_affected=expected if expected is not None else _at_most(lake, name, count),
            )
        )
    return found


def _files_covering(lake: _Lake, match: _HubMatch) -> set[int]:
    """Bronze files whose name covers a hub event that no file holds (and that was checkpointed)."""
    missing = match.missing
    after = missing["sequence_number"].to_numpy() > match.checkpoints[missing["partition"].to_numpy()]
    gone = missing.filter(pa.array(~after, pa.bool_()))
    out: set[int] = set()
    for index, path in enumerate(lake.bronze_files if gone.num_rows else []):
        name = batch_name(path)
        if index not in lake.superseded and name is not None and _covered(name, gone).any():
            out.add(index)
    return out


def _expected_numbers(settings: Settings, name: BatchName, reader: HubRange | None) -> set[int] | None:
    """The sequence numbers the Function writes into this file when given its batch again from the
    hub; None when the hub no longer holds that batch (or cannot be read)."""
    if reader is None or name.partition_id is None:
        return None
    first, last = name.first_sequence_number, name.last_sequence_number
    try:
        received = reader.read(name.partition_id, first, last)
    except HubReadError:
        return None
    if len(received) != last - first + 1:
        return None  # the hub no longer holds the whole batch (retention)
    _, result = rebuild_batch(received, settings)
    if result.name != name.batch:
        return None  # other events under these numbers: a recreated hub, or another hub's file
    return set(result.bronze.sequence_numbers)


def _at_most(lake: _Lake, name: BatchName | None, readable: int) -> int:
    """Events a damaged file can hold at most: its name's range less what quarantine holds of it."""
    if name is None or name.partition_id is None:
        return readable
    first, last = name.first_sequence_number, name.last_sequence_number
    quarantine = lake.quarantine
    same = pc.and_(
        pc.equal(pc.fill_null(quarantine["PartitionId"], ""), name.partition_id),
        pc.and_(
            pc.greater_equal(quarantine["SequenceNumber"], first),
            pc.less_equal(quarantine["SequenceNumber"], last),
        ),
    )
    quarantined = len(pc.unique(quarantine.filter(pc.fill_null(same, False))["SequenceNumber"]))
    return max(readable, last - first + 1 - quarantined)


def check_bronze_files(lake: _Lake, damaged: list[DamagedFile]) -> Check:
    """Every bronze file holds the records it was written with (damaged ones are listed)."""
    check = Check("bronze_files", "bronze files whole", failing=("damaged_files",))
    unreadable = sum(d.reason == BRONZE_UNREADABLE for d in damaged)
    check.counts = {
        "files": len(lake.bronze_files) - len(lake.superseded),
        "damaged_files": len(damaged),
        "unreadable_files": unreadable,
        "incomplete_files": len(damaged) - unreadable,
        "events_affected": sum(d.events_affected for d in damaged),
        "repaired_files": len(lake.superseded),
    }
    check.examples = {"damaged_files": [d.as_json() for d in damaged[:EXAMPLES]]}
    if damaged:
        check.notes.append(
            f"{len(damaged):,} bronze files do not hold what they were written with "
            f"({check.counts['events_affected']:,} events held back): run `python -m pipeline repair`"
        )
    if lake.superseded:
        check.notes.append(
            f"{len(lake.superseded):,} damaged files were repaired: their repairs are counted instead"
        )
    return check


def _files_of(keys: pa.Table, one: pa.Table, files: list[str]) -> list[str]:
    matched = keys.join(one, _HUB_KEY, join_type="inner")
    return sorted({files[i] for i in matched[FILE_COLUMN].to_pylist()})


def check_bronze_silver(
    lake: _Lake, silver: pa.Table, silver_quarantine: pa.Table, damaged: Sequence[DamagedFile] = ()
) -> Check:
    """Every distinct bronze event id in exactly one of silver (once) and the silver quarantine.

    An event only a damaged file holds and that went nowhere is counted as ``damaged``, not lost
    (the bronze files check fails until it is repaired), and what the silver quarantine holds of
    a damaged file's made-up records is not ``unexpected``.
    """
    check = Check(
        "bronze_silver",
        "bronze → silver + silver quarantine",
        failing=("lost", "doubled", "unexpected", "pending"),
    )
    if lake.superseded:
        # A repaired file's rows in the silver quarantine (bronze_incomplete) are superseded with
        # it: its events now come from the repair.
        replaced = pa.array(sorted({_file_tail(lake.bronze_files[i]) for i in lake.superseded}))
        tails = pa.array([_file_tail(f) if f else "" for f in silver_quarantine["source_file"].to_pylist()])
        silver_quarantine = silver_quarantine.filter(pc.invert(pc.is_in(tails, value_set=replaced)))
    bronze_ids = pc.unique(pc.drop_null(lake.bronze["EventId"]))
    silver_ids = silver["event_id"]
    silver_distinct = pc.unique(silver_ids)
    rejected_ids = pc.unique(pc.drop_null(silver_quarantine["event_id"]))
    downstream = _concat(silver_distinct, rejected_ids)
    missing = pc.filter(bronze_ids, pc.invert(pc.is_in(bronze_ids, value_set=downstream)))
    # A missing event whose bronze files no silver or silver quarantine row names: Spark has not
    # read them yet (pending). Named files that lack the event: lost.
    read_by_spark = {
        _file_tail(f)
        for f in pc.unique(_concat(silver["source_file"], silver_quarantine["source_file"])).to_pylist()
        if f
    }
    processed = np.array([_file_tail(f) in read_by_spark for f in lake.bronze_files] or [False], dtype=bool)
    damaged_tails = {_file_tail(d.file) for d in damaged}
    in_damaged = np.array([_file_tail(f) in damaged_tails for f in lake.bronze_files] or [False], dtype=bool)
    bronze_missing = lake.bronze.filter(pc.is_in(lake.bronze["EventId"], value_set=missing))
    files = bronze_missing[FILE_COLUMN].to_numpy()
    seen = pa.table(
        {"EventId": bronze_missing["EventId"], "processed": processed[files], "damaged": in_damaged[files]}
    )
    by_id = seen.group_by("EventId").aggregate([("processed", "any"), ("damaged", "all")])
    held = by_id.filter(by_id["damaged_all"])["EventId"]
    by_id = by_id.filter(pc.invert(by_id["damaged_all"]))
    lost = by_id.filter(by_id["processed_any"])["EventId"]
    pending = by_id.filter(pc.invert(by_id["processed_any"]))["EventId"]
    repeated = pa.table({"event_id": silver_ids}).group_by("event_id").aggregate([([], "count_all")])
    repeated = repeated.filter(pc.greater(repeated["count_all"], 1))
    both = pc.filter(silver_distinct, pc.is_in(silver_distinct, value_set=rejected_ids))
    vouched = rejected_ids  # quarantined ids that must come from bronze
    if damaged_tails:
        tails = pa.array([_file_tail(f) if f else "" for f in silver_quarantine["source_file"].to_pylist()])
        from_damaged = pc.is_in(tails, value_set=pa.array(sorted(damaged_tails)))
        vouched = pc.unique(pc.drop_null(silver_quarantine.filter(pc.invert(from_damaged))["event_id"]))
    downstream_ids = pc.unique(_concat(silver_distinct, vouched))
    unexpected = pc.filter(downstream_ids, pc.invert(pc.is_in(downstream_ids, value_set=bronze_ids)))
    check.counts = {
        "bronze_events": len(bronze_ids),
        "silver_rows": len(silver_ids),
        "silver_quarantine_events": len(rejected_ids),
        "lost": len(lost),
        "doubled": len(silver_ids) - len(silver_distinct) + len(both),
        "unexpected": len(unexpected),
        "pending": len(pending),
        "damaged": len(held),
        "silver_quarantine_without_id": silver_quarantine.num_rows
        - int(pc.sum(pc.is_valid(silver_quarantine["event_id"])).as_py() or 0),
    }
    check.examples = {
        "lost": [{"event_id": i} for i in lost.slice(0, EXAMPLES).to_pylist()],
        "doubled": [{"event_id": r["event_id"], "silver_rows": r["count_all"]} for r in _rows(repeated)]
        + [
            {"event_id": i, "in": "silver and silver quarantine"} for i in both.slice(0, EXAMPLES).to_pylist()
        ],
        "unexpected": [{"event_id": i} for i in unexpected.slice(0, EXAMPLES).to_pylist()],
        "pending": [{"event_id": i} for i in pending.slice(0, EXAMPLES).to_pylist()],
    }
    check.examples["doubled"] = check.examples["doubled"][:EXAMPLES]
    conflicts = sum(
        any(marker == CONFLICT_MARKER for marker, _ in name.name.suffixes)
        for f in [*lake.bronze_files, *lake.quarantine_files]
        if (name := parse_path(f))
    )
    if conflicts:
        check.notes.append(
            f"{conflicts:,} files were written under a conflict name (two hubs with the same namespace and "
            "name write to this lake; their events are counted like any others): see docs/ingest.md"
        )
    if check.counts["unexpected"]:
        check.notes.append("silver holds events that no bronze file holds (a bronze file deleted?)")
    if check.counts["pending"]:
        check.notes.append("bronze files the Spark job has not read yet: run `python -m pipeline run --once`")
    return check


def first_per_event(silver: pa.Table) -> pa.Table:
    """Silver with one row per ``event_id`` (the first), as gold counts each event once."""
    if len(pc.unique(silver["event_id"])) == silver.num_rows:
        return silver
    numbered = silver.append_column("_row", pa.array(np.arange(silver.num_rows, dtype=np.int64)))
    first = numbered.group_by("event_id", use_threads=False).aggregate([("_row", "min")])
    return silver.take(np.sort(first["_row_min"].to_numpy()))


def recompute_gold(silver: pa.Table, window_minutes: int) -> pa.Table:
    """Gold's key, ``event_count`` and recomputed columns from silver rows (see the module doc)."""
    size = window_minutes * 60 * 1_000_000
    micros = _micros(silver["event_time"]).to_numpy(zero_copy_only=False)
    starts = micros - np.mod(micros, size)  # floor modulo: pmod, as Spark's window_start
    columns: dict[str, Any] = {"location": silver["location"], "window_start": starts}
    aggregates: list[tuple[str, str]] = []
    for gold_column, how, column in _GOLD_RECIPE:
        if how in ("avg", "total"):
            fixed = f"_fixed_{column}"
            if fixed not in columns:
                scaled = pc.round(pc.multiply(silver[column], float(_FIXED_POINT)), round_mode="half_to_even")
                columns[fixed] = pc.cast(scaled, pa.int64())
                aggregates.append((fixed, "sum"))
        else:
            columns[f"_{gold_column}"] = silver[column]
            aggregates.append((f"_{gold_column}", how))
    grouped = (
        pa.table(columns).group_by(["location", "window_start"]).aggregate([([], "count_all"), *aggregates])
    )
    count = pc.cast(grouped["count_all"], pa.float64())
    out: dict[str, Any] = {
        "location": grouped["location"],
        "window_start": grouped["window_start"],
        "event_count": grouped["count_all"],
    }
    for gold_column, how, column in _GOLD_RECIPE:
        if how in ("avg", "total"):
            total = pc.cast(grouped[f"_fixed_{column}_sum"], pa.float64())
            value = pc.divide(total, count) if how == "avg" else total
            out[gold_column] = pc.divide(value, float(_FIXED_POINT))
        else:
            out[gold_column] = pc.cast(grouped[f"_{gold_column}_{how}"], pa.float64())
    return pa.table(out)


def _close(a: pa.ChunkedArray, b: pa.ChunkedArray, rel_tol: float) -> pa.ChunkedArray:
    """Element-wise ``math.isclose`` (nulls equal only to nulls)."""
    a64, b64 = pc.cast(a, pa.float64()), pc.cast(b, pa.float64())
    scale = pc.max_element_wise(pc.abs(a64), pc.abs(b64))
    near = pc.less_equal(
        pc.abs(pc.subtract(a64, b64)), pc.max_element_wise(pc.multiply(scale, rel_tol), _ABS_TOL)
    )
    return _null_safe(near, a, b)


def _same(a: pa.ChunkedArray, b: pa.ChunkedArray) -> pa.ChunkedArray:
    return _null_safe(pc.equal(a, b), a, b)


def _null_safe(equal: Any, a: Any, b: Any) -> pa.ChunkedArray:
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    return pc.or_(pc.fill_null(equal, False), both_null)


def check_silver_gold(silver: pa.Table, gold: pa.Table, window_minutes: int) -> Check:
    """Per gold window, the count and aggregates equal what silver holds.

    ``silver`` has one row per event (:func:`first_per_event`): a doubled silver row is the
    bronze -> silver check's finding, gold counts each event once.
    """
    check = Check("silver_gold", "silver → gold", failing=("lost", "unexpected", "mismatched_windows"))
    expected = recompute_gold(silver, window_minutes)
    actual = gold.select(["location", "window_start", "event_count", *[c for c, _, _ in _GOLD_RECIPE]])
    actual = actual.set_column(1, "window_start", _micros(actual["window_start"]))
    joined = expected.join(actual, _GOLD_KEY, join_type="full outer", left_suffix="", right_suffix="_gold")
    in_silver, in_gold = pc.is_valid(joined["event_count"]), pc.is_valid(joined["event_count_gold"])
    missing = joined.filter(pc.invert(in_gold))
    extra = joined.filter(pc.invert(in_silver))
    both = joined.filter(pc.and_(in_silver, in_gold))
    diff = pc.subtract(both["event_count"], both["event_count_gold"])
    short = pc.sum(pc.max_element_wise(diff, 0)).as_py() or 0
    over = pc.sum(pc.max_element_wise(pc.negate(diff), 0)).as_py() or 0
    same_values = pc.equal(diff, 0)
    for gold_column, _, _ in _GOLD_RECIPE:
        same_values = pc.and_(
            same_values, _close(both[gold_column], both[f"{gold_column}_gold"], GOLD_REL_TOL)
        )
    differing = both.filter(pc.invert(same_values))
    check.counts = {
        "silver_events": expected["event_count"].to_numpy().sum() if expected.num_rows else 0,
        "windows": expected.num_rows,
        "gold_windows": gold.num_rows,
        # Events silver holds that gold does not count, and events gold counts that silver lacks.
        "lost": int(pc.sum(missing["event_count"]).as_py() or 0) + int(short),
        "unexpected": int(pc.sum(extra["event_count_gold"]).as_py() or 0) + int(over),
        "missing_windows": missing.num_rows,
        "extra_windows": extra.num_rows,
        "mismatched_windows": differing.num_rows + missing.num_rows + extra.num_rows,
    }
    check.counts["silver_events"] = int(check.counts["silver_events"])

    def windows(table: pa.Table, columns: Iterable[str]) -> list[dict[str, Any]]:
        rows = table.slice(0, EXAMPLES).to_pylist()
        return [
            {"location": r["location"], "window_start": _ms_text(r["window_start"] // 1000)}
            | {c: r[c] for c in columns}
            for r in rows
        ]

    compared = ["event_count", "event_count_gold"]
    for gold_column, _, _ in _GOLD_RECIPE:
        compared += [gold_column, f"{gold_column}_gold"]
    check.examples = {
        "missing_windows": windows(missing, ["event_count"]),
        "extra_windows": windows(extra, ["event_count_gold"]),
        "mismatched_windows": windows(differing, compared),
    }
    return check


def _sql_table(rows: list[dict[str, Any]]) -> pa.Table:
    """SQL rows (any driver's value types) as Arrow columns of gold's logical types."""
    columns: dict[str, pa.Array] = {}
    for name, kind in GOLD_COLUMN_TYPES.items():
        values = [r.get(name) for r in rows]
        if kind == "timestamp":
            times = [parse_utc(v) for v in values]
            columns[name] = pa.array(
                [None if t is None else (t - _EPOCH) // _MICROSECOND for t in times], pa.int64()
            )
        elif kind == "double":
            columns[name] = pa.array([None if v is None else float(v) for v in values], pa.float64())
        elif kind == "long":
            columns[name] = pa.array([None if v is None else int(v) for v in values], pa.int64())
        else:
            columns[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.table(columns)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


def check_gold_sql(settings: Settings, gold: pa.Table, gold_version: int | None) -> Check:
    """Every gold row equals its SQL row; none missing or extra."""
    check = Check("gold_sql", "gold → SQL", failing=("sql_mismatches",))
    with SqlReader(settings) as reader:
        rows = reader.rows(settings.sql_table) or []
        synced_version, _ = watermark(settings, reader)
    sql = _sql_table(rows)
    gold = gold.select(list(GOLD_COLUMNS))
    for name, kind in GOLD_COLUMN_TYPES.items():
        if kind == "timestamp":
            gold = gold.set_column(gold.schema.get_field_index(name), name, _micros(gold[name]))
    joined = gold.join(sql, _GOLD_KEY, join_type="full outer", left_suffix="", right_suffix="_sql")
    in_gold, in_sql = pc.is_valid(joined["event_count"]), pc.is_valid(joined["event_count_sql"])
    both = joined.filter(pc.and_(in_gold, in_sql))
    differs: dict[str, Any] = {}
    equal = pa.array(np.ones(both.num_rows, dtype=bool))
    for name, kind in GOLD_COLUMN_TYPES.items():
        if name in GOLD_KEY:
            continue
        same = (
            _close(both[name], both[f"{name}_sql"], SQL_REL_TOL)
            if kind == "double"
            else _same(both[name], both[f"{name}_sql"])
        )
        differs[name] = pc.invert(same)
        equal = pc.and_(equal, same)
    different = both.filter(pc.invert(equal))
    missing = joined.filter(pc.invert(in_sql))
    extra = joined.filter(pc.invert(in_gold))
    check.counts = {
        "gold_rows": gold.num_rows,
        "sql_rows": sql.num_rows,
        "equal": both.num_rows - different.num_rows,
        "different": different.num_rows,
        "missing_in_sql": missing.num_rows,
        "extra_in_sql": extra.num_rows,
        "sql_mismatches": different.num_rows + missing.num_rows + extra.num_rows,
    }
    differing_columns = pa.table(differs).filter(pc.invert(equal)) if differs else None

    def key(r: dict[str, Any]) -> dict[str, Any]:
        return {"location": r["location"], "window_start": _ms_text(r["window_start"] // 1000)}

    examples = []
    for i, r in enumerate(different.slice(0, EXAMPLES).to_pylist()):
        assert differing_columns is not None
        names = [n for n in differs if differing_columns[n][i].as_py()]
        examples.append(key(r) | {"columns": {n: {"gold": r[n], "sql": r[f"{n}_sql"]} for n in names}})
    check.examples = {
        "different": examples,
        "missing_in_sql": [key(r) for r in missing.slice(0, EXAMPLES).to_pylist()],
        "extra_in_sql": [key(r) for r in extra.slice(0, EXAMPLES).to_pylist()],
    }
    if gold_version is not None and synced_version != gold_version:
        check.notes.append(
            f"SQL was last synced from gold version {synced_version}; gold is at version {gold_version}: "
            "run `python -m pipeline sync`"
        )
    return check


def _quarantined_device_seqs(bodies: Iterable[str | None]) -> pa.Table:
    """``(device_id, device_seq)`` of the quarantined bodies that are JSON objects carrying both."""
    devices, numbers = [], []
    for body in bodies:
        if not body or '"deviceSeq"' not in body:
            continue
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(event, dict):
            continue
        device, number = event.get("deviceId"), event.get("deviceSeq")
        if isinstance(device, str) and type(number) is int and -(2**63) <= number < 2**63:
            devices.append(device)
            numbers.append(number)
    return pa.table(
        {"device_id": pa.array(devices, pa.string()), "device_seq": pa.array(numbers, pa.int64())}
    )


def check_devices(silver: pa.Table, quarantined: pa.Table) -> Check:
    """Per device, ``deviceSeq`` numbers missing between its lowest and highest, and repeats."""
    check = Check("devices", "per device (deviceSeq)", failing=("devices_with_gaps",), report_only=True)
    seqs = silver.select(["device_id", "device_seq"]).filter(pc.is_valid(silver["device_seq"]))
    per_device = seqs.group_by("device_id").aggregate(
        [
            ("device_seq", "min"),
            ("device_seq", "max"),
            ("device_seq", "count"),
            ("device_seq", "count_distinct"),
        ]
    )
    span = pc.add(pc.subtract(per_device["device_seq_max"], per_device["device_seq_min"]), 1)
    gaps = pc.subtract(span, per_device["device_seq_count_distinct"])
    repeats = pc.subtract(per_device["device_seq_count"], per_device["device_seq_count_distinct"])
    # Missing numbers that a quarantine holds: the event reached the hub but was rejected.
    ranges = per_device.select(["device_id", "device_seq_min", "device_seq_max"])
    candidates = _distinct(quarantined, ["device_id", "device_seq"]).join(
        ranges, "device_id", join_type="inner"
    )
    inside = pc.and_(
        pc.greater_equal(candidates["device_seq"], candidates["device_seq_min"]),
        pc.less_equal(candidates["device_seq"], candidates["device_seq_max"]),
    )
    explained = _semi(
        candidates.filter(inside).select(["device_id", "device_seq"]),
        _distinct(seqs, ["device_id", "device_seq"]),
        ["device_id", "device_seq"],
        anti=True,
    )
    explained_per_device = explained.group_by("device_id").aggregate([([], "count_all")])
    table = per_device.append_column("gaps", gaps).append_column("repeats", repeats)
    table = table.join(explained_per_device, "device_id", join_type="left outer")
    quarantined_gaps = pc.fill_null(table["count_all"], 0)
    unexplained = pc.subtract(table["gaps"], quarantined_gaps)
    table = table.append_column("unexplained", unexplained).sort_by("device_id")
    with_gaps = table.filter(pc.greater(table["unexplained"], 0))
    with_repeats = table.filter(pc.greater(table["repeats"], 0))
    check.counts = {
        "devices": table.num_rows,
        "devices_with_gaps": with_gaps.num_rows,
        "missing_seq": int(pc.sum(table["unexplained"]).as_py() or 0),
        "missing_seq_quarantined": int(pc.sum(quarantined_gaps).as_py() or 0),
        "devices_with_repeats": with_repeats.num_rows,
        "repeated_seq": int(pc.sum(table["repeats"]).as_py() or 0),
    }
    check.examples = {
        "gaps": _gap_examples(seqs, with_gaps),
        "repeats": [
            {
                "device_id": r["device_id"],
                "repeated": r["repeats"],
                "lowest": r["device_seq_min"],
                "highest": r["device_seq_max"],
            }
            for r in with_repeats.slice(0, EXAMPLES).to_pylist()
        ],
    }
    if check.counts["devices_with_gaps"]:
        check.notes.append(
            "deviceSeq numbers missing from silver and from every quarantine: events lost before the hub, "
            "or rejected ones whose deviceId or deviceSeq could not be read"
        )
    return check


def _gap_examples(seqs: pa.Table, devices: pa.Table) -> list[dict[str, Any]]:
    """For the first devices with gaps: the first missing ranges of each (a few devices' rows only)."""
    examples = []
    names = devices["device_id"].slice(0, EXAMPLES)
    rows = seqs.filter(pc.is_in(seqs["device_id"], value_set=names.combine_chunks()))
    for name in names.to_pylist():
        numbers = np.unique(rows.filter(pc.equal(rows["device_id"], name))["device_seq"].to_numpy())
        steps = np.diff(numbers)
        where = np.nonzero(steps > 1)[0][:5]
        examples.append(
            {
                "device_id": name,
                "missing": [[int(numbers[i]) + 1, int(numbers[i + 1]) - 1] for i in where],
            }
        )
    return examples


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
    files = _read_lake(lake, settings)
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
    raw = _concat(files.quarantine["Body"].filter(utf8), silver_quarantine["body"])
    bodies = [b.decode("utf-8", "replace") if b else None for b in pc.cast(raw, pa.binary()).to_pylist()]
    checks.append(check_devices(events, _quarantined_device_seqs(bodies)))
    return AuditReport(checks, time.monotonic() - started, damaged)


def _hub_match(settings: Settings, files: _Lake) -> tuple[_HubMatch | None, str | None]:
    hub, skipped = _embedded_hub(settings)
    return (None, skipped) if hub is None else (_match_hub(settings, files, hub), None)


def find_damaged_files(settings: Settings, lake: LakeStorage | None = None) -> list[DamagedFile]:
    """The damaged bronze files the audit reports, reading only bronze, quarantine and the hub."""
    files = _read_lake(lake or lake_from_settings(settings), settings)
    match, _ = _hub_match(settings, files)
    return find_damaged(settings, files, match)


def _delta(settings: Settings, uri: str, columns: dict[str, pa.DataType]) -> tuple[pa.Table, int | None]:
    """A Delta table's columns and version (empty and None when it does not exist yet)."""
    table = delta_table(uri, storage_options_from_settings(settings, uri=uri))
    if table is None:
        return _empty(columns), None
    return table.to_pyarrow_table(columns=list(columns)), int(table.version())
