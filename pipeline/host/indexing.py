"""Indexing: the app's functions as the Functions host and the Python worker see them.

Functions come from ``FunctionApp.get_functions()`` and their binding JSON, with ``%SETTING%``
names resolved from the settings. An app with no function, an unknown trigger or a binding that
does not resolve fails here with one clear line (the real host's silent "0 functions loaded" is
the failure this prevents), and so does a function the Python worker would refuse to load
(:mod:`pipeline.host.worker_checks`: e.g. a ``list[...]`` annotation).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from croniter import croniter

from pipeline.host.errors import HostError
from pipeline.host.retry import RetryPolicy
from pipeline.host.worker_checks import FunctionLoadError, check_function_loads
from settings import Settings

SUPPORTED_TRIGGERS = ("eventHubTrigger", "timerTrigger")


@dataclass(frozen=True)
class FunctionSpec:
    """One indexed function: its trigger binding with settings resolved, and the code to call."""

    name: str
    trigger_type: str
    arg_name: str
    binding: Mapping[str, Any]
    user_function: Callable[..., Any]
    retry: RetryPolicy | None

    @property
    def many(self) -> bool:
        """Whether an Event Hubs function takes a batch (cardinality MANY) rather than one event."""
        return str(self.binding.get("cardinality") or "ONE").upper() == "MANY"

    def call(self, argument: Any) -> Any:
        """Invoke once with the trigger argument, as the worker does (awaiting an async function)."""
        result = self.user_function(**{self.arg_name: argument})
        if inspect.isawaitable(result):
            result = asyncio.run(_awaited(result))
        return result


async def _awaited(result: Any) -> Any:
    return await result


_INDEXED: dict[int, tuple[Any, list[Any]]] = {}


def app_functions(app: Any) -> list[Any]:
    """``app.get_functions()``, indexed once per app object.

    azure-functions lets an app be indexed once (a second ``get_functions`` call fails on
    "duplicate" names); local tooling indexes the same app several times, so the result is kept
    and the library's duplicate-name bookkeeping is reset for the next caller. The one place
    that does this: everything local that looks at an app's functions comes here.
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
                retry=RetryPolicy.of_function(function, name),
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


def is_ncrontab(schedule: str) -> bool:
    """Whether a timer schedule is NCRONTAB as the Functions host reads it: six fields, seconds first."""
    return len(schedule.split()) == 6 and bool(croniter.is_valid(schedule, second_at_beginning=True))


def _check_timer_binding(binding: Mapping[str, Any], where: str) -> None:
    schedule = str(binding.get("schedule") or "")
    if not is_ncrontab(schedule):
        raise HostError(
            f"{where} has schedule {schedule!r}; expected NCRONTAB with six fields, seconds first "
            "(e.g. '0 */5 * * * *')"
        )
