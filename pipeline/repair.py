"""`pipeline repair`: write every damaged bronze file's events again from the hub, then rebuild.

For each file the audit reports damaged (:func:`pipeline.audit.find_damaged_files`), its batch is
read again from the event hub by partition and sequence range (:mod:`pipeline.reingest`: the
embedded hub, or Azure Event Hubs within its retention), run through the ingest Function's own
core and encoder, and landed create-only (``functions.landing.land``) under the damaged file's
name with a repair suffix (``contract.lake_layout.repair_of``), beside the damaged file, which is
kept as it is: from then on the
repair supersedes it for every reader that counts events. The repair's name is a function of the
batch's events, so repairing twice writes nothing twice.

Then the event dates the repaired events fall on are rebuilt (``reprocess``: silver and gold from
bronze, exact and idempotent) and SQL is synced. The Spark stream itself needs nothing: a repair
is a new file to it, whose events silver already holds after the rebuild.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from contract.lake_layout import parse_path, repair_of
from functions.bronze import encode_bronze
from functions.ingest_core import batch_digest
from functions.lake import LakeStorage, LocalLake, lake_from_settings
from functions.landing import land
from pipeline.audit import DamagedFile, find_damaged_files
from pipeline.reingest import HubRange, HubReadError, hub_for, rebuild_batch
from settings import Settings


class RepairError(Exception):
    """A damaged file that cannot be repaired from the hub; the message says why, in one line."""


@dataclass(frozen=True)
class FileRepair:
    """One damaged file and what the repair did about it.

    Attributes:
        damaged: The file as the audit reported it.
        path: The repair that supersedes it (None when it could not be repaired, or in a dry run).
        written: False when that repair was already there (an earlier run wrote it).
        events: The events the repair holds.
        event_dates: The event dates (UTC) of those events: what the rebuild covers.
        error: Why it could not be repaired (None when it was).
    """

    damaged: DamagedFile
    path: str | None = None
    written: bool = False
    events: int = 0
    event_dates: tuple[date, ...] = ()
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            **self.damaged.as_json(),
            "repair": self.path,
            "written": self.written,
            "events": self.events,
            "event_dates": [d.isoformat() for d in self.event_dates],
            "error": self.error,
        }


@dataclass
class RepairReport:
    """What a repair found, wrote and rebuilt."""

    repairs: list[FileRepair] = field(default_factory=list)
    rebuilt: list[dict[str, Any]] = field(default_factory=list)
    sync: dict[str, Any] | None = None
    rebuild_skipped: str | None = None  # why silver and gold were not rebuilt here

    @property
    def failed(self) -> list[FileRepair]:
        return [r for r in self.repairs if r.error is not None]

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def event_dates(self) -> list[date]:
        return sorted({d for r in self.repairs if r.error is None for d in r.event_dates})

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "damaged": len(self.repairs),
            "repaired": sum(r.path is not None for r in self.repairs),
            "failed": len(self.failed),
            "files": [r.as_json() for r in self.repairs],
            "rebuilt": self.rebuilt,
            "rebuild_skipped": self.rebuild_skipped,
            "sync": self.sync,
        }


def repair_file(settings: Settings, lake: LakeStorage, hub: HubRange, damaged: DamagedFile) -> FileRepair:
    """Re-ingest one damaged file's batch from the hub under its repair name (create-only)."""
    try:
        path, written, events, dates = _repair(settings, lake, hub, damaged)
    except (RepairError, HubReadError) as exc:
        return FileRepair(damaged, error=str(exc))
    return FileRepair(damaged, path, written, events, dates)


