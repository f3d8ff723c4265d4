"""Avro bronze reads in readers written for Event Hubs Capture files, unchanged.

Capture's schema below is the one Capture writes (record ``EventData`` in namespace
``Microsoft.ServiceBus.Messaging``; ``Properties`` values may be null), spelled out here from
Microsoft's documentation rather than taken from the code under test.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime

import avro.datafile
import avro.io
import avro.schema
import fastavro
import orjson

from functions.bronze import encode_bronze

CAPTURE_SCHEMA = {
    "type": "record",
    "name": "EventData",
    "namespace": "Microsoft.ServiceBus.Messaging",
    "fields": [
        {"name": "SequenceNumber", "type": "long"},
        {"name": "Offset", "type": "string"},
        {"name": "EnqueuedTimeUtc", "type": "string"},
        {
            "name": "SystemProperties",
            "type": {"type": "map", "values": ["long", "double", "string", "bytes"]},
        },
        {
            "name": "Properties",
            "type": {"type": "map", "values": ["long", "double", "string", "bytes", "null"]},
        },
        {"name": "Body", "type": ["null", "bytes"]},
    ],
}
# The variant Microsoft's Capture article prints (no null among property values).
CAPTURE_SCHEMA_AS_DOCUMENTED = {
    **CAPTURE_SCHEMA,
    "fields": [
        *CAPTURE_SCHEMA["fields"][:4],
        {"name": "Properties", "type": {"type": "map", "values": ["long", "double", "string", "bytes"]}},
        CAPTURE_SCHEMA["fields"][5],
    ],
}


def record(
    seq: int, enqueued: str, properties: dict[str, object], key: str | None = None
) -> dict[str, object]:
    body = orjson.dumps({"eventId": f"e{seq}", "temperature": 21.5})
    return {
        "SequenceNumber": seq,
        "Offset": str(seq * 512),
        "EnqueuedTimeUtc": enqueued,
        "SystemProperties": {"iothub-connection-device-id": "station-7"},
        "Properties": properties,
        "Body": body,
        "PartitionId": "3",
        "PartitionKey": key,
        "EventId": f"e{seq}",
        "IngestedTimeUtc": "2026-11-22T19:00:01.000Z",
    }


RECORDS = [
    record(
        40,
        "2026-11-22T18:58:24.816Z",
        {"source": "station", "count": 7, "ratio": 0.25, "raw": b"\x01"},
        "oslo",
    ),
    record(41, "2026-11-22T00:05:09.001Z", {"flag": True, "nothing": None}),
    record(42, "2026-11-22T12:00:00.000Z", {}),
]
# What a Capture reader sees of those records, written down by hand.
EXPECTED_CAPTURE_VIEW = [
    {
        "SequenceNumber": 40,
        "Offset": "20480",
        "EnqueuedTimeUtc": "11/22/2026 6:58:24 PM",
        "SystemProperties": {
            "x-opt-enqueued-time": int(datetime(2026, 11, 22, 18, 58, 24, 816000, UTC).timestamp() * 1000),
            "x-opt-partition-key": "oslo",
            "iothub-connection-device-id": "station-7",
        },
        "Properties": {"source": "station", "count": 7, "ratio": 0.25, "raw": b"\x01"},
        "Body": RECORDS[0]["Body"],
    },
    {
        "SequenceNumber": 41,
        "Offset": "20992",
        "EnqueuedTimeUtc": "11/22/2026 12:05:09 AM",
        "SystemProperties": {
            "x-opt-enqueued-time": int(datetime(2026, 11, 22, 0, 5, 9, 1000, UTC).timestamp() * 1000),
            "iothub-connection-device-id": "station-7",
        },
        "Properties": {"flag": "true", "nothing": None},
        "Body": RECORDS[1]["Body"],
    },
    {
        "SequenceNumber": 42,
        "Offset": "21504",
        "EnqueuedTimeUtc": "11/22/2026 12:00:00 PM",
        "SystemProperties": {
            "x-opt-enqueued-time": int(datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC).timestamp() * 1000),
            "iothub-connection-device-id": "station-7",
        },
        "Properties": {},
        "Body": RECORDS[2]["Body"],
    },
]


# Reading with a reader schema, fastavro resolves a writer's ``bytes`` value to the first reader
# branch it matches, and Avro lets bytes promote to string, which comes first in Capture's union:
# the same happens to a bytes property in a file Capture wrote.
FASTAVRO_CAPTURE_VIEW = [
    {**EXPECTED_CAPTURE_VIEW[0], "Properties": {**EXPECTED_CAPTURE_VIEW[0]["Properties"], "raw": "\x01"}},  # type: ignore[dict-item]
    *EXPECTED_CAPTURE_VIEW[1:],
]


def bronze_file() -> bytes:
    return encode_bronze(RECORDS, "avro", "p3-00000000000000000040-00000000000000000042")  # type: ignore[arg-type]


def test_fastavro_with_captures_schema_as_reader_schema_reads_captures_view() -> None:
    read = list(fastavro.reader(io.BytesIO(bronze_file()), reader_schema=CAPTURE_SCHEMA))

    assert read == FASTAVRO_CAPTURE_VIEW


def test_capture_times_parse_with_captures_own_format() -> None:
    read = list(fastavro.reader(io.BytesIO(bronze_file()), reader_schema=CAPTURE_SCHEMA))

    # .NET's "M/d/yyyy h:mm:ss tt" (invariant culture) is strptime's "%m/%d/%Y %I:%M:%S %p".
    parsed = [datetime.strptime(r["EnqueuedTimeUtc"], "%m/%d/%Y %I:%M:%S %p") for r in read]  # type: ignore[call-overload]
    assert [p.isoformat() for p in parsed] == [
        "2026-11-22T18:58:24",
        "2026-11-22T00:05:09",
        "2026-11-22T12:00:00",
    ]


def test_documented_capture_schema_reads_records_without_null_properties() -> None:
    data = encode_bronze([RECORDS[0], RECORDS[2]], "avro", "p3")  # type: ignore[list-item]

    read = list(fastavro.reader(io.BytesIO(data), reader_schema=CAPTURE_SCHEMA_AS_DOCUMENTED))

    assert read == [FASTAVRO_CAPTURE_VIEW[0], FASTAVRO_CAPTURE_VIEW[2]]


def test_apache_avro_reads_the_file_with_captures_schema() -> None:
    reader_schema = avro.schema.parse(orjson.dumps(CAPTURE_SCHEMA).decode())
    datum_reader = avro.io.DatumReader(readers_schema=reader_schema)

    with avro.datafile.DataFileReader(io.BytesIO(bronze_file()), datum_reader) as reader:
        assert reader.get_meta("avro.codec") == b"deflate"
        read = list(reader)

    assert read == EXPECTED_CAPTURE_VIEW


def test_apache_avro_reads_the_pipelines_own_fields_too() -> None:
    with avro.datafile.DataFileReader(io.BytesIO(bronze_file()), avro.io.DatumReader()) as reader:
        read = list(reader)

    assert [r["EnqueuedTimeRfc3339"] for r in read] == [r["EnqueuedTimeUtc"] for r in RECORDS]
    assert [(r["PartitionId"], r["PartitionKey"], r["EventId"], r["RecordsInFile"]) for r in read] == [
        ("3", "oslo", "e40", 3),
        ("3", None, "e41", 3),
        ("3", None, "e42", 3),
    ]
