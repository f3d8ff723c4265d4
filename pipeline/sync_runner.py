"""Run the sync timer Function once, locally, the way the Functions host would.

Uses the local Functions host (``pipeline.host.LocalFunctionsHost.fire_timer``) when it is
there; otherwise finds the function in ``function_app.app`` by its ``timerTrigger`` binding
and calls it with a real ``TimerRequest``. Either way what runs is what Azure would index.
"""

from __future__ import annotations

import json
from typing import Any

from azure.functions.timer import TimerRequest

from functions import sync as sync_function
from settings import Settings

SYNC_FUNCTION_NAME = "sync_gold_to_sql"


def _indexed(app: Any) -> list[Any]:
    try:
        from pipeline.host import app_functions
    except ImportError:
        # azure-functions refuses a second get_functions() on one app ("duplicate" names)
        # unless its bookkeeping is reset, and local tooling indexes the same app repeatedly.
        functions = list(app.get_functions())
        if hasattr(app, "functions_bindings"):
            app.functions_bindings = None
        return functions
    return list(app_functions(app))


def find_timer_function(app: Any, name: str = SYNC_FUNCTION_NAME) -> Any:
    """The function in ``app`` named ``name`` whose trigger is a timer."""
    for function in _indexed(app):
        bindings = json.loads(function.get_function_json()).get("bindings", [])
        if function.get_function_name() == name and any(b.get("type") == "timerTrigger" for b in bindings):
            return function
    raise LookupError(f"function_app has no timer-triggered function named {name!r}")


def _fire(settings: Settings, app: Any) -> None:
    try:
        from pipeline.host import LocalFunctionsHost
    except ImportError:  # the local host is optional for this runner
        pass
    else:
        LocalFunctionsHost(settings, app).fire_timer(SYNC_FUNCTION_NAME)
        return
    if app is None:
        from function_app import app as function_app

        app = function_app
    find_timer_function(app).get_user_function()(TimerRequest(past_due=False))


def sync_once(settings: Settings, app: Any = None) -> dict[str, Any]:
    """Fire the sync timer Function once with ``settings``; return its counts as a dict.

    Creates the SQL schema when missing; when gold does not exist yet the result's ``status``
    is ``no_gold`` and nothing is written. Not for concurrent use within one process (the
    Function reports its counts through a module attribute).
    """
    sync_function.last_summary = None
    with sync_function.settings_for_local_runs(settings):
        _fire(settings, app)
    summary = sync_function.last_summary
    if summary is None:
        return {"status": "unknown", "message": "the sync Function ran but reported nothing"}
    return summary.as_dict()
