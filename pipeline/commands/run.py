"""`python -m pipeline run [--once]`: the whole local pipeline, once in order or continuously."""

from __future__ import annotations

import argparse
import threading
from typing import Any

from pipeline import layers, orchestrate, preflight
from pipeline.cli import UserError, make_console
from pipeline.commands.status import status_table
from pipeline.failures import describe, first_line

USES = (
    *preflight.STATE,
    *preflight.INGEST,
    *preflight.SPARK,
    *preflight.SYNC,
    "SILVER_TABLE_URI",
    "SILVER_QUARANTINE_TABLE_URI",
    "CHECKPOINT_LOCATION",
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="Run ingest, Spark and sync together: continuously, or once with --once",
        description=(
            "Without --once: the local Functions host ingests and fires the sync timer on its schedule "
            "(SYNC_SCHEDULE) while the Spark job runs on a processing-time trigger "
            "(SPARK_TRIGGER_SECONDS), until Ctrl-C stops them all after their current batch; the lag "
            "of each stage is appended to $PIPELINE_HOME/lag.jsonl for the report. With --once: "
            "ingest until idle, the Spark job with availableNow, then one sync, in that order (Ctrl-C "
            "stops it cleanly too, exit code 130)."
        ),
    )
    parser.add_argument(
        "--once", action="store_true", help="ingest until idle, Spark availableNow, one sync; then exit"
    )
    parser.set_defaults(handler=handle, uses=_uses, java=True, writes=True)


def _uses(args: argparse.Namespace) -> tuple[str, ...]:
    return USES if args.once else (*USES, "SPARK_TRIGGER_SECONDS", "SYNC_SCHEDULE")


def handle(args: argparse.Namespace) -> int:
    settings = preflight.settings_for(args)
    console = make_console(stderr=True)
    if args.once:
        with orchestrate.new_progress(console) as progress:
            result = orchestrate.run_once(settings, progress=progress, on_stopping=progress.console.print)
        timings = ", ".join(f"{stage} {secs:.1f}s" for stage, secs in result.seconds.items())
        console.print(f"run --once done ({timings})")
        counts = layers.count_layers(settings)
        make_console().print(status_table(counts, title=f"Pipeline status ({settings.home})"))
        return 0

    stop = threading.Event()
    console.print(
        f"running continuously on {settings.home} (Spark every {settings.spark_trigger_seconds}s, "
        f"sync on '{settings.sync_schedule}'); Ctrl-C stops",
        highlight=False,
    )
    on_terminal = console.is_terminal
    with console.status("starting…") as live:
        try:
            failures = orchestrate.run_continuous(
                settings,
                stop,
                # The status line is for people; off a terminal only lag.jsonl gets the samples.
                on_line=live.update if on_terminal else None,
                interval=2.0 if on_terminal else 5.0,
            )
        except KeyboardInterrupt:
            # run_continuous's finally has already stopped and joined every stage.
            console.print("stopped: every stage finished its current batch")
            return 0
    if failures:
        stage, exc = next(iter(failures.items()))
        raise UserError(f"the {stage} stage stopped: {describe(exc, settings) or first_line(exc)}") from exc
    return 0
