"""Run the sync timer Function once, locally, the way the Functions host would.

Fires it through the local Functions host (``pipeline.host.LocalFunctionsHost.fire_timer``):
what runs is what Azure would index.
"""

from __future__ import annotations

import json
from typing import Any

from functions import sync as sync_function
from pipeline.host import LocalFunctionsHost
from pipeline.host.indexing import app_functions
from settings import Settings

SYNC_FUNCTION_NAME = "sync_gold_to_sql"


def find_timer_function(app: Any, name: str = SYNC_FUNCTION_NAME) -> Any:
    """The function in ``app`` named ``name`` whose trigger is a timer."""
    for function in app_functions(app):
        bindings = json.loads(function.get_function_json()).get("bindings", [])
        if function.get_function_name() == name and any(b.get("type") == "timerTrigger" for b in bindings):
            return function
    raise LookupError(f"function_app has no timer-triggered function named {name!r}")


def sync_once(settings: Settings, app: Any = None) -> dict[str, Any]:
    """Fire the sync timer Function once with ``settings``; return its counts as a dict.

    Creates the SQL schema when missing; when gold does not exist yet the result's ``status``
    is ``no_gold`` and nothing is written. Not for concurrent use within one process (the
    Function reports its counts through a module attribute).
    """
    sync_function.last_summary = None
    # The host runs the Function with ``settings`` as its app settings (pipeline.host.app_settings).
    LocalFunctionsHost(settings, app).fire_timer(SYNC_FUNCTION_NAME)
    summary = sync_function.last_summary
    if summary is None:
        return {"status": "unknown", "message": "the sync Function ran but reported nothing"}
    return summary.as_dict()
