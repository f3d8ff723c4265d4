"""Timers: the app's timer functions, fired with a real ``TimerRequest`` on their NCRONTAB schedules.

Schedules have six fields, seconds first, as on Azure. A timer whose ``runOnStartup`` is true
fires once when serving starts; one that fails (after its retry policy) is logged and fires again
at its next occurrence; an occurrence missed by over a minute fires as past due.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from azure.functions.timer import TimerRequest
from croniter import croniter

from pipeline.host.errors import HostError
from pipeline.host.indexing import FunctionSpec
from pipeline.host.retry import invoke_with_retries
from pipeline.host.state import HostState

log = logging.getLogger("pipeline.host")
# An occurrence fired this late is past due (here: the host was busy or stopped for a while).
PAST_DUE_AFTER_SECONDS = 60


class Timers:
    """Fires the app's timer functions, once on demand or on their schedules while serving.

    Args:
        functions: The app's timer functions.
        state: Where timer runs and the last error are kept.
        time_scale: Multiplies the waits between retries.
    """

    def __init__(self, functions: Sequence[FunctionSpec], state: HostState, time_scale: float = 1.0) -> None:
        self.functions = list(functions)
        self.state = state
        self.time_scale = time_scale
        self._due: dict[str, datetime] = {}

    def find(self, function_name: str | None) -> FunctionSpec:
        """The timer function named so (None: the only one)."""
        names = ", ".join(s.name for s in self.functions) or "none"
        if function_name is not None:
            for spec in self.functions:
                if spec.name == function_name:
                    return spec
            raise HostError(f"no timer function named {function_name!r} (timer functions: {names})")
        if len(self.functions) != 1:
            raise HostError(f"name the timer function to fire (timer functions: {names})")
        return self.functions[0]

    def fire(
        self, function_name: str | None = None, past_due: bool = False, stop: threading.Event | None = None
    ) -> Any:
        """Invoke a timer function once with a real ``TimerRequest``; raise if every attempt failed."""
        spec = self.find(function_name)
        request = TimerRequest(past_due=past_due, schedule={"AdjustForDST": True})
        attempts = invoke_with_retries(
            lambda: spec.call(request), spec.retry, stop or threading.Event(), self.time_scale
        )
        if attempts.error is not None:
            raise attempts.error
        self.state.timer_runs[spec.name] += 1
        return attempts.result

    def next_fire_times(self, after: datetime) -> dict[str, datetime]:
        """When each timer function fires next after ``after`` (UTC)."""
        return {spec.name: _next(spec, after) for spec in self.functions}

    def start(self, stop: threading.Event) -> None:
        """Begin serving: schedule every timer from now, and fire those that run on startup."""
        self._due = self.next_fire_times(datetime.now(UTC))
        for spec in self.functions:
            if spec.binding.get("runOnStartup"):
                self._fire_logged(spec.name, past_due=False, stop=stop)

    def fire_due(self, stop: threading.Event) -> None:
        """Fire every timer whose occurrence has come, and schedule its next one."""
        now = datetime.now(UTC)
        for name, when in list(self._due.items()):
            if when <= now:
                late = (now - when).total_seconds()
                self._fire_logged(name, past_due=late > PAST_DUE_AFTER_SECONDS, stop=stop)
                self._due[name] = _next(self.find(name), now)

    def seconds_until_next(self) -> float | None:
        """Seconds until the next occurrence of any timer (None: no timers)."""
        if not self._due:
            return None
        return max(0.0, (min(self._due.values()) - datetime.now(UTC)).total_seconds())

    def _fire_logged(self, name: str, past_due: bool, stop: threading.Event) -> None:
        try:
            self.fire(name, past_due=past_due, stop=stop)
        except Exception as exc:
            self.state.last_error = f"{name}: {type(exc).__name__}: {exc}"
            log.error("timer function %s failed: %s", name, exc)


def _next(spec: FunctionSpec, after: datetime) -> datetime:
    next_time: datetime = croniter(str(spec.binding["schedule"]), after, second_at_beginning=True).get_next(
        datetime
    )
    return next_time
