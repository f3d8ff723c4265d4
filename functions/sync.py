"""The sync timer Function: gold (Delta) → SQL, on ``%SYNC_SCHEDULE%``.

A thin handler: it builds the gold reader and the SQL warehouse from settings and calls
:func:`functions.sync_core.run_sync`. A failure raises, so the host records it and the next
tick retries from the unchanged watermark.

No ``from __future__ import annotations``: the worker resolves binding annotations when it
indexes the app (see functions/ingest.py).
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import azure.functions as func

from functions.gold_source import gold_source_from_settings
from functions.sync_core import SyncSummary, run_sync
from functions.warehouse import warehouse_from_settings
from settings import Settings, load_settings

log = logging.getLogger(__name__)

bp = func.Blueprint()

# The outcome of the last run in this process, for local tooling (`pipeline sync` prints it);
# the timer binding has no output, so the host ignores it.
last_summary: SyncSummary | None = None
# Local tooling may run the Function with settings it built itself (see settings_for_local_runs).
_settings_override: Settings | None = None


@contextmanager
def settings_for_local_runs(settings: Settings) -> Iterator[None]:
    """Within the block, the Function uses ``settings`` instead of reading the environment."""
    global _settings_override
    previous, _settings_override = _settings_override, settings
    try:
        yield
    finally:
        _settings_override = previous


@bp.function_name("sync_gold_to_sql")
@bp.timer_trigger(schedule="%SYNC_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def sync_gold_to_sql(timer: func.TimerRequest) -> None:
    """Upsert the gold rows changed since the SQL watermark into the SQL table."""
    global last_summary
    if timer.past_due:
        log.info("sync timer is past due; running now")
    settings = _settings_override or load_settings()
    summary = run_sync(gold_source_from_settings(settings), warehouse_from_settings(settings))
    last_summary = summary
    log.info(
        "sync %s: %s (upserted=%d deleted=%d skipped=%d)",
        summary.status,
        summary.message,
        summary.rows_upserted,
        summary.rows_deleted,
        summary.rows_skipped,
    )
