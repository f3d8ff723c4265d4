"""A local Functions host: runs ``function_app.app`` the way the Azure Functions host does.

The ``func`` host cannot run on this machine, so this module does its job for the two trigger
types the app uses, on the embedded event hub:

* Indexing: functions come from ``FunctionApp.get_functions()`` and their binding JSON, with
  ``%SETTING%`` names resolved from the settings. An app with no function, an unknown trigger or
  a binding that does not resolve fails here with one clear line (the real host's silent
  "0 functions loaded" is the failure this prevents), and so does a function the Python worker
  would refuse to load (:mod:`pipeline.worker_checks`: e.g. a ``list[...]`` annotation).
* Event Hubs (``eventHubTrigger``): per partition, for the binding's consumer group, batches of
  up to host.json's ``maxEventBatchSize`` (a partition below ``minEventBatchSize`` waits up to
  ``maxWaitTime`` for more, as the extension does), delivered as real
  ``azure.functions.EventHubEvent`` objects with the trigger metadata the host supplies for
  many-cardinality batches (``SystemPropertiesArray``, ``PropertiesArray``, ``PartitionContext``,
  ...). The function's retry policy applies (``-1``: until it succeeds) and holds the partition
  while it retries; the checkpoint is written after each invocation, also when a bounded policy
  gave up (the real host does the same), never while it is still retrying. Unlike Azure, where
  each partition has its own processor, partitions take turns here: one that waits holds the
  others.
* Timers (``timerTrigger``): NCRONTAB schedules (six fields, seconds first), fired by
  :meth:`LocalFunctionsHost.serve`, or once by :meth:`LocalFunctionsHost.fire_timer`.

App settings reach the functions as environment variables, as on Azure: each invocation runs
with the host's settings exported to ``os.environ``.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import logging
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import azure.functions as func
import orjson
from azure.functions import meta
from azure.functions.timer import TimerRequest
from croniter import croniter

from localhub import LocalConsumer, LocalEventHub, ReceivedEvent
from pipeline.cli import UserError
from pipeline.worker_checks import FunctionLoadError, check_function_loads
from settings import PROJECT_ROOT, Settings

log = logging.getLogger("pipeline.host")

HOST_JSON = PROJECT_ROOT / "host.json"
# The Event Hubs extension's defaults (v5) when host.json leaves a value out, and its longest wait.
DEFAULT_MAX_EVENT_BATCH_SIZE = 100
DEFAULT_MIN_EVENT_BATCH_SIZE = 1
DEFAULT_MAX_WAIT_TIME = 60.0
LONGEST_MAX_WAIT_TIME = 600.0
# A retry policy's max_retry_count that means: retry until it succeeds.
INDEFINITELY = -1
SUPPORTED_TRIGGERS = ("eventHubTrigger", "timerTrigger")
_ENV_LOCK = threading.RLock()


class HostError(UserError):
    """The app or host.json is not something the host can run; the message says what to fix."""


# --- indexing ----------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class FunctionSpec:
    """One indexed function: its trigger binding with settings resolved, and the code to call."""

    name: str
    trigger_type: str
    arg_name: str
    binding: Mapping[str, Any]
    user_function: Callable[..., Any]
    retry: RetryPolicy | None


_INDEXED: dict[int, tuple[Any, list[Any]]] = {}


def app_functions(app: Any) -> list[Any]:
    """``app.get_functions()``, indexed once per app object.

    azure-functions lets an app be indexed once (a second ``get_functions`` call fails on
    "duplicate" names); local tooling indexes the same app several times, so the result is kept
    and the library's duplicate-name bookkeeping is reset for the next caller.
    """
    cached = _INDEXED.get(id(app))
    if cached is not None and cached[0] is app:
        return cached[1]
    # Reset before (someone else may have indexed this app) and after (for the next caller).
    if hasattr(app, "functions_bindings"):
        app.functions_bindings = None
    with _quiet_auth_level_warning():
        functions = list(app.get_functions())
    if hasattr(app, "functions_bindings"):
        app.functions_bindings = None
    _INDEXED[id(app)] = (app, functions)
    return functions


class _DropAuthLevelWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Auth level is not applied")


@contextmanager
def _quiet_auth_level_warning() -> Iterator[None]:
    # azure-functions warns on the root logger, for any app without HTTP functions, that auth
    # levels do not apply: noise here. A handler stops logging.warning() from installing
    # basicConfig's console handler as a side effect.
    root = logging.getLogger()
    guard, drop = logging.NullHandler(), _DropAuthLevelWarning()
    root.addHandler(guard)
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)
        root.removeHandler(guard)


def parse_timespan(value: Any, what: str) -> float:
    """``HH:MM:SS`` (or ``D.HH:MM:SS``) as seconds."""
    text = str(value or "").strip()
    days = 0
    if "." in text.split(":")[0]:
        day_text, text = text.split(".", 1)
        days = int(day_text)
    try:
        hours, minutes, seconds = text.split(":")
        return days * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        raise HostError(f"{what} must be a timespan like 00:00:05, got {value!r}") from None


def resolve_setting_names(value: Any, settings: Settings, where: str) -> Any:
    """Replace a ``%NAME%`` binding value by the app setting it names (the host's rule)."""
    if not isinstance(value, str) or not (value.startswith("%") and value.endswith("%") and len(value) > 2):
        return value
    name = value[1:-1]
    resolved = settings.get(name)
    if not resolved:
        # The typed settings carry the local defaults (EVENTHUB_NAME -> settings.eventhub_name).
        default = getattr(type(settings), name.lower(), None)
        if isinstance(default, property | cached_property):
            candidate = getattr(settings, name.lower())
            resolved = candidate if isinstance(candidate, str) else ""
    if not resolved:
        raise HostError(
            f"{where} names app setting {name}, which is not set (environment or local.settings.json)"
        )
    return resolved


def index_app(app: Any, settings: Settings) -> list[FunctionSpec]:
    """Index an app like the host: every function with its trigger resolved and checked."""
    functions = app_functions(app)
    if not functions:
        raise HostError(
            "function_app.app registers no function: the Azure host would start with 0 functions "
            "loaded; call app.register_functions(<blueprint>) for each blueprint"
        )
    for function in functions:
        try:
            check_function_loads(function)
        except FunctionLoadError as exc:
            raise HostError(
                f"the Azure Functions Python worker would load no function from this app: {exc}"
            ) from None
    specs = []
    for function in functions:
        name = function.get_function_name()
        bindings = json.loads(function.get_function_json()).get("bindings", [])
        triggers = [b for b in bindings if str(b.get("type", "")).endswith("Trigger")]
        if len(triggers) != 1:
            raise HostError(f"function {name} has {len(triggers)} triggers; a function needs exactly one")
        trigger = triggers[0]
        kind = trigger["type"]
        if kind not in SUPPORTED_TRIGGERS:
            raise HostError(
                f"function {name} has a {kind} trigger; the local host runs "
                f"{' and '.join(SUPPORTED_TRIGGERS)}"
            )
        where = f"function {name}'s {kind} binding"
        resolved = {k: resolve_setting_names(v, settings, f"{where} ({k})") for k, v in trigger.items()}
        if kind == "eventHubTrigger":
            _check_event_hub_binding(resolved, where)
        else:
            _check_timer_binding(resolved, where)
        specs.append(
            FunctionSpec(
                name=name,
                trigger_type=kind,
                arg_name=str(trigger.get("name") or ""),
                binding=resolved,
                user_function=function.get_user_function(),
                retry=_retry_policy(function, name),
            )
        )
    return specs


def _check_event_hub_binding(binding: Mapping[str, Any], where: str) -> None:
    if not binding.get("eventHubName"):
        raise HostError(f"{where} has no eventHubName")
    connection = str(binding.get("connection") or "")
    if not connection:
        raise HostError(f"{where} has no connection (the name of an app setting)")
    if "=" in connection or ";" in connection:
        raise HostError(f"{where}: connection must name an app setting, not hold a connection string")
    cardinality = str(binding.get("cardinality") or "ONE").upper()
    if cardinality not in ("ONE", "MANY"):
        raise HostError(f"{where} has cardinality {binding.get('cardinality')!r}; expected ONE or MANY")
    data_type = str(binding.get("dataType") or "BINARY").upper()
    if data_type not in ("BINARY", "STRING", "UNDEFINED"):
        raise HostError(f"{where} has dataType {binding.get('dataType')!r}; expected BINARY or STRING")


def _check_timer_binding(binding: Mapping[str, Any], where: str) -> None:
    schedule = str(binding.get("schedule") or "")
    if len(schedule.split()) != 6 or not croniter.is_valid(schedule, second_at_beginning=True):
        raise HostError(
            f"{where} has schedule {schedule!r}; expected NCRONTAB with six fields, seconds first "
            "(e.g. '0 */5 * * * *')"
        )


def _retry_policy(function: Any, name: str) -> RetryPolicy | None:
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
        return RetryPolicy(strategy, count, delay_interval=parse_timespan(raw.get("delay_interval"), where))
    minimum = parse_timespan(raw.get("minimum_interval"), f"{where} minimum_interval")
    maximum = parse_timespan(raw.get("maximum_interval"), f"{where} maximum_interval")
    if maximum < minimum:
        raise HostError(f"{where}: maximum_interval is shorter than minimum_interval")
    return RetryPolicy(strategy, count, minimum_interval=minimum, maximum_interval=maximum)


# --- host.json -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventHubsOptions:
    """The host.json ``extensions.eventHubs`` values the local host honours."""

    max_event_batch_size: int = DEFAULT_MAX_EVENT_BATCH_SIZE
    min_event_batch_size: int = DEFAULT_MIN_EVENT_BATCH_SIZE
    max_wait_time: float = DEFAULT_MAX_WAIT_TIME  # seconds; only used when min_event_batch_size > 1
    initial_offset: str = "fromStart"


def read_host_json(path: Path = HOST_JSON) -> EventHubsOptions:
    """Read host.json's Event Hubs batch settings; fail with one line when they are unusable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HostError(f"{path} is missing; the Functions host needs it") from None
    except ValueError as exc:
        raise HostError(f"{path} is not valid JSON: {exc}") from None
    if document.get("version") != "2.0":
        raise HostError(f'{path.name}: "version" must be "2.0"')
    hubs = document.get("extensions", {}).get("eventHubs", {})
    where = f"{path.name}: extensions.eventHubs"
    size = hubs.get("maxEventBatchSize", DEFAULT_MAX_EVENT_BATCH_SIZE)
    minimum = hubs.get("minEventBatchSize", DEFAULT_MIN_EVENT_BATCH_SIZE)
    for name, value in (("maxEventBatchSize", size), ("minEventBatchSize", minimum)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise HostError(f"{where}.{name} must be a positive whole number")
    if minimum > size:
        raise HostError(f"{where}.minEventBatchSize ({minimum}) must not exceed maxEventBatchSize ({size})")
    wait = DEFAULT_MAX_WAIT_TIME
    if "maxWaitTime" in hubs:
        wait = parse_timespan(hubs["maxWaitTime"], f"{where}.maxWaitTime")
    if not 0 <= wait <= LONGEST_MAX_WAIT_TIME:
        raise HostError(f"{where}.maxWaitTime must be between 00:00:00 and 00:10:00")
    initial = str(hubs.get("initialOffsetOptions", {}).get("type", "fromStart"))
    if initial.lower() not in ("fromstart", "fromend"):
        raise HostError(
            f"{path.name}: initialOffsetOptions.type {initial!r} is not supported locally "
            "(fromStart, fromEnd)"
        )
    return EventHubsOptions(size, minimum, wait, initial)


# --- the trigger payload -------------------------------------------------------------------------


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def trigger_metadata(received: Sequence[ReceivedEvent], hub_name: str, consumer_group: str) -> dict[str, Any]:
    """The trigger metadata the Functions host sends with a many-cardinality Event Hubs batch.

    Name to value; the host sends each value as JSON (``TypedData.json``). Offsets are numbers in
    ``SystemPropertiesArray`` (the .NET host serializes them so) and strings in ``OffsetArray``.
    """
    system_array = []
    for event in received:
        enqueued = _rfc3339(event.enqueued_time)
        system: dict[str, Any] = {
            "x-opt-sequence-number": event.sequence_number,
            "x-opt-offset": int(event.offset),
            "x-opt-enqueued-time": enqueued,
        }
        if event.partition_key is not None:
            system["x-opt-partition-key"] = event.partition_key
        system.update(
            SequenceNumber=event.sequence_number,
            Offset=int(event.offset),
            PartitionKey=event.partition_key,
            EnqueuedTimeUtc=enqueued,
        )
        system_array.append(system)
    return {
        "SystemPropertiesArray": system_array,
        "PropertiesArray": [event.properties or {} for event in received],
        "PartitionContext": {
            "FullyQualifiedNamespace": "localhub",
            "EventHubName": hub_name,
            "ConsumerGroup": consumer_group,
            "PartitionId": received[0].partition_id if received else "",
        },
        "SequenceNumberArray": [s["SequenceNumber"] for s in system_array],
        "OffsetArray": [str(s["Offset"]) for s in system_array],
        "EnqueuedTimeUtcArray": [s["EnqueuedTimeUtc"] for s in system_array],
        "PartitionKeyArray": [s["PartitionKey"] for s in system_array],
    }


def build_event_batch(
    received: Sequence[ReceivedEvent], hub_name: str, consumer_group: str
) -> list[func.EventHubEvent]:
    """The ``list[EventHubEvent]`` the Python worker hands a many-cardinality function.

    The worker builds each event from the host's ``SystemPropertiesArray`` entry (so the offset
    arrives as an int) and shares one trigger-metadata mapping across the batch.
    tests/integration/test_worker_conformance.py checks the handler writes the same files from
    these events as from the ones the real worker decodes out of the same host invocation.
    """
    metadata = {
        name: meta.Datum(orjson.dumps(value).decode(), "json")
        for name, value in trigger_metadata(received, hub_name, consumer_group).items()
    }
    return [
        func.EventHubEvent(
            body=event.body,
            trigger_metadata=metadata,
            enqueued_time=event.enqueued_time.astimezone(UTC),
            partition_key=event.partition_key,
            sequence_number=event.sequence_number,
            offset=int(event.offset),  # type: ignore[arg-type]  # the worker passes an int here
            iothub_metadata={},
        )
        for event in received
    ]


# --- results -------------------------------------------------------------------------------------


@dataclass
class IngestSummary:
    """What :meth:`LocalFunctionsHost.run_until_idle` did."""

    invocations: int = 0
    events: int = 0
    retries: int = 0
    failed_invocations: int = 0
    events_by_partition: Counter[str] = field(default_factory=Counter)
    valid: int = 0
    quarantined: int = 0
    quarantined_by_reason: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "invocations": self.invocations,
            "events": self.events,
            "retries": self.retries,
            "failed_invocations": self.failed_invocations,
            "events_by_partition": dict(sorted(self.events_by_partition.items())),
            "valid": self.valid,
            "quarantined": self.quarantined,
            "quarantined_by_reason": dict(self.quarantined_by_reason.most_common()),
            "seconds": round(self.seconds, 3),
        }


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


@dataclass(frozen=True)
class HostStatus:
    """One sample for a live status line."""

    summary: IngestSummary
    backlog: Mapping[str, int]
    timer_runs: Mapping[str, int]
    last_error: str | None = None
    waiting: str | None = None  # RetryWait.describe() while an invocation waits for a retry

    def line(self) -> str:
        s = self.summary
        text = (
            f"{s.events:,} events in {s.invocations:,} batches ({s.events_per_second:,.0f} ev/s) · "
            f"valid {s.valid:,} · quarantined {s.quarantined:,} · backlog {sum(self.backlog.values()):,}"
        )
        if self.timer_runs:
            text += " · timers " + ", ".join(f"{n} ×{c}" for n, c in sorted(self.timer_runs.items()))
        if s.retries or s.failed_invocations:
            text += f" · retries {s.retries} · failed batches {s.failed_invocations}"
        if self.waiting:
            text += f" · {self.waiting}"
        return text


class _BatchLogCollector(logging.Handler):
    """Adds the ingest Function's structured per-batch logs to the summary (when it logs them).

    The functions' logger is lowered to INFO to see them; records below the level it had are
    kept from the console, the rest go on to the usual handlers.
    """

    def __init__(self, summary: IngestSummary, logger: logging.Logger, passthrough_level: int) -> None:
        super().__init__(logging.DEBUG)
        self.summary = summary
        self.logger = logger
        self.passthrough_level = passthrough_level

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "custom_dimensions", None)
        if isinstance(fields, Mapping) and fields.get("event") == "ingest_batch":
            self.summary.valid += int(fields.get("valid", 0))
            self.summary.quarantined += int(fields.get("quarantined", 0))
            self.summary.quarantined_by_reason.update(fields.get("quarantined_by_reason") or {})
        if record.levelno >= self.passthrough_level and self.logger.parent is not None:
            self.logger.parent.handle(record)


@contextmanager
def _collecting_batch_logs(summary: IngestSummary) -> Iterator[None]:
    logger = logging.getLogger("functions")
    saved = (logger.level, logger.propagate)
    collector = _BatchLogCollector(summary, logger, logger.getEffectiveLevel())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(collector)
    try:
        yield
    finally:
        logger.removeHandler(collector)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


# --- the host ------------------------------------------------------------------------------------


class LocalFunctionsHost:
    """Runs the app's Event Hubs and timer functions on the embedded hub.

    Args:
        settings: App settings; ``%NAME%`` binding values resolve from them, and the functions
            see them as environment variables while they run.
        app: A ``FunctionApp``; default ``function_app.app``.
        host_json: The host.json to read batch settings from.

    Its waits (retry delays, host.json ``maxWaitTime``) are multiplied by the settings'
    ``LOCAL_HOST_TIME_SCALE`` (1 by default; tests make them short with it).
    """

    def __init__(self, settings: Settings, app: Any = None, *, host_json: Path = HOST_JSON) -> None:
        self.settings = settings
        if app is None:
            app = importlib.import_module("function_app").app
        self.functions = index_app(app, settings)
        self.options = read_host_json(host_json)
        self.time_scale = settings.local_host_time_scale
        self.summary = IngestSummary()
        self.timer_runs: Counter[str] = Counter()
        self.last_error: str | None = None
        self.waiting: RetryWait | None = None
        self._consumers: dict[str, tuple[LocalConsumer, FunctionSpec, dict[str, int]]] = {}
        self._consumers_lock = threading.Lock()
        # (function, partition) -> when a partition with fewer than minEventBatchSize events was
        # first held back (time.monotonic()); it is delivered anyway maxWaitTime later.
        self._held_since: dict[tuple[str, str], float] = {}

    # --- functions by trigger --------------------------------------------------------------------
    @property
    def event_hub_functions(self) -> list[FunctionSpec]:
        return [f for f in self.functions if f.trigger_type == "eventHubTrigger"]

    @property
    def timer_functions(self) -> list[FunctionSpec]:
        return [f for f in self.functions if f.trigger_type == "timerTrigger"]

    def _consumer(self, spec: FunctionSpec) -> tuple[LocalConsumer, dict[str, int]]:
        with self._consumers_lock:
            return self._consumer_locked(spec)

    def _consumer_locked(self, spec: FunctionSpec) -> tuple[LocalConsumer, dict[str, int]]:
        cached = self._consumers.get(spec.name)
        if cached is None:
            hub_name = str(spec.binding["eventHubName"])
            try:
                hub = LocalEventHub(
                    self.settings.local_hub_path, name=hub_name, partitions=self.settings.local_hub_partitions
                )
            except ValueError as exc:
                raise HostError(str(exc)) from None
            consumer = LocalConsumer(hub, str(spec.binding.get("consumerGroup") or "$Default"))
            start_after: dict[str, int] = {}
            if self.options.initial_offset.lower() == "fromend":
                for partition in consumer.partition_ids:
                    if consumer.get_checkpoint(partition) is None:
                        start_after[partition] = consumer.last_sequence_number(partition)
            cached = self._consumers[spec.name] = (consumer, spec, start_after)
        return cached[0], cached[2]

    def backlog(self) -> dict[str, int]:
        """Events not yet checkpointed, per partition, summed over the Event Hubs functions."""
        total: Counter[str] = Counter()
        for spec in self.event_hub_functions:
            consumer, _ = self._consumer(spec)
            total.update(consumer.backlog())
        return dict(total)

    # --- Event Hubs ------------------------------------------------------------------------------
    def _pump(self, stop: threading.Event) -> tuple[int, float | None]:
        """One pass over every Event Hubs function's partitions (see :meth:`_pump_once`)."""
        delivered, due = 0, None
        for spec in self.event_hub_functions:
            events, held = self._pump_once(spec, stop)
            delivered += events
            if held is not None:
                due = held if due is None else min(due, held)
        return delivered, due

    def _pump_once(self, spec: FunctionSpec, stop: threading.Event) -> tuple[int, float | None]:
        """Deliver at most one batch per partition.

        As the Event Hubs extension does for a many-cardinality function, a partition with fewer
        than host.json's ``minEventBatchSize`` events waits for more, up to ``maxWaitTime`` from
        when it was first held (or from its last invocation), then gets what is there.

        Returns:
            Events delivered, and seconds until the first held partition is due (None: none held).
        """
        consumer, start_after = self._consumer(spec)
        many = str(spec.binding.get("cardinality") or "ONE").upper() == "MANY"
        backlog = consumer.backlog()
        delivered, due = 0, None
        for partition in consumer.partition_ids:
            after = None
            if partition in start_after and consumer.get_checkpoint(partition) is None:
                after = start_after[partition]
            available = backlog.get(partition, 0)
            if after is not None:
                available = max(0, consumer.last_sequence_number(partition) - after)
            key = (spec.name, partition)
            if not available:
                self._held_since.pop(key, None)
                continue
            if many and available < self.options.min_event_batch_size:
                held = time.monotonic() - self._held_since.setdefault(key, time.monotonic())
                remaining = self.options.max_wait_time * self.time_scale - held
                if remaining > 0:
                    due = remaining if due is None else min(due, remaining)
                    continue
            received = consumer.receive_batch(
                partition, self.options.max_event_batch_size, after_sequence_number=after
            )
            if not received:
                continue
            if not self._invoke_event_hub(spec, consumer, received, stop):
                return delivered, None  # stopped while waiting to retry: nothing checkpointed
            self._held_since.pop(key, None)  # the extension's wait starts again after an invocation
            delivered += len(received)
        return delivered, due

    def _invoke_event_hub(
        self,
        spec: FunctionSpec,
        consumer: LocalConsumer,
        received: list[ReceivedEvent],
        stop: threading.Event,
    ) -> bool:
        """Invoke for one partition batch and checkpoint it; False when ``stop`` came first."""
        partition = received[0].partition_id
        events = build_event_batch(received, str(spec.binding["eventHubName"]), consumer.consumer_group)
        if str(spec.binding.get("cardinality") or "ONE").upper() == "ONE":
            # Cardinality one: the host invokes once per event.
            outcomes = [self._call(spec, event, stop, partition) for event in events]
        else:
            outcomes = [self._call(spec, events, stop, partition)]
        if "stopped" in outcomes:
            return False
        # The real host checkpoints once the invocation is done, whatever its outcome (a retry
        # policy that gives up included); a policy that is still retrying holds the checkpoint.
        last = received[-1]
        consumer.checkpoint(partition, last.sequence_number, last.offset)
        self.summary.invocations += 1
        self.summary.events += len(received)
        self.summary.events_by_partition[partition] += len(received)
        return True

    def _call(
        self, spec: FunctionSpec, argument: Any, stop: threading.Event, partition: str | None = None
    ) -> Literal["ok", "gave_up", "stopped"]:
        """Invoke with the function's retry policy, waiting between attempts until ``stop``."""
        retry = 0
        while True:
            try:
                self._run_user_function(spec, argument)
                self.waiting = None
                return "ok"
            except Exception as exc:
                retry += 1
                self.last_error = f"{spec.name}: {type(exc).__name__}: {exc}"
                delay = spec.retry.delay(retry) if spec.retry else None
                if delay is None:
                    log.error("function %s failed after %d attempts: %s", spec.name, retry, exc)
                    self.summary.failed_invocations += 1
                    self.waiting = None
                    return "gave_up"
                wait = delay * self.time_scale
                self.waiting = self._waiting(spec.name, partition, retry, wait, exc)
                log.warning("%s", self.waiting.describe(time.monotonic()))
                self.summary.retries += 1
                if stop.wait(wait):
                    return "stopped"

    def _waiting(
        self, function: str, partition: str | None, attempts: int, wait: float, exc: Exception
    ) -> RetryWait:
        now = time.monotonic()
        since = self.waiting.failing_since if self.waiting is not None and attempts > 1 else now
        error = f"{type(exc).__name__}: {exc}"
        return RetryWait(function, partition, since, attempts, now + wait, error, _is_storage(exc))

    def _run_user_function(self, spec: FunctionSpec, argument: Any) -> Any:
        with self._app_settings_in_environment():
            result = spec.user_function(**{spec.arg_name: argument})
            if inspect.isawaitable(result):
                result = asyncio.run(_awaited(result))
        return result

    @contextmanager
    def _app_settings_in_environment(self) -> Iterator[None]:
        # On Azure app settings are environment variables of the worker; mirror that for the
        # duration of a call and put back what was there.
        with _ENV_LOCK:
            saved: dict[str, str | None] = {}
            for key, value in self.settings.values.items():
                if os.environ.get(key) != value:
                    saved[key] = os.environ.get(key)
                    os.environ[key] = value
            try:
                yield
            finally:
                for key, previous in saved.items():
                    if previous is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = previous

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
        self.summary = IngestSummary()
        started = time.monotonic()
        try:
            with _collecting_batch_logs(self.summary):
                while not stop.is_set():
                    delivered, due = self._pump(stop)
                    self.summary.seconds = time.monotonic() - started
                    if delivered:
                        continue
                    if due is None:
                        break
                    stop.wait(due)
        finally:
            self.summary.seconds = time.monotonic() - started
        return self.summary

    # --- timers ----------------------------------------------------------------------------------
    def _timer(self, function_name: str | None) -> FunctionSpec:
        timers = self.timer_functions
        if function_name is not None:
            for spec in timers:
                if spec.name == function_name:
                    return spec
            names = ", ".join(s.name for s in timers) or "none"
            raise HostError(f"no timer function named {function_name!r} (timer functions: {names})")
        if len(timers) != 1:
            names = ", ".join(s.name for s in timers) or "none"
            raise HostError(f"name the timer function to fire (timer functions: {names})")
        return timers[0]

    def fire_timer(
        self, function_name: str | None = None, past_due: bool = False, stop: threading.Event | None = None
    ) -> Any:
        """Invoke a timer function once with a real ``TimerRequest``; raise if every attempt failed."""
        spec = self._timer(function_name)
        request = TimerRequest(past_due=past_due, schedule={"AdjustForDST": True})
        retry = 0
        while True:
            try:
                result = self._run_user_function(spec, request)
            except Exception:
                retry += 1
                delay = spec.retry.delay(retry) if spec.retry else None
                if delay is None or (stop or threading.Event()).wait(delay * self.time_scale):
                    raise
                continue
            self.timer_runs[spec.name] += 1
            return result

    def next_fire_times(self, after: datetime) -> dict[str, datetime]:
        """When each timer function fires next after ``after`` (UTC)."""
        return {
            spec.name: croniter(str(spec.binding["schedule"]), after, second_at_beginning=True).get_next(
                datetime
            )
            for spec in self.timer_functions
        }

    def status(self) -> HostStatus:
        waiting = self.waiting.describe(time.monotonic()) if self.waiting is not None else None
        return HostStatus(self.summary, self.backlog(), dict(self.timer_runs), self.last_error, waiting)

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
        due = self.next_fire_times(datetime.now(UTC))
        last_status = 0.0
        try:
            with _collecting_batch_logs(self.summary):
                for spec in self.timer_functions:
                    if spec.binding.get("runOnStartup"):
                        self._fire_logged(spec.name, past_due=False, stop=stop)
                while not stop.is_set():
                    try:
                        delivered, held = self._pump(stop)
                    except sqlite3.Error as exc:
                        # The embedded hub busy or mid-creation by another process: like a lost
                        # connection to Event Hubs, wait and try again (nothing was checkpointed).
                        self.last_error = f"embedded hub: {exc}"
                        log.warning("embedded hub read failed, retrying: %s", exc)
                        delivered, held = 0, None
                    now = datetime.now(UTC)
                    for name, when in list(due.items()):
                        if when <= now:
                            # Past due, as on Azure, when the occurrence was missed by a while
                            # (here: the host was busy or stopped for over a minute).
                            self._fire_logged(name, past_due=(now - when).total_seconds() > 60, stop=stop)
                            schedule = str(self._timer(name).binding["schedule"])
                            due[name] = croniter(schedule, now, second_at_beginning=True).get_next(datetime)
                    self.summary.seconds = time.monotonic() - started
                    if on_status is not None and time.monotonic() - last_status >= 0.5:
                        last_status = time.monotonic()
                        on_status(self.status())
                    if not delivered:
                        wait = poll_seconds if held is None else min(poll_seconds, held)
                        if due:
                            until_next = (min(due.values()) - datetime.now(UTC)).total_seconds()
                            wait = min(wait, max(0.0, until_next))
                        stop.wait(wait)
        finally:
            self.summary.seconds = time.monotonic() - started
        if on_status is not None:
            on_status(self.status())
        return self.summary

    def _fire_logged(self, name: str, past_due: bool, stop: threading.Event) -> None:
        try:
            self.fire_timer(name, past_due=past_due, stop=stop)
        except Exception as exc:
            self.last_error = f"{name}: {type(exc).__name__}: {exc}"
            log.error("timer function %s failed: %s", name, exc)


async def _awaited(result: Any) -> Any:
    return await result


def _is_storage(exc: BaseException) -> bool:
    """Whether a failure is the storage's: what the ingest Function raises (LakeStorage.create)."""
    from azure.core.exceptions import AzureError

    return isinstance(exc, OSError | AzureError)
