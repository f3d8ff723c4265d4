"""Landing a batch's file create-only, telling a replay from a different batch with the same name.

A batch's file name is a pure function of what the hub assigned (:func:`functions.ingest_core.
batch_file_stem`), so a replayed batch finds its file already there and writes nothing. A name
that exists is checked, not trusted: the existing file must hold this batch's events (sequence
numbers, offsets, enqueued times and bodies). When it holds other events (a misconfigured second
hub with the same identity, or a hand-made file), this batch goes to a second name carrying a
digest of its events, so nothing is lost or overwritten; :func:`land` reports the conflict and
the caller fails the invocation loudly. That second name is itself a pure function of the events,
so a replay of the conflicting batch is a no-op too.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass

from functions.bronze import decode_bronze, decode_jsonl, format_of
from functions.ingest_core import EventColumns, batch_digest, holds_events_of
from functions.lake import LakeStorage

CONFLICT_MARKER = "-conflict-"


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


def conflict_path(path: str, events: EventColumns) -> str:
    """The second name for a batch whose usual name holds other events (same folder and format)."""
    fmt = format_of(path)
    stem = path[: -len(fmt) - 1]
    return f"{stem}{CONFLICT_MARKER}{batch_digest(events)}.{fmt}"


def land(lake: LakeStorage, container: str, path: str, data: bytes, events: EventColumns) -> Landing:
    """Create ``path`` with ``data`` unless it exists; if it does, check that it holds ``events``.

    Args:
        lake: The storage.
        container: Bronze or quarantine.
        path: The batch's usual file path.
        data: The file's bytes.
        events: The whole batch (valid and rejected events: a file holds some of them).

    Returns:
        Where the records are. ``conflict_with`` is set when the usual name held other events.

    Raises:
        BatchNameConflict: both the usual and the conflict name hold other events (not expected
            to happen: the second name is a digest of the events).
    """
    if lake.create(container, path, data):
        return Landing(path, written=True)
    if _holds(lake, container, path, events):
        return Landing(path, written=False)
    second = conflict_path(path, events)
    if lake.create(container, second, data):
        return Landing(second, written=True, conflict_with=path)
    if _holds(lake, container, second, events):
        return Landing(second, written=False, conflict_with=path)
    raise BatchNameConflict(f"{container}/{path} and {container}/{second} both hold other events")


def _holds(lake: LakeStorage, container: str, path: str, events: EventColumns) -> bool:
    """Whether the file at ``path`` holds only events of this batch (an unreadable file does not)."""
    data = lake.read(container, path)
    fmt = format_of(path)
    try:
        if fmt == "avro":
            records = decode_bronze(data, fmt)
        else:
            records = decode_jsonl(gzip.decompress(data) if fmt == "jsonl.gz" else data)
    except (ValueError, EOFError, OSError):
        return False
    return holds_events_of(records, events)
