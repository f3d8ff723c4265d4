"""What an ingest invocation landed, read back from the lake: the host's valid and quarantined counts.

The ingest Function returns nothing to the host (on Azure, what it did is the files it wrote,
and its log). So the local host counts what each invocation landed from those files, read
through the lake adapter the Function writes with (:func:`functions.lake.lake_from_settings`).
Not from its log lines (they are for Application Insights, and a log is no interface), nor by
calling its plain core instead of the registered function (then the host would no longer run
the app as Azure does):

* which files: the batch's bronze and quarantine file. Their names are a pure function of what
  the hub assigned the batch (:func:`functions.ingest_core.batch_folder` and
  :func:`~functions.ingest_core.batch_file_stem`, the Function's own naming), which the host
  knows, having delivered it. When that name holds another batch's events (its first record is
  not one of this batch's), the second name the Function then uses
  (:func:`functions.landing.conflict_path`);
* valid: the bronze file's own ``RecordsInFile`` (only its first record is decoded);
* quarantined: the quarantine file's records, and their ``Reasons``.

A replayed batch counts what its files hold, as its first delivery did. An Event Hubs function
that writes no such files (another app's) counts nothing. Reading costs about a tenth of what
the Function takes to write the batch.
"""

from __future__ import annotations

import gzip
import io
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import fastavro
import orjson
from azure.core.exceptions import ResourceNotFoundError

from contract.bronze import QUARANTINE_FORMAT, RECORDS_IN_FILE
from functions.avro import envelope_record
from functions.bronze import decode_bronze, decode_jsonl, file_name, format_of
from functions.ingest_core import EventColumns, batch_file_stem, batch_folder, holds_events_of
from functions.lake import LakeStorage, lake_from_settings
from functions.landing import conflict_path
from localhub import ReceivedEvent
from settings import Settings

if TYPE_CHECKING:
    from functions.ingest import IngestConfig

_NONE: Mapping[str, str] = {}


@dataclass(frozen=True)
class Landed:
    """A batch's events found in bronze (valid) and in quarantine, with the quarantine's reasons."""

    valid: int = 0
    quarantined: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


class LandedReader:
    """Reads what the ingest Function landed for a batch, from the lake the settings name."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def lake(self) -> LakeStorage:
        return lake_from_settings(self.settings)

    @cached_property
    def config(self) -> IngestConfig:
        # Imported here: functions.ingest checks the environment's settings when it is imported,
        # which the host does with its own settings exported (pipeline.host.app_settings).
        from functions.ingest import IngestConfig

        return IngestConfig.from_settings(self.settings)

    def read(self, received: Sequence[ReceivedEvent]) -> Landed:
        """What the files of the batch ``received`` (as the hub gave it) hold; nothing when none exist.

        Raises:
            OSError or azure.core.exceptions.AzureError: the lake could not be read.
        """
        if not received:
            return Landed()
        partition_id = received[0].partition_id
        columns = EventColumns(
            bodies=[e.body for e in received],
            sequence_numbers=[e.sequence_number for e in received],
            offsets=[e.offset for e in received],
            enqueued_times=[e.enqueued_time for e in received],
            partition_keys=[None] * len(received),
            properties=[_NONE] * len(received),  # what the names and the landing test leave out
            system_properties=[_NONE] * len(received),
        )
        folder = batch_folder(self.config.stream, columns.enqueued_times[0])
        stem = batch_file_stem(partition_id, columns, self.config.hub)
        valid = 0
        bronze_path = f"{folder}/{file_name(stem, self.config.bronze_format)}"
        bronze = self._file_of_batch(self.config.bronze_container, bronze_path, columns)
        if bronze is not None:
            path, data, first = bronze
            written = first.get(RECORDS_IN_FILE)  # files from before the field: count them
            valid = int(written) if written else len(decode_bronze(data, format_of(path)))
        quarantine_path = f"{folder}/{file_name(stem, QUARANTINE_FORMAT)}"
        quarantine = self._file_of_batch(self.config.quarantine_container, quarantine_path, columns)
        records = decode_jsonl(quarantine[1]) if quarantine is not None else []
        reasons = Counter(code for record in records for code in record.get("Reasons") or ())
        return Landed(valid, len(records), reasons)

    def _file_of_batch(
        self, container: str, path: str, columns: EventColumns
    ) -> tuple[str, bytes, dict[str, Any]] | None:
        """The batch's file at ``path`` (or at its conflict name), its bytes and its first record."""
        data = self._read(container, path)
        if data is None:
            return None
        first = _first_record(data, format_of(path))
        if _is_of_batch(first, columns):
            return path, data, first
        # The name held another batch's events, so the Function wrote this batch under its second
        # name: a digest of this batch's events (worked out only here, it costs a hash per event).
        second = conflict_path(path, columns)
        data = self._read(container, second)
        return None if data is None else (second, data, _first_record(data, format_of(second)))

    def _read(self, container: str, path: str) -> bytes | None:
        try:
            return self.lake.read(container, path)
        except (FileNotFoundError, ResourceNotFoundError):
            return None


def _first_record(data: bytes, fmt: str) -> dict[str, Any]:
    """A bronze or quarantine file's first record, decoding no more of the file than it takes."""
    if fmt == "avro":
        captured: Any = next(iter(fastavro.reader(io.BytesIO(data))))
        return {**envelope_record(captured), RECORDS_IN_FILE: captured.get(RECORDS_IN_FILE)}
    stream = io.BytesIO(data)
    record: dict[str, Any] = orjson.loads(
        (gzip.GzipFile(fileobj=stream) if fmt == "jsonl.gz" else stream).readline()
    )
    return record


def _is_of_batch(record: Mapping[str, Any], columns: EventColumns) -> bool:
    """Whether ``record`` is one of the batch's events (the landing's test, on one record)."""
    try:
        at = list(columns.sequence_numbers).index(record.get("SequenceNumber"))  # type: ignore[arg-type]
    except ValueError:
        return False
    event = EventColumns(
        bodies=[columns.bodies[at]],
        sequence_numbers=[columns.sequence_numbers[at]],
        offsets=[columns.offsets[at]],
        enqueued_times=[columns.enqueued_times[at]],
        partition_keys=[None],
        properties=[_NONE],
        system_properties=[_NONE],
    )
    return holds_events_of([record], event)
