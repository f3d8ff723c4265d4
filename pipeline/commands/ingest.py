"""`python -m pipeline ingest [--until-idle] [--json]`: run the ingest Function on the embedded hub."""

from __future__ import annotations

import argparse
import io
import json
import signal
import threading
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text

from pipeline import preflight
from pipeline.cli import UserError, make_console

USES = (*preflight.STATE, *preflight.INGEST)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "ingest",
        help="Run the ingest Function (and timer functions) in the local Functions host",
        description=(
            "Load function_app.py like the Azure Functions host, then deliver the embedded hub's events "
            "($PIPELINE_HOME/hub.db) to the Event Hubs-triggered function in batches per partition "
            "(host.json maxEventBatchSize), with its retry policy and a checkpoint after each batch. "
            "Valid events land in bronze, invalid ones in quarantine (LOCAL_LAKE_PATH, or "
            "LAKE_CONNECTION_STRING / LAKE_ACCOUNT_URL for Azure storage). Without --until-idle it keeps "
            "running, also firing timer functions on their schedules, until Ctrl-C."
        ),
    )
    parser.add_argument(
        "--until-idle",
        action="store_true",
        help="return once every partition is caught up (no timers fire)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.set_defaults(handler=handle, uses=USES, writes=True)


def handle(args: argparse.Namespace) -> int:
    from pipeline.host import HostStatus, IngestSummary, LocalFunctionsHost

    # The settings the Function reads per batch are checked before it starts (USES): a bad value
    # would otherwise fail every batch through its retries.
    settings = preflight.settings_for(args)
    try:
        host = LocalFunctionsHost(settings)
    except ImportError as exc:
        raise UserError(f"cannot load function_app.py: {exc}") from exc
    console = make_console(stderr=args.json)
    console.print(f"lake: {_lake_description(settings)} · hub: {settings.local_hub_path}", highlight=False)
    summary: IngestSummary
    # A live line only on a terminal; piped output gets just the summary.
    live_console = console if console.is_terminal else Console(file=io.StringIO())
    with Live(Text("starting…"), console=live_console, refresh_per_second=4, transient=args.json) as live:
        if args.until_idle:
            stop, polling = threading.Event(), threading.Event()
            poller = threading.Thread(
                target=_poll_status, args=(host, live, polling), name="ingest-status", daemon=True
            )
            poller.start()
            # Ctrl-C stops after the current attempt (or wait, e.g. for storage): a batch not
            # written yet is not checkpointed.
            previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
            try:
                summary = host.run_until_idle(stop)
            finally:
                signal.signal(signal.SIGINT, previous)
                polling.set()
                poller.join()
            live.update(Text(host.status().line()))
        else:
            stop = threading.Event()
            previous = signal.signal(signal.SIGINT, lambda *_: stop.set())
            try:

                def show(status: HostStatus) -> None:
                    live.update(Text(status.line() + " · Ctrl-C stops"))

                summary = host.serve(stop, on_status=show)
            finally:
                signal.signal(signal.SIGINT, previous)
    if args.until_idle and stop.is_set():
        console.print(
            f"[yellow]stopped[/] after {summary.events:,} events; the rest stay in the hub, not checkpointed"
            + (f" ({host.last_error})" if host.waiting is not None else "")
        )
        return 130
    if args.json:
        print(json.dumps(summary.as_dict()))
        return 0
    console.print(
        f"[bold]ingested {summary.events:,} events[/] in {summary.invocations:,} batches "
        f"({summary.seconds:.1f}s, {summary.events_per_second:,.0f} ev/s): "
        f"valid {summary.valid:,} · quarantined {summary.quarantined:,}"
    )
    for reason, count in summary.quarantined_by_reason.most_common():
        console.print(f"  quarantined {count:,}: {reason}")
    if summary.retries or summary.failed_invocations:
        console.print(
            f"[yellow]retries {summary.retries} · batches that failed after their retries "
            f"{summary.failed_invocations}[/] (last error: {host.last_error})"
        )
    return 1 if summary.failed_invocations else 0


def _poll_status(host: Any, live: Live, stop: threading.Event) -> None:
    while not stop.wait(0.5):
        try:
            live.update(Text(host.status().line()))
        except Exception:  # the hub mid-write can fail a read; the next poll will do
            continue


def _lake_description(settings: Any) -> str:
    if settings.lake_connection_string:
        return "Azure storage (LAKE_CONNECTION_STRING)"
    if settings.lake_account_url:
        return settings.lake_account_url
    return str(settings.local_lake_path)
