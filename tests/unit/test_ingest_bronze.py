"""Bronze file encodings read back, and the local lake's create-only atomic writes."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path

import fastavro
import pytest

from contract.bronze import AVRO_FIELD_NAMES, AVRO_SCHEMA, AVRO_SCHEMA_FILE
from functions.avro import capture_record
from functions.bronze import (
    decode_bronze,
    decode_jsonl,
    encode_bronze,
    encode_quarantine,
    file_name,
    format_of,
)
from functions.lake import LocalLake

RECORDS = [
    {
        "SequenceNumber": 5,
        "Offset": "5120",
        "EnqueuedTimeUtc": "2026-11-22T07:43:20.123Z",
        "SystemProperties": {"x-opt-sequence-number": "5"},
        "Properties": {"source": "sim"},
        "Body": '{"eventId":"a","note":"é ✓"}'.encode(),
        "PartitionId": "1",
        "PartitionKey": None,
        "EventId": "a",
        "IngestedTimeUtc": "2026-11-22T07:45:00.000Z",
    },
    {
        "SequenceNumber": 6,
        "Offset": "6144",
        "EnqueuedTimeUtc": "2026-11-22T07:43:21.000Z",
        "SystemProperties": {},
        "Properties": {},
        "Body": b'{"eventId":"b"}',
        "PartitionId": "1",
        "PartitionKey": "oslo",
        "EventId": "b",
        "IngestedTimeUtc": "2026-11-22T07:45:00.000Z",
    },
]
DOCUMENTED_FIELDS = [
    "SequenceNumber",
    "Offset",
    "EnqueuedTimeUtc",
    "SystemProperties",
    "Properties",
    "Body",
    "PartitionId",
    "PartitionKey",
    "EventId",
    "IngestedTimeUtc",
]


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "avro"])
def test_every_bronze_format_reads_back_the_same_records(fmt: str) -> None:
    data = encode_bronze(RECORDS, fmt, "p1-00000000000000000005-00000000000000000006")  # type: ignore[arg-type]

    assert decode_bronze(data, fmt) == RECORDS


def test_json_lines_carry_the_body_as_text_one_object_per_line() -> None:
    lines = encode_bronze(RECORDS, "jsonl").decode("utf-8").splitlines()  # type: ignore[arg-type]

    assert len(lines) == 2
    first = json.loads(lines[0])
    assert list(first) == [*DOCUMENTED_FIELDS, "RecordsInFile"] and first["RecordsInFile"] == 2
    assert first["Body"] == '{"eventId":"a","note":"é ✓"}'
    assert json.loads(lines[1])["PartitionKey"] == "oslo"


@pytest.mark.parametrize("fmt", ["jsonl", "avro"])
def test_a_file_holding_fewer_records_than_it_was_written_with_is_refused(fmt: str) -> None:
    three = [*RECORDS, dict(RECORDS[1], SequenceNumber=7, EventId="c")]
    written = encode_bronze(three, fmt, "p1")  # type: ignore[arg-type]
    # The same records written as a file of two: one record short of what each record says.
    short = encode_bronze(three[:2], fmt, "p1").replace(b'RecordsInFile":2', b'RecordsInFile":3')  # type: ignore[arg-type]
    if fmt == "avro":
        short = _avro_with_count(three[:2], 3)

    assert len(decode_bronze(written, fmt)) == 3
    with pytest.raises(ValueError, match="written with \\[3\\] records holds 2"):
        decode_bronze(short, fmt)


def _avro_with_count(records: list[dict[str, object]], count: int) -> bytes:
    from functions.avro import capture_record

    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(AVRO_SCHEMA), [capture_record(r, count) for r in records])
    return buffer.getvalue()


def test_gzip_file_is_plain_gzip_of_the_json_lines() -> None:
    data = encode_bronze(RECORDS, "jsonl.gz")  # type: ignore[arg-type]

    assert gzip.decompress(data) == encode_bronze(RECORDS, "jsonl")  # type: ignore[arg-type]


def test_avro_file_carries_the_bronze_schema_whose_file_copy_is_the_same() -> None:
    data = encode_bronze(RECORDS, "avro", "stem")  # type: ignore[arg-type]

    reader = fastavro.reader(io.BytesIO(data))
    assert json.loads(reader.metadata["avro.schema"]) == AVRO_SCHEMA
    assert json.loads(AVRO_SCHEMA_FILE.read_text()) == AVRO_SCHEMA  # no second, drifting copy
    assert [dict(r) for r in reader] == [capture_record(r, len(RECORDS)) for r in RECORDS]


def test_avro_records_start_with_event_hubs_captures_fields_then_the_pipelines() -> None:
    assert AVRO_SCHEMA["name"] == "EventData"
    assert AVRO_SCHEMA["namespace"] == "Microsoft.ServiceBus.Messaging"
    assert (
        *("SequenceNumber", "Offset", "EnqueuedTimeUtc", "SystemProperties", "Properties", "Body"),
        *(
            "EnqueuedTimeRfc3339",
            "PartitionId",
            "PartitionKey",
            "EventId",
            "IngestedTimeUtc",
            "RecordsInFile",
        ),
    ) == AVRO_FIELD_NAMES


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "avro"])
def test_same_batch_encodes_to_the_same_bytes(fmt: str) -> None:
    stem = "p1-00000000000000000005-00000000000000000006"

    assert encode_bronze(RECORDS, fmt, stem) == encode_bronze(RECORDS, fmt, stem)  # type: ignore[arg-type]


def test_quarantine_is_json_lines_with_property_values_as_text() -> None:
    record = {
        **{k: v for k, v in RECORDS[0].items() if k != "Body"},
        "Properties": {"source": "sim", "n": 3, "ok": True, "none": None},
        "Reasons": ["json"],
        "Body": "not json",
        "BodyEncoding": "utf8",
        "EventId": None,
    }

    [read] = decode_jsonl(encode_quarantine([record]))  # type: ignore[list-item]

    assert read == {**record, "Properties": {"source": "sim", "n": "3", "ok": "true", "none": "null"}}


def test_file_names_and_formats_round_trip() -> None:
    assert file_name("p0-1-2", "jsonl.gz") == "p0-1-2.jsonl.gz"
    assert format_of("x/p0-1-2.jsonl.gz") == "jsonl.gz"
    assert format_of("p0-1-2.avro") == "avro"
    with pytest.raises(ValueError):
        file_name("p0-1-2", "parquet")


def test_local_lake_creates_a_file_once_and_never_replaces_it(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)

    assert lake.create("bronze", "weather/a/f.jsonl", b"first") is True
    assert lake.create("bronze", "weather/a/f.jsonl", b"second") is False

    assert (tmp_path / "bronze" / "weather" / "a" / "f.jsonl").read_bytes() == b"first"
    assert lake.read("bronze", "weather/a/f.jsonl") == b"first"


def test_local_lake_leaves_no_temp_files_and_lists_only_finished_ones(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    lake.create("bronze", "weather/h=1/b.jsonl", b"x")
    lake.create("bronze", "weather/h=0/a.jsonl", b"y")
    lake.create("bronze", "weather/h=0/a.jsonl", b"z")

    assert sorted(p.name for p in (tmp_path / "bronze").rglob("*") if p.is_file()) == ["a.jsonl", "b.jsonl"]
    assert lake.list("bronze") == ["weather/h=0/a.jsonl", "weather/h=1/b.jsonl"]
    assert lake.list("bronze", "weather/h=1") == ["weather/h=1/b.jsonl"]
    assert lake.list("quarantine") == []


@pytest.mark.parametrize(
    ("container", "path"),
    [("bronze", "../escape.jsonl"), ("bronze", "/abs.jsonl"), ("bronze", "a//b"), ("Bronze!", "a.jsonl")],
)
def test_local_lake_refuses_paths_outside_the_lake(tmp_path: Path, container: str, path: str) -> None:
    with pytest.raises(ValueError):
        LocalLake(tmp_path).create(container, path, b"x")
