"""Run one gold → SQL sync locally, as the sync timer Function does.

:func:`sync_once` calls the Function's own :func:`functions.sync.sync_from_settings` with the
settings it is given and returns its outcome. :func:`find_timer_function` finds the timer
Function in an app the way the host indexes it (by its ``timerTrigger`` binding).
"""

from __future__ import annotations

import json
from typing import Any

from functions.sync import sync_from_settings
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


def sync_once(settings: Settings) -> dict[str, Any]:
    """Sync once with ``settings``, as the timer Function does; return its outcome as a dict.

    Creates the SQL schema when missing; when gold does not exist yet the result's ``status``
    is ``no_gold`` and nothing is written.
    """
    return sync_from_settings(settings).as_dict()
