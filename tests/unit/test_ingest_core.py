"""The ingest Function's pure core: reason codes, the valid/quarantine split, file names."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract.bronze import rfc3339_ms
from contract.lake_layout import batch_folder
from functions.ingest_core import (
    DEFAULT_HUB_TAG,
    EventColumns,
    HubEvent,
    batch_name,
    holds_events_of,
    hub_tag,
    original_body,
    process_batch,
)
from functions.records import string_map


def file_stem(
    partition_id: str | None, events: Sequence[HubEvent] | EventColumns, hub: str = DEFAULT_HUB_TAG
) -> str:
    """The stem of a batch's file names: ``p<partition>-<first>-<last>-<time>-<hub>``."""
    return batch_name(partition_id, events, hub=hub).stem


ENQUEUED = datetime(2026, 11, 22, 7, 43, 20, 123456, tzinfo=UTC)
INGESTED = datetime(2026, 11, 22, 7, 45, 0, tzinfo=UTC)
REQUIRED = [
    "eventId",
    "deviceId",
    "location",
    "eventTime",
    "temperature",
    "humidity",
    "windSpeed",
    "windDirection",
    "precipitation",
    "conditions",
]


def good(**changes: object) -> dict[str, object]:
    event: dict[str, object] = {
        "eventId": "3f1c2a9e-0000-4000-8000-000000000001",
        "deviceId": "station-0001",
        "location": "Oslo",
        "eventTime": "2026-11-22T07:43:00.000Z",
        "temperature": 4.5,
        "humidity": 81.0,
        "windSpeed": 3.2,
        "windDirection": "NE",
        "precipitation": 0.4,
        "conditions": "Light rain",
    }
    event.update(changes)
    return event


def body(event: dict[str, object]) -> bytes:
    return json.dumps(event).encode("utf-8")


