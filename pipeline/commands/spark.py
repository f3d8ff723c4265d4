"""`python -m pipeline spark [--available-now] [--json]`: the Spark job on the local lake."""

from __future__ import annotations

import argparse
import json
import threading
import time
from typing import Any

from pipeline import orchestrate, preflight
from pipeline.cli import Interrupted, UserError, live_line, make_console
from pipeline.failures import first_line

USES = (
    *preflight.STATE,
    *preflight.SPARK,
    "SILVER_TABLE_URI",
    "SILVER_QUARANTINE_TABLE_URI",
    "GOLD_TABLE_URI",
    "CHECKPOINT_LOCATION",
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "spark",
        help="Run the Spark job: bronze → silver → gold on the local lake",
        description=(
            "Run the streaming job (the same code the Databricks bundle deploys) against the local lake: "
            "bronze files (BRONZE_FORMAT) → silver Delta (insert-only MERGE on event_id) → gold Delta "
            "(touched windows recomputed and MERGEd). Without --available-now it runs continuously with "
            "a processing-time trigger every SPARK_TRIGGER_SECONDS until Ctrl-C, which stops it after "
            "its current micro-batch (exit code 0; 130 when it interrupts an --available-now run)."
        ),
    )
    parser.add_argument(
        "--available-now",
        action="store_true",
        help="process every bronze file present, then stop (availableNow trigger)",
    )
    parser.add_argument("--json", action="store_true", help="print the totals as one JSON object")
    parser.set_defaults(handler=handle, uses=_uses, java=True, writes=True)


def _uses(args: argparse.Namespace) -> tuple[str, ...]:
    return USES if args.available_now else (*USES, "SPARK_TRIGGER_SECONDS")


def _line(totals: dict[str, int], started: float) -> str:
    # Duplicates and damaged files appear only when there are some: the usual line stays short.
    extras = [
        f"{totals['duplicates_skipped']:,} duplicates skipped" if totals["duplicates_skipped"] else "",
        f"{totals['incomplete_files']:,} damaged bronze file{'' if totals['incomplete_files'] == 1 else 's'}"
        " quarantined whole"
        if totals["incomplete_files"]
        else "",
    ]
    return " · ".join(
        [
            f"{totals['batches']:,} micro-batch{'' if totals['batches'] == 1 else 'es'}",
            f"{totals['bronze_rows']:,} bronze rows",
            f"{totals['silver_inserted']:,} new silver",
            *[extra for extra in extras if extra],
            f"{totals['quarantined']:,} quarantined",
            f"{totals['gold_inserted'] + totals['gold_updated']:,} gold windows changed",
            f"{time.monotonic() - started:.0f}s",
        ]
    )


def handle(args: argparse.Namespace) -> int:
    from pipeline.spark_runner import lake_config, run_spark

    settings = preflight.settings_for(args)
    lake = lake_config(settings)
    console = make_console(stderr=args.json)
    console.print(
        f"bronze: {lake.bronze_path} ({lake.bronze_format}) · gold: {lake.gold_table}", highlight=False
    )
    counted = ("bronze_rows", "silver_inserted", "duplicates_skipped", "quarantined", "incomplete_files")
    counted += ("gold_inserted", "gold_updated")
    seen = dict.fromkeys(("batches", *counted), 0)
    started = time.monotonic()
    stop = threading.Event()
    with live_line(console, "starting Spark…", transient=args.json) as show:

        def on_batch(counts: dict[str, int]) -> None:
            seen["batches"] += 1
            for name in counted:
                seen[name] += counts[name]
            suffix = "" if args.available_now or stop.is_set() else " · Ctrl-C stops"
            show(_line(seen, started) + suffix)

        def stopping() -> None:
            show(orchestrate.STOPPING_SPARK)
            if not console.is_terminal:
                console.print(orchestrate.STOPPING_SPARK)

        try:
            totals, interrupted = orchestrate.interruptible(
                lambda: run_spark(settings, available_now=args.available_now, stop=stop, on_batch=on_batch),
                stop,
                on_interrupt=stopping,
            )
        except Interrupted:
            raise
        except Exception as exc:
            raise UserError(f"the Spark job failed: {first_line(exc)}") from exc
    if args.json:
        print(json.dumps(totals))
    else:
        console.print(f"[bold]{'stopped' if interrupted else 'done'}[/]: {_line(totals, started)}")
    if interrupted and args.available_now:
        raise Interrupted("the Spark job stopped after its current micro-batch: run again to continue")
    return 0
