"""The ingest hot path's batch helpers give exactly what their one-at-a-time equivalents give."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import fastavro
import pytest
from azure.functions import meta
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import contract
from contract.bronze import AVRO_SCHEMA, rfc3339_ms
from functions.avro import capture_record, envelope_record
from functions.bronze import decode_bronze, encode_bronze
from functions.eventhub_trigger import columns_from_trigger
from functions.fast_columns import BatchTimeFormatter
from functions.records import BronzeBatch, string_map
from tests.fixtures.contract_cases import CASES, ENQUEUED, body_with, event_bodies
from tests.fixtures.event_batches import good_body, host_metadata, worker_batch

# ---------------------------------------------------------------------------------------------
# contract.validate_batch == contract.validate_event, body by body


def assert_batch_agrees(bodies: list[bytes], enqueued: list[datetime]) -> None:
    outcomes = contract.validate_batch(bodies, enqueued)
    assert len(outcomes) == len(bodies)
    for outcome, body, when in zip(outcomes, bodies, enqueued, strict=True):
        verdict = contract.validate_event(body, when)
        if isinstance(outcome, str):
            assert verdict.valid and verdict.event_id == outcome, body
        else:
            assert outcome == verdict, body


def test_batch_validation_gives_the_contract_tables_verdicts() -> None:
    bodies = [body for _, body, _ in CASES]
    assert_batch_agrees(bodies, [ENQUEUED] * len(bodies))
    reasons = [
        o if isinstance(o, str) else o.reasons
        for o in contract.validate_batch(bodies, [ENQUEUED] * len(bodies))
    ]
    assert [r if isinstance(r, tuple) else () for r in reasons] == [expected for _, _, expected in CASES]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bodies=st.lists(event_bodies(), min_size=1, max_size=12),
    offsets=st.lists(st.integers(-3600, 3600), min_size=12, max_size=12),
)
def test_batch_validation_agrees_with_validate_event_body_by_body(
    bodies: list[bytes], offsets: list[int]
) -> None:
    # Enqueued times spread around the bodies' event times, so that some are in the future.
    enqueued = [ENQUEUED + timedelta(seconds=s) for s in offsets[: len(bodies)]]
    assert_batch_agrees(bodies, enqueued)


def test_event_time_in_the_future_of_its_own_enqueued_time_only_is_caught_in_a_batch() -> None:
    body = body_with(eventTime="2026-11-22T08:00:00Z")
    early, late = ENQUEUED - timedelta(hours=1), ENQUEUED + timedelta(hours=1)
    outcomes = contract.validate_batch([body, body], [early, late])
    assert isinstance(outcomes[0], contract.Verdict) and outcomes[0].reasons == ("future_time",)
    assert outcomes[1] == json.loads(body)["eventId"]


def test_body_with_bad_utf8_in_an_unknown_field_is_refused_as_utf8() -> None:
    body = body_with(note="@@").replace(b"@@", b"\xff\xfe")
    assert contract.validate_event(body, ENQUEUED).reasons == ("utf8",)
    [outcome] = contract.validate_batch([body], [ENQUEUED])
    assert isinstance(outcome, contract.Verdict) and outcome.reasons == ("utf8",)


def test_batch_mixing_large_non_ascii_and_bad_utf8_bodies_agrees_with_validate_event() -> None:
    too_large = body_with(note="x" * contract.MAX_BODY_BYTES)
    non_ascii = body_with(location="Zürich", note="✓")
    bad_utf8 = body_with(note="@@").replace(b"@@", b"\xff")
    bodies = [body_with(), too_large, non_ascii, bad_utf8, b"not json", body_with()]

    assert_batch_agrees(bodies, [ENQUEUED] * len(bodies))
    outcomes = contract.validate_batch(bodies, [ENQUEUED] * len(bodies))
    assert [o if isinstance(o, str) else o.reasons for o in outcomes][1:5] == [
        ("too_large",),
        json.loads(non_ascii)["eventId"],
        ("utf8",),
        ("json",),
    ]


def test_validate_batch_needs_one_enqueued_time_per_body() -> None:
    with pytest.raises(ValueError, match="one enqueued time per body"):
        contract.validate_batch([body_with()], [])


# ---------------------------------------------------------------------------------------------
# The bronze Avro writer: what fastavro (an independent implementation) reads back

_text = st.text(max_size=20)
# Property values as a producer sends them (Avro keeps their types; JSON lines turn them to text).
_system_value = (
    _text
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.binary(max_size=8)
    | st.booleans()
)
_property_value = _system_value | st.none()
_utc_times = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
).map(rfc3339_ms)
# A batch: the partition id and ingestion time all records share (as the Function writes them),
# or None for each record's own; then the records.
DrawnBatch = tuple[str | None, str | None, list[dict[str, Any]]]


def _same(value: Any) -> Any:
    return value


def shared_or_own(batch: DrawnBatch) -> list[dict[str, Any]]:
    partition_id, ingested, drawn = batch
    return [
        dict(
            r,
            PartitionId=r["PartitionId"] if partition_id is None else partition_id,
            IngestedTimeUtc=r["IngestedTimeUtc"] if ingested is None else ingested,
        )
        for r in drawn
    ]


_batches = st.tuples(
    st.sampled_from([None, "", "0", "31"]),
    st.sampled_from([None, "2026-11-22T07:45:00.000Z", "é"]),
    st.lists(
        st.fixed_dictionaries(
            {
                "SequenceNumber": st.integers(-(2**63), 2**63 - 1)
                | st.integers(0, 2**40).map(lambda n: n * 1000),
                "Offset": _text,
                "EnqueuedTimeUtc": _utc_times,
                "SystemProperties": st.dictionaries(_text, _system_value, max_size=3),
                "Properties": st.sampled_from([{}, {"source": "sim"}])
                | st.dictionaries(_text, _property_value, max_size=3),
                "Body": st.binary(max_size=300),
                "PartitionId": st.sampled_from(["", "0", "31"]),
                "PartitionKey": st.none() | _text,
                "EventId": _text,
                "IngestedTimeUtc": st.sampled_from(["2026-11-22T07:45:00.000Z", "x", "é"]),
            }
        ),
        max_size=40,
    ),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_batches)
def test_avro_writer_output_reads_back_in_fastavro_as_written(batch: DrawnBatch) -> None:
    records = shared_or_own(batch)

    data = encode_bronze(records, "avro", "p0")  # type: ignore[arg-type]

    reader = fastavro.reader(io.BytesIO(data))
    assert reader.codec == "deflate"
    assert json.loads(reader.metadata["avro.schema"]) == AVRO_SCHEMA
    assert [dict(r) for r in reader] == [capture_record(r, len(records)) for r in records]
    assert decode_bronze(data, "avro") == [envelope_record(capture_record(r, len(records))) for r in records]


@pytest.mark.parametrize("size", [8191, 8192, 300_000])
def test_avro_lengths_past_the_lookup_table_read_back(size: int) -> None:
    records = [dict(good_record(1), Body=b"x" * size, EventId="e" * size, Offset="9" * size)]

    assert decode_bronze(encode_bronze(records, "avro", "p0"), "avro") == records  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_batches, st.sampled_from(["jsonl", "jsonl.gz"]))
def test_json_lines_writer_output_reads_back_as_written(batch: DrawnBatch, fmt: str) -> None:
    # JSON lines carry the body as text, so a bronze body is UTF-8 (the contract made sure).
    records = [dict(r, Body=r["Body"].decode("latin-1").encode()) for r in shared_or_own(batch)]

    data = encode_bronze(records, fmt, "p0")  # type: ignore[arg-type]

    as_text = {"SystemProperties": string_map, "Properties": string_map}
    assert decode_bronze(data, fmt) == [{k: as_text.get(k, _same)(v) for k, v in r.items()} for r in records]
    text = gzip.decompress(data) if fmt == "jsonl.gz" else data
    assert text.count(b"\n") == len(records)  # one line per record, whatever the text holds


@pytest.mark.parametrize("fmt", ["jsonl", "avro"])
def test_records_with_their_own_partition_and_ingestion_time_read_back(fmt: str) -> None:
    records = [
        good_record(1),
        dict(good_record(2), PartitionId="7", IngestedTimeUtc="2026-11-22T08:00:00.000Z"),
    ]

    assert decode_bronze(encode_bronze(records, fmt, "p0"), fmt) == records  # type: ignore[arg-type]


def test_bronze_batch_reads_as_the_records_it_was_made_of() -> None:
    records = [good_record(n) for n in range(3)]

    batch = BronzeBatch.from_records(records)  # type: ignore[arg-type]

    assert len(batch) == 3
    assert batch[1] == records[1]
    assert batch[1:] == records[1:]
    assert list(batch) == records
    assert batch == records
    assert batch != records[:2]


def test_avro_file_has_one_block_per_thousand_records() -> None:
    records = [good_record(n) for n in range(2500)]

    data = encode_bronze(records, "avro", "p0")  # type: ignore[arg-type]

    blocks = list(fastavro.block_reader(io.BytesIO(data)))
    assert [b.num_records for b in blocks] == [1000, 1000, 500]
    assert decode_bronze(data, "avro") == records


def fastavro_bytes(records: list[dict[str, Any]], stem: str) -> bytes:
    import hashlib

    buffer = io.BytesIO()
    marker = hashlib.md5(stem.encode(), usedforsecurity=False).digest()
    schema = fastavro.parse_schema(AVRO_SCHEMA)
    captured = [capture_record(r, len(records)) for r in records]
    fastavro.writer(buffer, schema, captured, codec="deflate", codec_compression_level=1, sync_marker=marker)
    return buffer.getvalue()


def good_record(n: int) -> dict[str, Any]:
    return {
        "SequenceNumber": n,
        "Offset": str(n * 300),
        "EnqueuedTimeUtc": "2026-11-22T07:43:20.123Z",
        "SystemProperties": {},
        "Properties": {"source": "sim"},
        "Body": good_body(f"e{n}"),
        "PartitionId": "0",
        "PartitionKey": None,
        "EventId": f"e{n}",
        "IngestedTimeUtc": "2026-11-22T07:45:00.000Z",
    }


def test_avro_file_reads_back_as_fastavros_own_file_of_the_same_records() -> None:
    records = [good_record(n) for n in range(500)]

    data = encode_bronze(records, "avro", "p0")  # type: ignore[arg-type]

    theirs = fastavro_bytes(records, "p0")
    assert list(fastavro.reader(io.BytesIO(data))) == list(fastavro.reader(io.BytesIO(theirs)))
    assert decode_bronze(data, "avro") == records
    assert data == encode_bronze(records, "avro", "p0")  # same batch, same bytes


def test_avro_record_fastavro_refuses_is_still_refused() -> None:
    record = dict(good_record(1), Offset=1)  # not a string

    with pytest.raises((TypeError, ValueError)):
        fastavro_bytes([record], "p")
    with pytest.raises((TypeError, ValueError)):
        encode_bronze([record], "avro", "p")  # type: ignore[list-item]


# ---------------------------------------------------------------------------------------------
# Per-batch time formatting == rfc3339_ms; trigger metadata == EventHubEvent.metadata


@given(
    first=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)),
    steps=st.lists(st.integers(-(10**11), 10**11), max_size=30),
)
def test_batch_time_formatter_formats_as_rfc3339_ms(first: datetime, steps: list[int]) -> None:
    low, high = datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    moments = [first] + [m for s in steps if low <= (m := first + timedelta(microseconds=s)) <= high]
    assert BatchTimeFormatter(first).format_all(moments) == [rfc3339_ms(m) for m in moments]


def test_columns_carry_the_metadata_propertys_application_properties_and_partition() -> None:
    properties = [{"source": "sim", "n": 3, "f": 1.5}, {}, {"flag": True, "list": [1, "a"], "none": None}]
    events = worker_batch([good_body("a"), b"not json", good_body("c")], properties=properties)
    partition, columns = columns_from_trigger(events)
    assert columns is not None
    assert partition == "0"
    assert list(columns.properties) == properties
    assert list(columns.sequence_numbers) == [0, 1, 2]


def test_batch_without_trigger_metadata_reads_as_empty() -> None:
    event = func.EventHubEvent(
        body=good_body("a"),
        trigger_metadata=None,
        enqueued_time=datetime(2026, 11, 22, 7, tzinfo=UTC),
        sequence_number=4,
        offset="2048",
    )
    partition, columns = columns_from_trigger([event])
    assert columns is not None
    assert partition is None
    assert (list(columns.properties), list(columns.system_properties)) == ([{}], [{}])
    assert (list(columns.sequence_numbers), list(columns.offsets)) == ([4], ["2048"])


def test_property_values_keep_the_type_the_producer_sent() -> None:
    events = worker_batch([good_body("a"), good_body("b")], properties=[{"n": 3, "s": "x"}, {"s": "y"}])
    _, columns = columns_from_trigger(events)
    assert columns is not None
    assert list(columns.properties) == [{"n": 3, "s": "x"}, {"s": "y"}]


def test_other_system_properties_are_kept_and_promoted_ones_dropped() -> None:
    events = worker_batch([good_body("a"), good_body("b")])
    _, columns = columns_from_trigger(events)
    assert columns is not None
    # worker_batch gives every event an IoT Hub device id; the rest are promoted fields.
    assert list(columns.system_properties) == [
        {"iothub-connection-device-id": "device-0"},
        {"iothub-connection-device-id": "device-1"},
    ]
    assert list(columns.offsets) == ["0", "512"]


def test_metadata_datum_that_is_not_json_is_read_as_the_library_reads_it() -> None:
    metadata = host_metadata([good_body("a")])
    metadata["PartitionContext"] = meta.Datum('{"PartitionId": "7"}', "string")
    events = [hub_event(good_body("a"), 1, [{}], metadata=metadata)]
    assert events[0].metadata is not None
    assert events[0].metadata["PartitionContext"] == '{"PartitionId": "7"}'
    assert columns_from_trigger(events)[0] == "7"


def hub_event(
    body: bytes,
    number: int,
    system: list[dict[str, Any]],
    key: str | None = None,
    metadata: dict[str, meta.Datum] | None = None,
) -> Any:
    """One event of a batch whose trigger metadata holds ``system`` (the worker's shape)."""
    if metadata is None:
        metadata = {"SystemPropertiesArray": meta.Datum(json.dumps(system), "json")}
    return func.EventHubEvent(
        body=body,
        trigger_metadata=metadata,
        enqueued_time=datetime(2026, 11, 22, 7, tzinfo=UTC),
        partition_key=key,
        sequence_number=number,
        offset=str(number),
    )


@pytest.mark.parametrize(
    ("system", "expected_keys", "expected_partition"),
    [
        # Promoted keys only, null partition keys: nothing taken from the array.
        ([{"SequenceNumber": 1, "PartitionKey": None}, {"x-opt-offset": 2}], [None, None], None),
        # A partition key only the array has: taken from it (as the full decoding does).
        ([{"PartitionKey": "oslo"}, {"PartitionKey": None}], ["oslo", None], None),
        # Another system property: kept, and the partition id read from it.
        ([{"PartitionId": "4"}, {"PartitionId": "4"}], [None, None], "4"),
    ],
)
def test_system_properties_array_gives_missing_keys_the_partition_id_and_other_properties(
    system: list[dict[str, Any]], expected_keys: list[str | None], expected_partition: str | None
) -> None:
    events = [hub_event(good_body("a"), 1, system), hub_event(good_body("b"), 2, system)]
    partition, columns = columns_from_trigger(events)
    assert columns is not None
    assert (partition, list(columns.partition_keys)) == (expected_partition, expected_keys)
    others = [{k: str(v) for k, v in s.items() if k == "PartitionId"} for s in system]
    assert list(columns.system_properties) == others


class _EventSubclass(func.EventHubEvent):
    """Not exactly azure-functions' class: its public properties are what the handler must read."""


def test_columns_of_a_subclassed_event_batch_equal_those_of_the_worker_batch() -> None:
    bodies, properties = [good_body("a"), good_body("b")], [{"k": "v"}, {}]
    events = worker_batch(bodies, first_seq=7, properties=properties)
    metadata = host_metadata(bodies, first_seq=7, properties=properties)
    copies = [
        _EventSubclass(
            body=e.get_body(),
            trigger_metadata=metadata,
            enqueued_time=e.enqueued_time,
            partition_key=e.partition_key,
            sequence_number=e.sequence_number,
            offset=e.offset,
        )
        for e in events
    ]

    assert columns_from_trigger(copies) == columns_from_trigger(events)
    _, columns = columns_from_trigger(events)
    assert columns is not None
    assert list(columns.sequence_numbers) == [7, 8]
    assert list(columns.offsets) == ["3584", "4096"]
    assert list(columns.properties) == [{"k": "v"}, {}]
