"""Writing a batch's files create-only, telling a replay from a different batch with the same name.

A batch's file name is a pure function of what the hub assigned
(:func:`functions.ingest_core.batch_name`), so a replayed batch finds its file already there and
writes nothing. A name that exists is checked, not trusted: the existing file must hold this
batch's events (sequence numbers, offsets, enqueued times and bodies). When it holds other events
(a misconfigured second hub with the same identity, or a hand-made file), this batch goes to a
second name carrying a digest of its events (a conflict suffix, :mod:`contract.lake_layout`),
so nothing is lost or overwritten; :func:`land` reports the conflict and the ingest Function
fails the invocation loudly. That second name is itself a pure function of the events, so a
replay of the conflicting batch is a no-op too.
"""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass

from contract.lake_layout import CONFLICT_MARKER, BatchFile
from functions.bronze import decode_bronze, decode_jsonl
from functions.ingest_core import BatchReport, EventColumns, IngestedBatch, batch_digest, holds_events_of
from functions.lake import LakeStorage

logger = logging.getLogger("functions.ingest")


class BatchNameConflict(Exception):
    """A batch's file name held other events; the batch was written under another name."""


@dataclass(frozen=True)
class Landing:
    """Where a batch's file is, and how it got there.

    Attributes:
        path: The file holding the batch's records (the usual name, or the conflict name).
        written: True when this call created it; False when it already held these events.
        conflict_with: The usual name, when a file there held other events (else None).
    """

    path: str
    written: bool
    conflict_with: str | None = None


def land_batch(lake: LakeStorage, batch: IngestedBatch, events: EventColumns) -> BatchReport:
    """Write the batch's files (:func:`land` each) and note in its report where they are.

    Raises:
        Exception: the storage failed (logged, one line per attempt); the files already written
            stay as they are (create-only) and the retried batch finds them.
    """
    report = batch.report
    for file in batch.files:
        report.files[file.container] = file.path
        try:
            landing = land(lake, file.container, file.file, file.data, events)
        except BatchNameConflict:
            raise
        except Exception as exc:
            failure = {
                "event": "ingest_storage_failed",
                "partition_id": report.partition_id,
                "events": report.events,
                "container": file.container,
                "path": file.path,
                "error": f"{type(exc).__name__}: {exc}",
            }
            # The retry policy waits and tries again, as long as it takes: the partition waits too.
            logger.warning(
                "ingest_storage_failed %s",
                json.dumps(failure, sort_keys=True),
                extra={"custom_dimensions": failure},
            )
            raise
        report.files[file.container], report.written[file.container] = landing.path, landing.written
        if landing.conflict_with is not None:
            report.conflicts[file.container] = landing.conflict_with
    return report


def land(lake: LakeStorage, container: str, file: BatchFile, data: bytes, events: EventColumns) -> Landing:
    """Create ``file`` with ``data`` unless it exists; if it does, check that it holds ``events``.

    Args:
        lake: The storage.
        container: Bronze or quarantine.
        file: The batch's usual file name.
        data: The file's bytes.
        events: The whole batch (valid and rejected events: a file holds some of them).

    Returns:
        Where the records are. ``conflict_with`` is set when the usual name held other events.

    Raises:
        BatchNameConflict: both the usual and the conflict name hold other events (not expected
            to happen: the second name is a digest of the events).
    """
    path = file.path
    if lake.create(container, path, data):
        return Landing(path, written=True)
    if _holds(lake, container, file, events):
        return Landing(path, written=False)
    second = conflict_file(file, events)
    if lake.create(container, second.path, data):
        return Landing(second.path, written=True, conflict_with=path)
    if _holds(lake, container, second, events):
        return Landing(second.path, written=False, conflict_with=path)
    raise BatchNameConflict(f"{container}/{path} and {container}/{second.path} both hold other events")


def conflict_file(file: BatchFile, events: EventColumns) -> BatchFile:
    """The second name for a batch whose usual name holds other events (same folder and format)."""
    return file.name.with_suffix(CONFLICT_MARKER, batch_digest(events)).file(file.format)


def _holds(lake: LakeStorage, container: str, file: BatchFile, events: EventColumns) -> bool:
    """Whether the file holds only events of this batch (an unreadable file does not)."""
    data = lake.read(container, file.path)
    try:
        if file.format == "avro":
            records = decode_bronze(data, file.format)
        else:
            records = decode_jsonl(gzip.decompress(data) if file.format == "jsonl.gz" else data)
    except (ValueError, EOFError, OSError):
        return False
    return holds_events_of(records, events)