def _repair(
    settings: Settings, lake: LakeStorage, hub: HubRange, damaged: DamagedFile
) -> tuple[str, bool, int, tuple[date, ...]]:
    file = parse_path(damaged.file)
    name = file.name if file is not None else None
    if file is None or name is None or name.partition_id is None:
        raise RepairError("its name does not say which partition and sequence numbers it held")
    first, last = name.first_sequence_number, name.last_sequence_number
    received = hub.read(name.partition_id, first, last)
    wanted = last - first + 1
    if len(received) != wanted:
        raise RepairError(
            f"{hub.describe()} holds {len(received):,} of its {wanted:,} events "
            f"(partition {name.partition_id}, {first}..{last}): past the hub's retention?"
        )
    columns, result = rebuild_batch(received, settings)
    if result.name != name.batch or (
        name.conflict_digest is not None and batch_digest(columns) != name.conflict_digest
    ):
        raise RepairError(
            f"the events {hub.describe()} holds under partition {name.partition_id}, {first}..{last} are "
            "another batch's (a recreated hub, or another hub writing to this lake)"
        )
    if not result.bronze:
        raise RepairError("the hub's batch has no valid event: it never had a bronze file")
    target = repair_of(file, batch_digest(columns))
    # The stem seeds Avro's sync marker: the repair's bytes are a function of its records too.
    data = encode_bronze(result.bronze, target.format, target.name.stem)
    landing = land(lake, settings.bronze_container, target, data, columns)
    if landing.conflict_with is not None:
        raise RepairError(f"{target.path} held other events; the repair went to {landing.path}")
    return landing.path, landing.written, len(result.bronze), _event_dates(result.bronze.bodies)


def _event_dates(bodies: Any) -> tuple[date, ...]:
    """The UTC dates of the bodies' event times (valid bodies: RFC 3339 with an offset)."""
    dates = set()
    for body in bodies:
        moment = datetime.fromisoformat(orjson.loads(body)["eventTime"].replace("Z", "+00:00"))
        dates.add(moment.astimezone(UTC).date())
    return tuple(sorted(dates))


def date_runs(dates: list[date]) -> list[tuple[date, date]]:
    """Consecutive dates as (first, last) ranges: what ``reprocess`` rebuilds in one go."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(dates)):
        if runs and day - runs[-1][1] == timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _is_local_lake(lake: LakeStorage, settings: Settings) -> bool:
    """Whether bronze is the local lake folder local Spark reads."""
    return isinstance(lake, LocalLake) and lake.root.resolve() == settings.local_lake_path.resolve()


def run_repair(
    settings: Settings,
    *,
    lake: LakeStorage | None = None,
    hub: HubRange | None = None,
    rebuild: bool = True,
    dry_run: bool = False,
    consumer_group: str = "$Default",
    on_step: Callable[[str], None] | None = None,
) -> RepairReport:
    """Repair every damaged bronze file, then rebuild the event dates they hold and sync SQL.

    Args:
        settings: The pipeline's settings.
        lake: The bronze storage (default: the one the settings name).
        hub: Where the events are read again (default: the hub the settings name, connected only
            when a file is damaged).
        rebuild: Rebuild silver and gold (local Spark) and sync SQL afterwards. Skipped, with the
            reason in the report, when the lake is not the local folder (run the Databricks
            reprocess job for the dates instead).
        dry_run: Only find the damaged files.
        consumer_group: The consumer group Azure Event Hubs is read with.
        on_step: Called with a short description before each step (progress output).
    """
    step = on_step or (lambda _: None)
    lake = lake or lake_from_settings(settings)
    step("looking for damaged bronze files")
    report = RepairReport()
    damaged = find_damaged_files(settings, lake)
    if dry_run:
        report.repairs = [FileRepair(d) for d in damaged]
        return report
    if not damaged:
        return report
    reader = hub or hub_for(settings, consumer_group)
    for file in damaged:
        step(f"re-ingesting {file.file.rsplit('/', 1)[-1]}")
        report.repairs.append(repair_file(settings, lake, reader, file))
    dates = report.event_dates
    if not dates or not rebuild:
        return report
    if not _is_local_lake(lake, settings):
        runs = ", ".join(f"{a} … {b}" for a, b in date_runs(dates))
        report.rebuild_skipped = (
            f"the lake is not the local folder: rebuild silver and gold for event dates {runs} with the "
            "reprocess job (weather-spark-reprocess), then sync"
        )
        return report
    from pipeline.spark_runner import reprocess
    from pipeline.sync_runner import sync_once

    for start, end in date_runs(dates):
        step(f"rebuilding silver and gold for {start} … {end}")
        report.rebuilt.append(reprocess(settings, start, end))
    step("syncing SQL")
    report.sync = sync_once(settings)
    return report
