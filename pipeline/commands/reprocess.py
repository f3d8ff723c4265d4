"""`python -m pipeline reprocess --from YYYY-MM-DD --to YYYY-MM-DD`: rebuild silver and gold."""

from __future__ import annotations

import argparse
import json
from datetime import date
from typing import Any

from rich.console import Console

from pipeline.cli import UserError
from settings import load_settings


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "reprocess",
        help="Rebuild silver and gold for a range of event dates from bronze",
        description=(
            "Batch-rebuild silver and gold for the EVENT dates --from..--to (inclusive, UTC) from the "
            "bronze files, e.g. after a validation fix. Reads every bronze ingest folder from the day "
            "before --from on (late events land in later folders), replaces exactly that range of "
            "silver and gold, and changes nothing when rerun. See docs/spark.md."
        ),
    )
    parser.add_argument("--from", dest="start", type=_date, required=True, metavar="YYYY-MM-DD")
    parser.add_argument("--to", dest="end", type=_date, required=True, metavar="YYYY-MM-DD")
    parser.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from pipeline.spark_runner import reprocess

    if args.end < args.start:
        raise UserError(f"--to ({args.end}) is before --from ({args.start})")
    settings = load_settings()
    console = Console(stderr=args.json)
    with console.status(f"rebuilding silver and gold for {args.start} … {args.end}"):
        try:
            counts = reprocess(settings, args.start, args.end)
        except Exception as exc:
            raise UserError(f"reprocessing failed: {str(exc).splitlines()[0]}") from exc
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
