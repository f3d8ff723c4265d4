"""The sync timer Function: gold (Delta) → SQL, on ``%SYNC_SCHEDULE%``.

A thin handler: it reads the settings and runs :func:`sync_from_settings`, which builds the gold
reader and the SQL warehouse the settings name and calls the plain core
(:func:`functions.sync_core.run_sync`). A failure raises, so the host records it and the next
tick retries from the unchanged watermark. The outcome is :func:`run_sync`'s return value (and,
for every sync that changed something, a row of ``sync_runs`` in the SQL database).

No ``from __future__ import annotations``: the worker resolves binding annotations when it
indexes the app (see functions/ingest.py).
"""

import logging

import azure.functions as func

from functions.gold_source import gold_source_from_settings
from functions.sql_target.warehouse import warehouse_from_settings
from functions.sync_core import SyncSummary, run_sync
from settings import Settings, load_settings

log = logging.getLogger(__name__)

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ unannotated


@bp.function_name("sync_gold_to_sql")
@bp.timer_trigger(schedule="%SYNC_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def sync_gold_to_sql(timer: func.TimerRequest) -> None:
    """Upsert the gold rows changed since the SQL watermark into the SQL table."""
    if timer.past_due:
        log.info("sync timer is past due; running now")
    summary = sync_from_settings(load_settings())
    log.info(
        "sync %s: %s (upserted=%d deleted=%d skipped=%d)",
        summary.status,
        summary.message,
        summary.rows_upserted,
        summary.rows_deleted,
        summary.rows_skipped,
    )


def sync_from_settings(settings: Settings) -> SyncSummary:
    """One sync with the gold reader and the SQL warehouse the settings name: what the timer runs."""
    return run_sync(gold_source_from_settings(settings), warehouse_from_settings(settings))
