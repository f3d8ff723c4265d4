"""The bronze envelope: what the ingest Function writes for each event and the Spark job reads.

One definition of the record, its file formats and the bronze-level reason codes. The ingest
Function's encoders, the Avro schema file (``contract/bronze.avsc``, checked equal to
:data:`AVRO_SCHEMA` by the tests) and the Spark job's read schemas are all derived from here.

Avro bronze is an Event Hubs Capture file: Capture's record name, namespace, field order and
types, so readers written for Capture read it unchanged. Capture spells the enqueued time in its
own text (``12/2/2021 2:58:24 PM``, to the second), so the exact time follows among the project's
extra fields, after Capture's. JSON lines keep one flat object per event with RFC 3339 times.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: File formats of bronze (valid events); quarantine files are always JSON lines.
FORMATS: tuple[str, ...] = ("jsonl", "jsonl.gz", "avro")
QUARANTINE_FORMAT = "jsonl"

# Reason codes of records the Spark job cannot take from bronze at all (beside the contract's
# per-event codes in contract.REASON_CODES).
BRONZE_MALFORMED = "bronze_malformed"  # a record that is not a readable envelope with a body
BRONZE_RESCUED = "bronze_rescued"  # Auto Loader rescued an envelope field that did not fit the schema
# A file whose readable records are not the ones it was written with (truncated, cut, damaged):
# all of its rows are quarantined, none reaches silver, until `pipeline repair` supersedes it.
BRONZE_INCOMPLETE = "bronze_incomplete"
# A file that cannot be decoded at all (found by `pipeline audit`, which reads files itself).
BRONZE_UNREADABLE = "bronze_unreadable"


@dataclass(frozen=True)
class EnvelopeField:
    """One field of a bronze record, as JSON lines name it.

    ``kind`` is one of ``long``, ``string``, ``optional_string`` (may be null), ``time`` (RFC 3339
    UTC text with milliseconds), ``properties`` (a map of property values) and ``body`` (the raw
    body: bytes in Avro, UTF-8 text in JSON lines).
    """

    name: str
    kind: str
    doc: str


#: The envelope in its documented order (docs/architecture.md "Bronze records").
ENVELOPE: tuple[EnvelopeField, ...] = (
    EnvelopeField("SequenceNumber", "long", "Event Hubs sequence number in its partition"),
    EnvelopeField("Offset", "string", "Event Hubs offset"),
    EnvelopeField("EnqueuedTimeUtc", "time", "when Event Hubs enqueued the event"),
    EnvelopeField("SystemProperties", "properties", "other system properties the host passed"),
    EnvelopeField("Properties", "properties", "application properties, as the producer sent them"),
    EnvelopeField("Body", "body", "the body exactly as received"),
    EnvelopeField("PartitionId", "string", "partition id; empty when the host did not say"),
    EnvelopeField("PartitionKey", "optional_string", "the producer's partition key"),
    EnvelopeField("EventId", "string", "the body's eventId"),
    EnvelopeField("IngestedTimeUtc", "time", "when the Function handled the batch"),
)
ENVELOPE_NAMES: tuple[str, ...] = tuple(f.name for f in ENVELOPE)

#: How many records the Function wrote into the file, repeated on each of them: the Spark job
#: checks every file it reads against it, so a truncated or damaged file is never read as a
#: shorter, valid one. The encoders add it; it is not part of an event's envelope.
RECORDS_IN_FILE = "RecordsInFile"
FILE_FIELDS: tuple[EnvelopeField, ...] = (
    EnvelopeField(RECORDS_IN_FILE, "long", "how many records the Function wrote into this file"),
)
#: Every field of a bronze record as written: the envelope, then the file's own fields.
RECORD_FIELDS: tuple[EnvelopeField, ...] = (*ENVELOPE, *FILE_FIELDS)

# --- Avro: Event Hubs Capture's record, then the project's fields --------------------------------

CAPTURE_RECORD_NAME = "EventData"
CAPTURE_NAMESPACE = "Microsoft.ServiceBus.Messaging"
#: Capture's text for the enqueued time (.NET's invariant ``M/d/yyyy h:mm:ss tt``).
CAPTURE_TIME_FORMAT = "M/d/yyyy h:mm:ss tt"
#: The Avro field holding the exact enqueued time (RFC 3339 UTC, milliseconds); Avro's
#: ``EnqueuedTimeUtc`` holds Capture's text.
EXACT_ENQUEUED_TIME = "EnqueuedTimeRfc3339"
#: System properties Capture keeps in ``SystemProperties``: enqueued time (epoch milliseconds)
#: and the partition key (when the producer set one).
CAPTURE_ENQUEUED_TIME_PROPERTY = "x-opt-enqueued-time"
CAPTURE_PARTITION_KEY_PROPERTY = "x-opt-partition-key"

_SYSTEM_VALUES = ["long", "double", "string", "bytes"]
_PROPERTY_VALUES = ["long", "double", "string", "bytes", "null"]

#: The Capture part of the schema, exactly as Capture writes it.
CAPTURE_FIELDS: tuple[dict[str, Any], ...] = (
    {"name": "SequenceNumber", "type": "long"},
    {"name": "Offset", "type": "string"},
    {"name": "EnqueuedTimeUtc", "type": "string"},
    {"name": "SystemProperties", "type": {"type": "map", "values": _SYSTEM_VALUES}},
    {"name": "Properties", "type": {"type": "map", "values": _PROPERTY_VALUES}},
    {"name": "Body", "type": ["null", "bytes"]},
)

# The project's fields, after Capture's. Defaults let a reader using this schema read plain
# Capture files too (the fields then read as empty).
_EXTRA_FIELDS: tuple[dict[str, Any], ...] = (
    {"name": EXACT_ENQUEUED_TIME, "type": "string", "default": "", "doc": "RFC 3339 UTC, milliseconds"},
    {"name": "PartitionId", "type": "string", "default": "", "doc": ENVELOPE[6].doc},
    {"name": "PartitionKey", "type": ["null", "string"], "default": None, "doc": ENVELOPE[7].doc},
    {"name": "EventId", "type": "string", "default": "", "doc": ENVELOPE[8].doc},
    {"name": "IngestedTimeUtc", "type": "string", "default": "", "doc": "RFC 3339 UTC, milliseconds"},
    {"name": RECORDS_IN_FILE, "type": "long", "default": 0, "doc": FILE_FIELDS[0].doc},
)

#: The Avro schema of bronze files (:data:`AVRO_SCHEMA_FILE` holds the same JSON, for readers).
AVRO_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": CAPTURE_RECORD_NAME,
    "namespace": CAPTURE_NAMESPACE,
    "doc": (
        "One valid event as the ingest Function received it: Event Hubs Capture's record, then "
        "the pipeline's fields. See docs/ingest.md 'Avro bronze'."
    ),
    "fields": [*CAPTURE_FIELDS, *_EXTRA_FIELDS],
}
AVRO_FIELD_NAMES: tuple[str, ...] = tuple(f["name"] for f in AVRO_SCHEMA["fields"])

#: The schema as a file, for people and tools that read Avro bronze without this package.
AVRO_SCHEMA_FILE = Path(__file__).with_name("bronze.avsc")
