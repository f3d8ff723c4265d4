"""`python -m pipeline reprocess --from YYYY-MM-DD --to YYYY-MM-DD`: rebuild silver and gold."""

from __future__ import annotations

import argparse
import json
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pipeline import orchestrate, preflight
from pipeline.cli import Interrupted, UserError, make_console
from pipeline.commands.spark import USES as SPARK_USES
from pipeline.failures import first_line

# Event dates reprocessing accepts: no event can be dated after tomorrow (UTC), since an event time
# is at most minutes after its enqueued time; the floor keeps the range something Spark can hold.
EARLIEST = date(1900, 1, 1)


def latest() -> date:
    """The last event date any event can have: tomorrow, UTC."""
    return datetime.now(UTC).date() + timedelta(days=1)


def _date(text: str) -> date:
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None
    if not EARLIEST <= value <= latest():
        raise argparse.ArgumentTypeError(
            f"expected an event date from {EARLIEST} to {latest()} (tomorrow, UTC), got {text!r}"
        )
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reprocess",
        help="Rebuild silver and gold for a range of event dates from bronze",
        description=(
            "Batch-rebuild silver and gold for the EVENT dates --from..--to (inclusive, UTC) from the "
            "bronze files, e.g. after a validation fix. Reads every bronze ingest folder from the day "
            "before --from on (late events land in later folders), replaces exactly that range of "
            "silver and gold, and changes nothing when rerun. Dates run from 1900-01-01 to tomorrow "
            "(UTC). Ctrl-C cancels it part-way (exit code 130): run it again. See docs/spark.md."
        ),
    )
    parser.add_argument(
        "--from", dest="start", type=_date, required=True, metavar="YYYY-MM-DD", help="first event date (UTC)"
    )
    parser.add_argument(
        "--to", dest="end", type=_date, required=True, metavar="YYYY-MM-DD", help="last event date (UTC)"
    )
    parser.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    parser.set_defaults(handler=handle, check=check_range, uses=SPARK_USES, java=True, writes=True)


def check_range(args: argparse.Namespace) -> None:
    if args.end < args.start:
        raise UserError(f"--to ({args.end}) is before --from ({args.start})")


def handle(args: argparse.Namespace) -> int:
    from pipeline.spark_runner import reprocess, spark_session

    settings = preflight.settings_for(args)
    console = make_console(stderr=args.json)
    sessions: list[Any] = []

    def rebuild() -> dict[str, Any]:
        sessions.append(spark_session())
        return reprocess(settings, args.start, args.end)

    def cancel() -> None:
        console.print("cancelling the rebuild (Ctrl-C again quits at once)…")
        if sessions:  # a batch job has no "between batches": cancel its Spark jobs
            sessions[0].sparkContext.cancelAllJobs()

    with console.status(f"rebuilding silver and gold for {args.start} … {args.end}"):
        try:
            # Finished despite a Ctrl-C (it came too late to cancel anything): report it as done.
            counts, _ = orchestrate.interruptible(
                rebuild, threading.Event(), on_interrupt=cancel, name="reprocess"
            )
        except Interrupted:
            raise
        except Exception as exc:
            raise UserError(f"reprocessing failed: {first_line(exc)}") from exc
    if args.json:
        print(json.dumps(counts))
    else:
        console.print(
            f"[bold]reprocessed {args.start} … {args.end}[/]: {counts['bronze_rows']:,} bronze rows read, "
            f"{counts['silver_rows']:,} silver rows; silver +{counts['silver_inserted']} "
            f"~{counts['silver_updated']} -{counts['silver_deleted']}, gold +{counts['gold_inserted']} "
            f"~{counts['gold_updated']} -{counts['gold_deleted']}"
        )
    return 0
