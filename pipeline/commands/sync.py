"""`python -m pipeline sync [--json]`: fire the sync timer Function once (gold → SQL)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pipeline import preflight
from pipeline.cli import UserError, make_console


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sync",
        help="Sync gold (Delta) into the SQL table once, through the timer Function",
        description=(
            "Fire the sync timer Function once, as the Functions host would: read the gold rows changed "
            "since the SQL watermark and upsert them into the SQL target (SQL_CONNECTION; empty means "
            "SQLite at $PIPELINE_HOME/warehouse.db). Creates the SQL tables and views when missing. "
            "A run with nothing new is a no-op."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the run's counts as one JSON object")
    parser.set_defaults(handler=handle, uses=(*preflight.STATE, *preflight.SYNC), writes=True)


def handle(args: argparse.Namespace) -> int:
    from pipeline.sync_runner import sync_once

    settings = preflight.settings_for(args)
    try:
        result = sync_once(settings)
    except ImportError as exc:
        raise UserError(f"cannot load the Function app: {exc}") from exc
    if args.json:
        print(json.dumps(result, default=str))
        return 0
    console = make_console()
    console.print(f"[bold]sync[/]: {result['message']}", highlight=False)
    if result.get("status") == "synced":
        console.print(
            f"upserted {result['rows_upserted']:,} · deleted {result['rows_deleted']:,} · "
            f"skipped {result['rows_skipped']:,} · read as {result['mode']} · attempts {result['attempts']}"
        )
        for reason, count in sorted(result.get("skip_reasons", {}).items()):
            console.print(f"  skipped {count:,} rows: {reason}")
    return 0
