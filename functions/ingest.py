"""The ingest Function: an Event Hubs batch in, bronze and quarantine files out.

A thin handler: it reads the trigger batch (:mod:`functions.eventhub_trigger`), calls the plain
core (:func:`functions.ingest_core.ingest_batch`), writes the files
(:func:`functions.landing.land_batch`) and logs one structured line per batch. Bad events never
fail the batch (they are quarantined with reason codes); only a storage failure raises, and the
retry policy below then tries again until the storage is back. Every file is create-only, so a
retried or replayed batch never doubles anything.

No ``from __future__ import annotations`` here: the Python worker reads the binding parameters'
annotations with ``typing.get_type_hints`` when it indexes the app, so they are kept as the
objects themselves (nothing left to resolve), and the trigger's is ``typing.List[...]``, the form
every worker accepts (docs/ingest.md, "What the Python worker accepts").
"""

import json
import logging
import time
import typing
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import lru_cache

import azure.functions as func

from functions.eventhub_trigger import columns_from_trigger
from functions.ingest_core import BatchReport, IngestConfig, ingest_batch
from functions.lake import LakeStorage, lake_from_settings
from functions.landing import BatchNameConflict, land_batch
from settings import Settings, load_settings

logger = logging.getLogger("functions.ingest")

bp = func.Blueprint()  # type: ignore[no-untyped-call]  # azure-functions leaves __init__ unannotated


@bp.function_name("ingest")
# Retry until the storage is back, however long (-1): the host writes no checkpoint while a retry
# policy retries, and Event Hubs keeps the events for its retention period, so a partition waits
# and loses nothing (a bounded policy would checkpoint past the failed batch after its last try).
# Bad events never raise (they are quarantined): only a storage failure waits here.
@bp.retry(
    strategy="exponential_backoff",
    max_retry_count="-1",
    minimum_interval="00:00:05",
    maximum_interval="00:05:00",
)
@bp.event_hub_message_trigger(
    arg_name="events",
    event_hub_name="%EVENTHUB_NAME%",
    consumer_group="%EVENTHUB_CONSUMER_GROUP%",
    connection="EVENTHUB_CONNECTION",
    cardinality="many",
    data_type="binary",
)
# typing.List, not list: the worker refuses a builtin generic (`list[...]` is not a type to it).
def ingest(events: typing.List[func.EventHubEvent]) -> None:  # noqa: UP006
    """Event Hubs trigger (many cardinality): validate the batch and write bronze and quarantine."""
    settings = load_settings()
    lake = _lake_for(
        settings.lake_connection_string, settings.lake_account_url, str(settings.local_lake_path)
    )
    handle_batch(events, lake, IngestConfig.from_settings(settings))


@lru_cache(maxsize=4)
def _lake_for(connection_string: str, account_url: str, local_path: str) -> LakeStorage:
    # One client per lake for the worker's lifetime: connections and credentials are reused.
    return lake_from_settings(
        Settings(
            {
                "LAKE_CONNECTION_STRING": connection_string,
                "LAKE_ACCOUNT_URL": account_url,
                "LOCAL_LAKE_PATH": local_path,
            }
        )
    )


def handle_batch(
    events: Sequence[func.EventHubEvent],
    lake: LakeStorage,
    config: IngestConfig,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> BatchReport:
    """Turn one trigger batch into bronze and quarantine files.

    Args:
        events: The batch as the host delivered it.
        lake: Where the files go.
        config: Stream, format and container names.
        clock: The ingestion time source.

    Returns:
        The batch's counts and file names.

    Raises:
        BatchNameConflict: a file name of this batch held other events; the batch was written
            under a second name (nothing lost), and the invocation fails so that it is seen.
        Exception: when the storage fails; the batch is then retried whole, and the files
            it already wrote are kept as they are (create-only).
    """
    started = time.perf_counter()
    partition_id, columns = columns_from_trigger(events)
    if columns is None:
        report = BatchReport(partition_id, 0, 0, 0, {}, 0, 0.0)
    else:
        report = land_batch(lake, ingest_batch(columns, partition_id, config, clock), columns)
    report.duration_ms = (time.perf_counter() - started) * 1000
    summary = report.as_log()
    # A JSON message is what App Insights' traces keep verbatim; `extra` carries the same fields
    # as custom dimensions where an OpenTelemetry/Azure Monitor exporter is configured.
    logger.info("ingest_batch %s", json.dumps(summary, sort_keys=True), extra={"custom_dimensions": summary})
    written_elsewhere = {c: report.files[c] for c in report.conflicts if report.written[c]}
    if written_elsewhere:
        # Loud once: a replay of this batch finds its second name holding it and succeeds.
        raise BatchNameConflict(
            "another batch's files already have this batch's names (two event hubs with the same "
            f"namespace and name writing to this lake?): {report.conflicts}; this batch's events were "
            f"written to {written_elsewhere} instead, nothing is lost"
        )
    return report


# A setting the Function cannot use must fail indexing (the host then loads no ingest function
# and consumes nothing) rather than every batch, which would be checkpointed after its retries.
IngestConfig.from_settings(load_settings())
