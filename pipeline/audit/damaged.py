"""Damaged bronze files: files that do not hold the records they were written with (cut,
truncated, unreadable).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contract.bronze import BRONZE_INCOMPLETE, BRONZE_UNREADABLE, RECORDS_IN_FILE
from contract.lake_layout import BatchName, batch_name
from pipeline.audit.common import EXAMPLES, Check
from pipeline.audit.reading import AuditedLake, HubMatch
from pipeline.lake_records import FILE_COLUMN
from pipeline.reingest import HubRange, HubReadError, LocalHubRange, rebuild_batch
from settings import Settings


def covered(name: BatchName, events: pa.Table) -> np.ndarray:
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
    settings: Settings, lake: AuditedLake, match: HubMatch | None, hub_range: HubRange | None = None
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


def _files_covering(lake: AuditedLake, match: HubMatch) -> set[int]:
    """Bronze files whose name covers a hub event that no file holds (and that was checkpointed)."""
    missing = match.missing
    after = missing["sequence_number"].to_numpy() > match.checkpoints[missing["partition"].to_numpy()]
    gone = missing.filter(pa.array(~after, pa.bool_()))
    out: set[int] = set()
    for index, path in enumerate(lake.bronze_files if gone.num_rows else []):
        name = batch_name(path)
        if index not in lake.superseded and name is not None and covered(name, gone).any():
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


def _at_most(lake: AuditedLake, name: BatchName | None, readable: int) -> int:
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


def check_bronze_files(lake: AuditedLake, damaged: list[DamagedFile]) -> Check:
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