def hub_event(raw: bytes, seq: int = 0, **kw: object) -> HubEvent:
    return HubEvent(
        body=raw,
        sequence_number=seq,
        offset=str(seq * 1000),
        enqueued_time=kw.pop("enqueued_time", ENQUEUED),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


BAD_BODIES = [
    pytest.param(b"", ["json"], id="empty"),
    pytest.param(b"not json", ["json"], id="not-json"),
    pytest.param(b"\xff\xfe\x00{", ["utf8"], id="not-utf8"),
    pytest.param(b"[1, 2, 3]", ["not_object"], id="array"),
    pytest.param(b"null", ["not_object"], id="null"),
    pytest.param(b'{"eventId": "only-id"}', [f"missing:{f}" for f in REQUIRED[1:]], id="only-id"),
    pytest.param(body(good(temperature=999)), ["range:temperature"], id="temperature-range"),
    pytest.param(body(good(temperature="warm")), ["type:temperature"], id="temperature-type"),
    pytest.param(body(good(humidity=True)), ["type:humidity"], id="boolean-number"),
    pytest.param(body(good(windDirection="UP")), ["enum:windDirection"], id="direction-enum"),
    pytest.param(body(good(location="   ")), ["pattern:location"], id="blank-location"),
    pytest.param(body(good(deviceId="")), ["length:deviceId"], id="empty-device"),
    pytest.param(body(good(eventTime="yesterday")), ["format:eventTime"], id="time-format"),
    pytest.param(body(good(eventTime="2026-11-22T08:43:20Z")), ["future_time"], id="an-hour-after-enqueued"),
    pytest.param(
        body(good(temperature=-100, windSpeed=-1)), ["range:temperature", "range:windSpeed"], id="two-ranges"
    ),
    pytest.param(body(good(conditions="x" * 300_000)), ["too_large"], id="too-large"),
]


@pytest.mark.parametrize(("raw", "reasons"), BAD_BODIES)
def test_bad_body_is_quarantined_with_its_reason_codes(raw: bytes, reasons: list[str]) -> None:
    result = process_batch([hub_event(raw)], "0", "weather", INGESTED)

    assert result.bronze == []
    [record] = result.quarantine
    assert record["Reasons"] == reasons
    assert original_body(record) == raw
    assert dict(result.reasons) == {r: 1 for r in reasons}


def test_non_utf8_body_is_kept_as_base64() -> None:
    raw = b"\xff\xfe\x00{"
    [record] = process_batch([hub_event(raw)], "0", "weather", INGESTED).quarantine

    assert record["BodyEncoding"] == "base64"
    assert record["Body"] == base64.b64encode(raw).decode()
    assert record["EventId"] is None


def test_quarantined_body_with_an_event_id_keeps_it() -> None:
    [record] = process_batch([hub_event(body(good(temperature=999)))], "0", "weather", INGESTED).quarantine

    assert record["EventId"] == "3f1c2a9e-0000-4000-8000-000000000001"
    assert record["BodyEncoding"] == "utf8"


def test_valid_event_gets_the_documented_bronze_envelope() -> None:
    raw = body(good())
    event = hub_event(raw, seq=42, partition_key="oslo", properties={"source": "sim"}, system_properties={})

    result = process_batch([event], "3", "weather", INGESTED)

    assert result.quarantine == []
    assert result.bronze == [
        {
            "SequenceNumber": 42,
            "Offset": "42000",
            "EnqueuedTimeUtc": "2026-11-22T07:43:20.123Z",
            "SystemProperties": {},
            "Properties": {"source": "sim"},
            "Body": raw,
            "PartitionId": "3",
            "PartitionKey": "oslo",
            "EventId": "3f1c2a9e-0000-4000-8000-000000000001",
            "IngestedTimeUtc": "2026-11-22T07:45:00.000Z",
        }
    ]


def test_files_are_named_from_partition_sequence_numbers_first_enqueued_time_and_hub() -> None:
    events = [hub_event(body(good()), seq=s) for s in (7, 8, 9)]
    tag = hashlib.sha256(b"ns.servicebus.windows.net/weather").hexdigest()[:8]

    result = process_batch(events, "2", "weather", INGESTED, tag)

    assert result.file_stem == f"p2-00000000000000000007-00000000000000000009-20261122T074320123Z-{tag}"
    assert result.folder == "weather/ingest_date=2026-11-22/hour=07"


def test_a_recreated_hubs_batch_with_the_same_sequence_numbers_gets_another_name() -> None:
    before = [hub_event(body(good()), seq=0)]
    recreated = [hub_event(body(good(eventId="new")), seq=0, enqueued_time=ENQUEUED + timedelta(minutes=3))]

    assert file_stem("0", before) != file_stem("0", recreated)


def test_two_hubs_batches_with_the_same_numbers_and_times_get_different_names() -> None:
    events = [hub_event(body(good()), seq=0)]

    assert file_stem("0", events, hub_tag("weather")) != file_stem("0", events, hub_tag("weather2"))


def test_a_replayed_batch_gets_the_same_name() -> None:
    events = [hub_event(body(good()), seq=s) for s in (3, 4)]
    replay = [hub_event(body(good()), seq=s) for s in (3, 4)]

    assert file_stem("1", events, "abcd0123") == file_stem("1", replay, "abcd0123")


def test_hub_tag_is_namespace_and_hub_name_from_settings_or_connection_string() -> None:
    expected = hashlib.sha256(b"ns.servicebus.windows.net/weather").hexdigest()[:8]
    connection = "Endpoint=sb://NS.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s"

    assert hub_tag("weather", "ns.servicebus.windows.net") == expected
    assert hub_tag("Weather", "", connection) == expected  # names are case-insensitive
    assert hub_tag("other", "", connection + ";EntityPath=weather") == expected  # EntityPath names the hub
    assert hub_tag("weather") == hashlib.sha256(b"/weather").hexdigest()[:8]  # the embedded hub


def test_a_file_holding_this_batchs_events_is_a_replay_and_one_holding_others_is_not() -> None:
    events = [hub_event(body(good(eventId=f"e{s}")), seq=s) for s in (5, 6)]
    columns = EventColumns.from_events(events)
    result = process_batch(events, "0", "weather", INGESTED)
    replayed = [dict(r) for r in result.bronze]

    assert holds_events_of(replayed, columns)
    assert holds_events_of(replayed[:1], columns)  # a subset: the split moved, still a replay
    other = [dict(replayed[0], Body=body(good(eventId="other")))]
    assert not holds_events_of(other, columns)
    later = [dict(replayed[0], EnqueuedTimeUtc="2026-11-22T08:00:00.000Z")]
    assert not holds_events_of(later, columns)
    assert not holds_events_of([], columns)


def test_folder_comes_from_the_first_events_enqueued_time_not_the_clock() -> None:
    first = hub_event(body(good()), seq=0, enqueued_time=datetime(2026, 1, 31, 23, 59, 59, tzinfo=UTC))
    second = hub_event(body(good()), seq=1, enqueued_time=datetime(2026, 2, 1, 0, 0, 1, tzinfo=UTC))

    assert process_batch([first, second], "0", "s", INGESTED).folder == "s/ingest_date=2026-01-31/hour=23"


def test_folder_hour_is_utc_whatever_the_time_zone_of_the_enqueued_time() -> None:
    local = datetime(2026, 11, 22, 1, 30, tzinfo=timezone(timedelta(hours=-8)))

    assert batch_folder("weather", local) == "weather/ingest_date=2026-11-22/hour=09"


def test_unknown_partition_names_differ_for_two_partitions_with_the_same_sequence_numbers() -> None:
    a = [hub_event(body(good(eventId="a")), seq=0), hub_event(body(good(eventId="b")), seq=1)]
    b = [hub_event(body(good(eventId="c")), seq=0), hub_event(body(good(eventId="d")), seq=1)]

    name_a, name_b = file_stem(None, a), file_stem(None, b)

    assert name_a != name_b
    assert name_a.startswith("px")
    assert "-00000000000000000000-00000000000000000001-" in name_a
    assert file_stem(None, a) == name_a  # a replay of the same batch gets the same name


def test_partition_id_unsafe_for_a_file_name_is_not_used_in_it() -> None:
    events = [hub_event(body(good()))]

    assert "/" not in file_stem("../0", events)
    assert file_stem("../0", events).startswith("px")


def test_rfc3339_ms_truncates_to_milliseconds_in_utc() -> None:
    assert rfc3339_ms(datetime(2026, 11, 22, 7, 43, 20, 999999, tzinfo=UTC)) == "2026-11-22T07:43:20.999Z"
    assert rfc3339_ms(datetime(2026, 11, 22, 7, 43, 20)) == "2026-11-22T07:43:20.000Z"
    plus_two = datetime(2026, 11, 22, 9, 0, 0, 5000, tzinfo=timezone(timedelta(hours=2)))
    assert rfc3339_ms(plus_two) == "2026-11-22T07:00:00.005Z"


def test_property_values_become_strings() -> None:
    assert string_map({"n": 3, "f": 1.5, "b": True, "s": "x", "raw": b"ab", "none": None}) == {
        "n": "3",
        "f": "1.5",
        "b": "true",
        "s": "x",
        "raw": "ab",
        "none": "null",
    }
    assert string_map(None) == {}


def test_empty_batch_is_refused() -> None:
    with pytest.raises(ValueError):
        process_batch([], "0", "weather", INGESTED)


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({k: json_values for k in REQUIRED[:5]}).map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda t, h, d: body(good(temperature=t, humidity=h, windDirection=d)),
        st.floats(-200, 200) | st.integers(-200, 200),
        st.floats(-10, 110, allow_nan=False),
        st.sampled_from(["N", "S", "X", ""]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(bodies, min_size=1, max_size=20))
def test_any_bodies_land_exactly_once_in_bronze_or_quarantine(raws: list[bytes]) -> None:
    events = [hub_event(raw, seq=i) for i, raw in enumerate(raws)]

    result = process_batch(events, "1", "weather", INGESTED)

    placed = [r["SequenceNumber"] for r in result.bronze] + [r["SequenceNumber"] for r in result.quarantine]
    assert sorted(placed) == list(range(len(raws)))
    for record in result.bronze:
        assert record["Body"] == raws[record["SequenceNumber"]]
    for record in result.quarantine:
        assert record["Reasons"]
        assert original_body(record) == raws[record["SequenceNumber"]]
    assert sum(result.reasons.values()) >= len(result.quarantine)
