"""`python -m pipeline run [--once]`: the whole local pipeline, once in order or continuously."""

from __future__ import annotations

import argparse
import shutil
import threading
from typing import Any

from rich.console import Console

from pipeline import layers, orchestrate
from pipeline.cli import UserError
from pipeline.commands.status import status_table
from settings import load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="Run ingest, Spark and sync together: continuously, or once with --once",
        description=(
            "Without --once: the local Functions host ingests and fires the sync timer on its schedule "
            "(SYNC_SCHEDULE) while the Spark job runs on a processing-time trigger "
            "(SPARK_TRIGGER_SECONDS), until Ctrl-C stops them all. With --once: ingest until idle, "
            "the Spark job with availableNow, then one sync, in that order."
        ),
    )
    parser.add_argument(
        "--once", action="store_true", help="ingest until idle, Spark availableNow, one sync; then exit"
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    settings = load_settings()
    if shutil.which("java") is None:  # Spark would fail later with a long JVM-launch traceback
        raise UserError("Java 17 is needed for local Spark: install a JDK 17 and put `java` on PATH")
    console = Console(stderr=True)
    if args.once:
        with orchestrate.new_progress() as progress:
            result = orchestrate.run_once(settings, progress=progress)
        timings = ", ".join(f"{stage} {secs:.1f}s" for stage, secs in result.seconds.items())
        console.print(f"run --once done ({timings})")
        counts = layers.count_layers(settings)
        Console().print(status_table(counts, title=f"Pipeline status ({settings.home})"))
        return 0

    stop = threading.Event()
    console.print(
        f"running continuously on {settings.home} (Spark every {settings.spark_trigger_seconds}s, "
        f"sync on '{settings.sync_schedule}'); Ctrl-C stops"
    )
    with console.status("starting…") as live:
        try:
            # The status line is for people: without a terminal, spare the pipeline the sampling.
            on_line = live.update if console.is_terminal else None
            failures = orchestrate.run_continuous(settings, stop, on_line=on_line)
        except KeyboardInterrupt:
            # run_continuous's finally has already stopped and joined every stage.
            console.print("stopped: every stage finished its current batch")
            return 0
    if failures:
        stage, exc = next(iter(failures.items()))
        raise UserError(f"the {stage} stage stopped: {exc}")
    return 0
