"""`python -m pipeline repair [--json]`: re-ingest damaged bronze files from the hub, rebuild, sync."""

from __future__ import annotations

import argparse
import json
import threading
from typing import Any

from pipeline import orchestrate, preflight
from pipeline.cli import UserError, make_console

DESCRIPTION = """\
Repair the bronze files `pipeline audit` reports damaged (cut, truncated, an unreadable Avro
header or block: bronze_incomplete, bronze_unreadable):

  1. each file's batch is read again from the event hub, by partition and sequence range (the
     embedded hub, or Azure Event Hubs within its retention, with EVENTHUB_CONNECTION or
     EVENTHUB_CONNECTION__fullyQualifiedNamespace, in its own consumer group);
  2. the ingest Function's own code validates and encodes it, and it is written create-only as
     the damaged file's name with a repair suffix (docs/architecture.md, "Bronze names") beside
     it; the damaged file is kept and from then on superseded;
  3. silver and gold are rebuilt for the event dates those events fall on (as `pipeline
     reprocess` does), and SQL is synced.

Running it again when nothing is damaged does nothing. Exit code 1 when a file cannot be repaired
(its events are no longer in the hub, say); the others are still repaired.
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "repair",
        help="Re-ingest damaged bronze files from the hub, rebuild their dates, sync SQL",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print what was repaired as one JSON object")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="only list the damaged files, change nothing (exit code 1 when there are any)",
    )
    parser.add_argument(
        "--no-rebuild",
        action="store_true",
        help="write the repairs, but leave silver, gold and SQL to the next run (the stream reads them)",
    )
    parser.add_argument(
        "--consumer-group",
        default="$Default",
        help="Azure Event Hubs consumer group to read with (default $Default; not the ingest Function's)",
    )
    parser.set_defaults(handler=handle, check=check, uses=uses)


def check(args: argparse.Namespace) -> None:
    # What the run needs depends on its options: a dry run only reads, and only a rebuild starts Spark.
    args.writes = not args.dry_run
    args.java = not (args.dry_run or args.no_rebuild)


def uses(args: argparse.Namespace) -> tuple[str, ...]:
    from pipeline.commands.spark import USES as SPARK_USES

    reading = (*preflight.STATE, *preflight.INGEST, "SILVER_QUARANTINE_TABLE_URI")
    if args.dry_run or args.no_rebuild:
        return reading
    return (*reading, *SPARK_USES, *preflight.SYNC)


def handle(args: argparse.Namespace) -> int:
    from pipeline.reingest import HubReadError
    from pipeline.repair import date_runs, run_repair

    settings = preflight.settings_for(args)
    progress = make_console(stderr=True)

    def repair() -> Any:
        with progress.status("repairing…") as status:
            return run_repair(
                settings,
                rebuild=not args.no_rebuild,
                dry_run=args.dry_run,
                consumer_group=args.consumer_group,
                on_step=lambda text: status.update(f"repair: {text}…"),
            )

    def on_interrupt() -> None:
        progress.print(
            "stopping after the current step (Ctrl-C again quits at once); repairs written are kept"
        )

    try:
        report, _ = orchestrate.interruptible(
            repair, threading.Event(), on_interrupt=on_interrupt, name="repair"
        )
    except HubReadError as exc:
        raise UserError(str(exc)) from exc
    # A dry run exits 1 when it finds damage, as the audit does.
    code = 1 if not report.ok or (args.dry_run and report.repairs) else 0
    if args.json:
        print(json.dumps(report.as_json(), default=str))
        return code
    console = make_console()
    if not report.repairs:
        console.print("no damaged bronze files: nothing to repair", highlight=False)
        return 0
    for repair in report.repairs:
        damaged = repair.damaged
        of = "" if damaged.records_expected is None else f" of {damaged.records_expected:,}"
        what = f"{damaged.reason}, {damaged.records_readable:,}{of} records readable"
        if args.dry_run:
            line = f"damaged: {damaged.file} ({what})"
        elif repair.error is not None:
            line = f"cannot repair {damaged.file} ({what}): {repair.error}"
        else:
            verb = "repaired" if repair.written else "already repaired"
            line = f"{verb}: {damaged.file} ({what}) -> {repair.path} ({repair.events:,} events from the hub)"
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    for counts in report.rebuilt:
        silver = f"+{counts['silver_inserted']} ~{counts['silver_updated']} -{counts['silver_deleted']}"
        gold = f"+{counts['gold_inserted']} ~{counts['gold_updated']} -{counts['gold_deleted']}"
        console.print(
            f"rebuilt silver and gold for {counts['from']} … {counts['to']}: "
            f"{counts['bronze_rows']:,} bronze rows read; silver {silver}, gold {gold}",
            highlight=False,
        )
    if report.rebuild_skipped:
        console.print(report.rebuild_skipped, markup=False, highlight=False, soft_wrap=True)
    elif args.no_rebuild and report.event_dates:
        runs = ", ".join(f"{a} … {b}" for a, b in date_runs(report.event_dates))
        console.print(
            f"not rebuilt (--no-rebuild): event dates {runs}; the next `pipeline run` reads the repairs",
            highlight=False,
        )
    if report.sync is not None:
        console.print(f"sync {report.sync.get('status')}: {report.sync.get('message')}", markup=False)
    return code
