"""`python -m pipeline repair [--json]`: re-ingest damaged bronze files from the hub, rebuild, sync."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console

from pipeline.cli import UserError
from settings import load_settings

DESCRIPTION = """\
Repair the bronze files `pipeline audit` reports damaged (cut, truncated, an unreadable Avro
header or block: bronze_incomplete, bronze_unreadable):

  1. each file's batch is read again from the event hub, by partition and sequence range (the
     embedded hub, or Azure Event Hubs within its retention, with EVENTHUB_CONNECTION or
     EVENTHUB_CONNECTION__fullyQualifiedNamespace, in its own consumer group);
  2. the ingest Function's own code validates and encodes it, and it is written create-only as
     <name>-repair-<digest> beside the damaged file, which is kept and from then on superseded;
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
    parser.add_argument("--dry-run", action="store_true", help="only list the damaged files, change nothing")
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
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pipeline.reingest import HubReadError
    from pipeline.repair import date_runs, run_repair

    settings = load_settings()
    err = Console(stderr=True)
    try:
        with err.status("repairing…") as status:
            report = run_repair(
                settings,
                consumer_group=args.consumer_group,
                rebuild=not args.no_rebuild,
                dry_run=args.dry_run,
                on_step=lambda text: status.update(f"repair: {text}…"),
            )
    except HubReadError as exc:
        raise UserError(str(exc)) from exc
    except Exception as exc:
        if type(exc).__module__.startswith(("pyspark", "py4j")) or type(exc).__name__ in (
            "Error",
            "OperationalError",
            "InterfaceError",
        ):
            raise UserError(
                f"repair failed: {(str(exc).strip().splitlines() or [type(exc).__name__])[0]}"
            ) from exc
        raise
    # A dry run exits 1 when it finds damage, as the audit does.
    code = 1 if not report.ok or (args.dry_run and report.repairs) else 0
    if args.json:
        print(json.dumps(report.as_json(), default=str))
        return code
    console = Console(highlight=False, soft_wrap=True)  # one line per file, however long its path
    if not report.repairs:
        console.print("no damaged bronze files: nothing to repair")
        return 0
    for repair in report.repairs:
        damaged = repair.damaged
        of = "" if damaged.records_expected is None else f" of {damaged.records_expected:,}"
        what = f"{damaged.reason}, {damaged.records_readable:,}{of} records readable"
        if args.dry_run:
            console.print(f"damaged: {damaged.file} ({what})", markup=False)
        elif repair.error is not None:
            console.print(f"cannot repair {damaged.file} ({what}): {repair.error}", markup=False)
        else:
            verb = "repaired" if repair.written else "already repaired"
            console.print(
                f"{verb}: {damaged.file} ({what}) -> {repair.path} ({repair.events:,} events from the hub)",
                markup=False,
            )
    for counts in report.rebuilt:
        silver = f"+{counts['silver_inserted']} ~{counts['silver_updated']} -{counts['silver_deleted']}"
        gold = f"+{counts['gold_inserted']} ~{counts['gold_updated']} -{counts['gold_deleted']}"
        console.print(
            f"rebuilt silver and gold for {counts['from']} … {counts['to']}: "
            f"{counts['bronze_rows']:,} bronze rows read; silver {silver}, gold {gold}"
        )
    if report.rebuild_skipped:
        console.print(report.rebuild_skipped, markup=False)
    elif args.no_rebuild and report.event_dates:
        runs = ", ".join(f"{a} … {b}" for a, b in date_runs(report.event_dates))
        console.print(
            f"not rebuilt (--no-rebuild): event dates {runs}; the next `pipeline run` reads the repairs"
        )
    if report.sync is not None:
        console.print(f"sync {report.sync.get('status')}: {report.sync.get('message')}", markup=False)
    return code
