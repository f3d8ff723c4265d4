"""`python -m pipeline spark [--available-now] [--json]`: the Spark job on the local lake."""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from pipeline.cli import UserError
from settings import load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "spark",
        help="Run the Spark job: bronze → silver → gold on the local lake",
        description=(
            "Run the streaming job (the same code the Databricks bundle deploys) against the local lake: "
            "bronze files (BRONZE_FORMAT) → silver Delta (insert-only MERGE on event_id) → gold Delta "
            "(touched windows recomputed and MERGEd). Without --available-now it runs continuously with "
            "a processing-time trigger every SPARK_TRIGGER_SECONDS until Ctrl-C."
        ),
    )
    parser.add_argument(
        "--available-now",
        action="store_true",
        help="process every bronze file present, then stop (availableNow trigger)",
    )
    parser.add_argument("--json", action="store_true", help="print the totals as one JSON object")
    parser.set_defaults(handler=handle)


def _line(totals: dict[str, int], started: float) -> str:
    return (
        f"{totals['batches']:,} micro-batches · {totals['bronze_rows']:,} bronze rows · "
        f"{totals['silver_inserted']:,} new silver · {totals['quarantined']:,} quarantined · "
        f"{totals['gold_inserted'] + totals['gold_updated']:,} gold windows changed · "
        f"{time.monotonic() - started:.0f}s"
    )


def handle(args: argparse.Namespace) -> int:
    from pipeline.spark_runner import lake_config, run_spark

    settings = load_settings()
    lake = lake_config(settings)
    console = Console(stderr=args.json)
    console.print(f"bronze: {lake.bronze_path} ({lake.bronze_format}) · gold: {lake.gold_table}")
    seen = {k: 0 for k in ("batches", "bronze_rows", "silver_inserted", "quarantined")}
    seen.update(gold_inserted=0, gold_updated=0)
    started = time.monotonic()
    stop = threading.Event()
    with Live(Text("starting Spark…"), console=console, refresh_per_second=4, transient=args.json) as live:

        def on_batch(counts: dict[str, int]) -> None:
            seen["batches"] += 1
            for name in ("bronze_rows", "silver_inserted", "quarantined", "gold_inserted", "gold_updated"):
                seen[name] += counts[name]
            suffix = "" if args.available_now else " · Ctrl-C stops"
            live.update(Text(_line(seen, started) + suffix))

        previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
        try:
            totals = run_spark(settings, available_now=args.available_now, stop=stop, on_batch=on_batch)
        except Exception as exc:
            raise UserError(f"the Spark job failed: {str(exc).splitlines()[0]}") from exc
        finally:
            signal.signal(signal.SIGINT, previous)
    if args.json:
        print(json.dumps(totals))
    else:
        console.print(f"[bold]done[/]: {_line(totals, started)}")
    return 0
