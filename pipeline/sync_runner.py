"""Run the sync timer Function once, locally, the way the Functions host would.

The function is found in ``function_app.app`` by its ``timerTrigger`` binding (not by name), so
what runs is what Azure would index, and called with a real ``TimerRequest``.
"""

from __future__ import annotations

from typing import Any

from azure.functions.timer import TimerRequest

from functions import sync as sync_function
from settings import Settings

SYNC_FUNCTION_NAME = "sync_gold_to_sql"


def find_timer_function(app: Any, name: str = SYNC_FUNCTION_NAME) -> Any:
    """The function in ``app`` whose trigger is a timer named ``name``."""
    import json

    for function in app.get_functions():
        bindings = json.loads(function.get_function_json()).get("bindings", [])
        if function.get_function_name() == name and any(b.get("type") == "timerTrigger" for b in bindings):
            return function
    raise LookupError(f"function_app has no timer-triggered function named {name!r}")


def sync_once(settings: Settings, app: Any = None) -> dict[str, Any]:
    """Fire the sync timer Function once with ``settings``; return its counts as a dict.

    Creates the SQL schema when missing; when gold does not exist yet the result's ``status``
    is ``no_gold`` and nothing is written.
    """
    if app is None:
        from function_app import app as function_app

        app = function_app
    function = find_timer_function(app)
    sync_function.last_summary = None
    with sync_function.settings_for_local_runs(settings):
        function.get_user_function()(TimerRequest(past_due=False))
    summary = sync_function.last_summary
    return summary.as_dict() if summary is not None else {"status": "unknown", "message": "no summary"}
