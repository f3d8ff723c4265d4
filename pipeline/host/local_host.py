"""``LocalFunctionsHost``: the app's functions on the embedded hub, as the Azure Functions host runs them.

A façade over the parts (see :mod:`pipeline.host`): it indexes the app, reads host.json, and
runs the Event Hubs pump and the timers with the app settings exported for the run.
"""

from __future__ import annotations

import importlib
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.host import app_settings
from pipeline.host.event_hub_pump import EventHubPump
from pipeline.host.host_json import HOST_JSON, read_host_json
from pipeline.host.indexing import FunctionSpec, index_app
from pipeline.host.retry import RetryWait
from pipeline.host.state import HostState, HostStatus, IngestSummary
from pipeline.host.timers import Timers
from settings import Settings

log = logging.getLogger("pipeline.host")


class LocalFunctionsHost:
    """Runs the app's Event Hubs and timer functions on the embedded hub.

    Args:
        settings: App settings; ``%NAME%`` binding values resolve from them, and the functions
            see them as environment variables while the host runs (:mod:`pipeline.host.app_settings`).
        app: A ``FunctionApp``; default ``function_app.app``.
        host_json: The host.json to read batch settings from.

    Its waits (retry delays, host.json ``maxWaitTime``) are multiplied by the settings'
    ``LOCAL_HOST_TIME_SCALE`` (1 by default; tests make them short with it).
    """

    def __init__(self, settings: Settings, app: Any = None, *, host_json: Path = HOST_JSON) -> None:
        self.settings = settings
        if app is None:
            # As the worker imports the app: with the app settings in the environment.
            with app_settings.exported(settings):
                app = importlib.import_module("function_app").app
        self.functions = index_app(app, settings)
        self.options = read_host_json(host_json)
        self.time_scale = settings.local_host_time_scale
        self.state = HostState()
        self.event_hubs = EventHubPump(
            settings, self.event_hub_functions, self.options, self.state, self.time_scale
        )
        self.timers = Timers(self.timer_functions, self.state, self.time_scale)

    # --- functions by trigger, and what the host did ---------------------------------------------
    @property
    def event_hub_functions(self) -> list[FunctionSpec]:
        return [f for f in self.functions if f.trigger_type == "eventHubTrigger"]

    @property
    def timer_functions(self) -> list[FunctionSpec]:
        return [f for f in self.functions if f.trigger_type == "timerTrigger"]

    @property
    def summary(self) -> IngestSummary:
        """What the Event Hubs functions did (since the last :meth:`run_until_idle`)."""
        return self.state.summary

    @property
    def timer_runs(self) -> Counter[str]:
        return self.state.timer_runs

    @property
    def last_error(self) -> str | None:
        return self.state.last_error

    @property
    def waiting(self) -> RetryWait | None:
        """The invocation waiting for its next retry, if one is."""
        return self.state.waiting

    def backlog(self) -> dict[str, int]:
        """Events not yet checkpointed, per partition, summed over the Event Hubs functions."""
        return self.event_hubs.backlog()

    def status(self) -> HostStatus:
        return self.state.status(self.backlog())

    # --- running -----------------------------------------------------------------------------------
    def run_until_idle(self, stop: threading.Event | None = None) -> IngestSummary:
        """Invoke the Event Hubs functions per partition batch until every partition is caught up.

        Partitions below ``minEventBatchSize`` are delivered once their ``maxWaitTime`` is up, and
        an invocation that fails waits for its retries (indefinitely, if its policy says so).

        Args:
            stop: When set (e.g. on Ctrl-C), return after the current attempt or wait; a batch
                whose function has not succeeded yet is then not checkpointed.

        Returns:
            What this call did (each call starts a new summary).
        """
        stop = stop or threading.Event()
        self.state.summary = summary = IngestSummary()
        started = time.monotonic()
        try:
            with app_settings.exported(self.settings):
                while not stop.is_set():
                    delivered, due = self.event_hubs.pump(stop)
                    summary.seconds = time.monotonic() - started
                    if delivered:
                        continue
                    if due is None:
                        break
                    stop.wait(due)
        finally:
            summary.seconds = time.monotonic() - started
        return summary

    def serve(
        self,
        stop: threading.Event,
        on_status: Callable[[HostStatus], None] | None = None,
        poll_seconds: float = 0.2,
    ) -> IngestSummary:
        """Run continuously until ``stop`` is set: Event Hubs batches as they arrive, timers on schedule.

        A timer whose ``runOnStartup`` is true fires once at start. A timer function that fails
        is logged and fires again at its next occurrence, like on Azure.
        """
        started = time.monotonic()
        last_status = 0.0
        try:
            with app_settings.exported(self.settings):
                self.timers.start(stop)
                while not stop.is_set():
                    try:
                        delivered, held = self.event_hubs.pump(stop)
                    except sqlite3.Error as exc:
                        # The embedded hub busy or mid-creation by another process: like a lost
                        # connection to Event Hubs, wait and try again (nothing was checkpointed).
                        self.state.last_error = f"embedded hub: {exc}"
                        log.warning("embedded hub read failed, retrying: %s", exc)
                        delivered, held = 0, None
                    self.timers.fire_due(stop)
                    self.summary.seconds = time.monotonic() - started
                    if on_status is not None and time.monotonic() - last_status >= 0.5:
                        last_status = time.monotonic()
                        on_status(self.status())
                    if not delivered:
                        wait = poll_seconds if held is None else min(poll_seconds, held)
                        until_timer = self.timers.seconds_until_next()
                        stop.wait(wait if until_timer is None else min(wait, until_timer))
        finally:
            self.summary.seconds = time.monotonic() - started
        if on_status is not None:
            on_status(self.status())
        return self.summary

    def fire_timer(
        self, function_name: str | None = None, past_due: bool = False, stop: threading.Event | None = None
    ) -> Any:
        """Invoke a timer function once with a real ``TimerRequest``; raise if every attempt failed."""
        with app_settings.exported(self.settings):
            return self.timers.fire(function_name, past_due=past_due, stop=stop)

    def next_fire_times(self, after: datetime) -> dict[str, datetime]:
        """When each timer function fires next after ``after`` (UTC)."""
        return self.timers.next_fire_times(after)
