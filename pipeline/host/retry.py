"""A function's retry policy (``@retry``) and how the host applies it.

The host retries an invocation in place: nothing is checkpointed while a policy still has
retries left, so with ``max_retry_count`` -1 a partition waits, as long as it takes, for its
batch to succeed (for the ingest Function: for the storage to be back).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pipeline.host.errors import HostError
from pipeline.host.host_json import parse_timespan

# A retry policy's max_retry_count that means: retry until it succeeds.
INDEFINITELY = -1


@dataclass(frozen=True)
class RetryPolicy:
    """A function's ``@retry`` setting: how many retries (-1: indefinitely), and the waits between."""

    strategy: str
    max_retry_count: int
    minimum_interval: float = 0.0
    maximum_interval: float = 0.0
    delay_interval: float = 0.0

    @property
    def indefinite(self) -> bool:
        return self.max_retry_count == INDEFINITELY

    def delay(self, retry: int) -> float | None:
        """Seconds to wait before retry number ``retry`` (from 1), or None when none is left.

        Exponential: doubling from the minimum, capped at the maximum (the Azure host randomizes
        each wait below that curve; the local host waits the curve itself).
        """
        if retry < 1 or (not self.indefinite and retry > self.max_retry_count):
            return None
        if self.strategy == "fixed_delay":
            return self.delay_interval
        return min(self.maximum_interval, self.minimum_interval * 2 ** min(retry - 1, 64))

    @classmethod
    def of_function(cls, function: Any, name: str) -> RetryPolicy | None:
        """The policy an indexed function declares (None: it has none); fail on one the host refuses."""
        raw = function.get_settings_dict("retry_policy") if hasattr(function, "get_settings_dict") else None
        if not raw:
            return None
        strategy = str(raw.get("strategy") or "")
        if strategy not in ("exponential_backoff", "fixed_delay"):
            raise HostError(
                f"function {name}'s retry strategy {strategy!r} is not exponential_backoff or fixed_delay"
            )
        try:
            count = int(raw.get("max_retry_count"))
        except (TypeError, ValueError):
            raise HostError(f"function {name}'s retry max_retry_count must be a whole number") from None
        if count < INDEFINITELY:
            raise HostError(
                f"function {name}'s retry max_retry_count must be -1 (indefinitely) or more, got {count}"
            )
        where = f"function {name}'s retry"
        if strategy == "fixed_delay":
            return cls(strategy, count, delay_interval=parse_timespan(raw.get("delay_interval"), where))
        minimum = parse_timespan(raw.get("minimum_interval"), f"{where} minimum_interval")
        maximum = parse_timespan(raw.get("maximum_interval"), f"{where} maximum_interval")
        if maximum < minimum:
            raise HostError(f"{where}: maximum_interval is shorter than minimum_interval")
        return cls(strategy, count, minimum_interval=minimum, maximum_interval=maximum)


@dataclass(frozen=True)
class Attempts:
    """How an invocation ended after its retries.

    Attributes:
        outcome: ``ok``; ``gave_up`` (the policy had no retry left); ``stopped`` (``stop`` was
            set while it waited for a retry).
        result: The function's return value (when ``ok``).
        error: The last attempt's exception (unless ``ok``).
        tries: How many attempts were made.
    """

    outcome: Literal["ok", "gave_up", "stopped"]
    tries: int
    result: Any = None
    error: Exception | None = None


def invoke_with_retries(
    call: Callable[[], Any],
    policy: RetryPolicy | None,
    stop: threading.Event,
    time_scale: float = 1.0,
    on_retry: Callable[[int, float, Exception], None] | None = None,
) -> Attempts:
    """Call until it succeeds or ``policy`` has no retry left, waiting between attempts until ``stop``.

    Args:
        call: One attempt.
        policy: The function's retry policy (None: one attempt).
        stop: Ends a wait for the next attempt.
        time_scale: Multiplies every wait (``LOCAL_HOST_TIME_SCALE``).
        on_retry: Told (attempts so far, seconds it waits, the exception) before each wait.
    """
    failures = 0
    while True:
        try:
            return Attempts("ok", failures + 1, result=call())
        except Exception as exc:
            failures += 1
            delay = policy.delay(failures) if policy else None
            if delay is None:
                return Attempts("gave_up", failures, error=exc)
            wait = delay * time_scale
            if on_retry is not None:
                on_retry(failures, wait, exc)
            if stop.wait(wait):
                return Attempts("stopped", failures, error=exc)


@dataclass
class RetryWait:
    """A function invocation that failed and waits for its next retry (its partition waits too)."""

    function: str
    partition: str | None
    failing_since: float  # time.monotonic() of the first failure
    attempts: int
    next_attempt_at: float  # time.monotonic()
    error: str
    storage: bool  # the error is the storage's (OSError, AzureError): the Function waits for it

    def describe(self, now: float) -> str:
        where = f"{self.function}" + (f" partition {self.partition}" if self.partition is not None else "")
        what = "waiting for storage" if self.storage else "retrying a failing function"
        return (
            f"{what}: {where} failing for {_duration(now - self.failing_since)}, {self.attempts} attempts, "
            f"next in {_duration(max(0.0, self.next_attempt_at - now))} ({self.error})"
        )


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds // 60 % 60:02d}m"


def is_storage_error(exc: BaseException) -> bool:
    """Whether a failure is the storage's: what the ingest Function raises (LakeStorage.create)."""
    from azure.core.exceptions import AzureError

    return isinstance(exc, OSError | AzureError)
