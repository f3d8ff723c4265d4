"""The event contract: a table of bodies and the reason codes they must earn."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import contract

ENQUEUED = datetime(2026, 11, 22, 7, 45, 0, tzinfo=UTC)

# Written out by hand (not by the producer), so the table tests the contract, not our generator.
VALID: dict[str, Any] = {
    "eventId": "6f1c1f4e-3a4b-4c2d-9e8f-0a1b2c3d4e5f",
    "deviceId": "stn-0001",
    "location": "Reykjavík",
    "eventTime": "2026-11-22T07:40:00.123Z",
    "temperature": -3.5,
    "humidity": 81.0,
    "windSpeed": 7.25,
    "windDirection": "NNW",
    "precipitation": 0.4,
    "conditions": "Snow",
    "deviceSeq": 42,
    "schemaVersion": 1,
}


def body_with(**changes: Any) -> bytes:
    """The valid body with fields replaced (a value of ``...`` removes the field)."""
    event = dict(VALID)
    for name, value in changes.items():
        if value is ...:
            del event[name]
        else:
            event[name] = value
    return json.dumps(event, ensure_ascii=False).encode("utf-8")


def raw_with(name: str, literal: str) -> bytes:
    """The valid body with one value replaced by a raw JSON literal (``NaN``, ``1e400``)."""
    event = dict(VALID, **{name: "@@"})
    return json.dumps(event).replace('"@@"', literal).encode("utf-8")


def padded_to(size: int) -> bytes:
    """A valid body (with an extra field) of exactly ``size`` bytes."""
    base = body_with(padding="")
    return body_with(padding="x" * (size - len(base)))


CASES: list[tuple[str, bytes, tuple[str, ...]]] = [
    ("valid", body_with(), ()),
    ("integers where numbers are expected", body_with(temperature=20, humidity=50, windSpeed=0), ()),
    ("optional fields may be absent", body_with(deviceSeq=..., schemaVersion=...), ()),
    ("unknown extra fields are allowed", body_with(firmware="1.2.3", battery={"volts": 3.7}), ()),
    ("offset +05:30", body_with(eventTime="2026-11-22T13:10:00+05:30"), ()),
    ("negative offset", body_with(eventTime="2026-11-22T02:40:00-05:00"), ()),
    ("nanosecond fraction", body_with(eventTime="2026-11-22T07:40:00.123456789Z"), ()),
    ("offset at the +18:00 limit", body_with(eventTime="2026-11-23T01:40:00+18:00"), ()),
    ("offset at the -18:00 limit", body_with(eventTime="2026-11-21T13:40:00-18:00"), ()),
    ("lowest temperature", body_with(temperature=-90), ()),
    ("highest temperature", body_with(temperature=60.0), ()),
    ("humidity bounds", body_with(humidity=100), ()),
    ("calm wind", body_with(windSpeed=0.0), ()),
    ("most precipitation", body_with(precipitation=500), ()),
    ("longest ids", body_with(eventId="e" * 64, deviceId="d" * 64, location="L" * 64), ()),
    ("body at the size limit", padded_to(contract.MAX_BODY_BYTES), ()),
    ("missing field", body_with(deviceId=...), ("missing:deviceId",)),
    ("missing temperature", body_with(temperature=...), ("missing:temperature",)),
    ("boolean number", body_with(windSpeed=True), ("type:windSpeed",)),
    ("numeric string", body_with(humidity="81.0"), ("type:humidity",)),
    ("null number", body_with(precipitation=None), ("type:precipitation",)),
    ("null string", body_with(location=None), ("type:location",)),
    ("NaN", raw_with("temperature", "NaN"), ("type:temperature",)),
    ("Infinity", raw_with("humidity", "Infinity"), ("type:humidity",)),
    ("-Infinity", raw_with("windSpeed", "-Infinity"), ("type:windSpeed",)),
    ("number too big for a double", raw_with("precipitation", "1e400"), ("type:precipitation",)),
    ("string where a number belongs", body_with(temperature=[1]), ("type:temperature",)),
    ("number where a string belongs", body_with(eventId=12345), ("type:eventId",)),
    ("colder than allowed", body_with(temperature=-90.01), ("range:temperature",)),
    ("hotter than allowed", body_with(temperature=60.5), ("range:temperature",)),
    ("humidity over 100", body_with(humidity=100.1), ("range:humidity",)),
    ("negative wind", body_with(windSpeed=-0.1), ("range:windSpeed",)),
    ("too much rain", body_with(precipitation=500.01), ("range:precipitation",)),
    ("negative deviceSeq", body_with(deviceSeq=-1), ("range:deviceSeq",)),
    ("fractional deviceSeq", body_with(deviceSeq=1.5), ("type:deviceSeq",)),
    ("schemaVersion 0", body_with(schemaVersion=0), ("range:schemaVersion",)),
    ("boolean schemaVersion", body_with(schemaVersion=True), ("type:schemaVersion",)),
    ("unknown compass point", body_with(windDirection="NORTH"), ("enum:windDirection",)),
    ("lowercase compass point", body_with(windDirection="nnw"), ("enum:windDirection",)),
    ("blank location", body_with(location="   "), ("pattern:location",)),
    ("empty location", body_with(location=""), ("length:location",)),
    ("empty eventId", body_with(eventId=""), ("length:eventId",)),
    ("eventId too long", body_with(eventId="e" * 65), ("length:eventId",)),
    ("conditions too long", body_with(conditions="c" * 65), ("length:conditions",)),
    ("lowercase t and z", body_with(eventTime="2026-11-22t07:40:00z"), ("format:eventTime",)),
    ("no offset", body_with(eventTime="2026-11-22T07:40:00"), ("format:eventTime",)),
    ("space separator", body_with(eventTime="2026-11-22 07:40:00Z"), ("format:eventTime",)),
    ("date only", body_with(eventTime="2026-11-22"), ("format:eventTime",)),
    ("month 13", body_with(eventTime="2026-13-01T00:00:00Z"), ("format:eventTime",)),
    # fromisoformat takes these; the contract (and Spark, Java) do not.
    ("offset past 18:00", body_with(eventTime="2026-11-23T01:41:00+18:01"), ("format:eventTime",)),
    ("offset +23:59", body_with(eventTime="2026-11-23T07:39:00+23:59"), ("format:eventTime",)),
    ("offset minute 60", body_with(eventTime="2026-11-22T09:40:00+01:60"), ("format:eventTime",)),
    ("year 0", body_with(eventTime="0000-01-01T00:00:00Z"), ("format:eventTime",)),
    ("a final newline", body_with(eventTime="2026-11-22T07:40:00Z\n"), ("format:eventTime",)),
    ("epoch number", body_with(eventTime=1795000000), ("type:eventTime",)),
    ("a lone surrogate escape", raw_with("eventId", '"\\ud800"'), ("utf8:eventId",)),
    ("a lone low surrogate, uppercase", raw_with("conditions", '"Snow \\uDC00"'), ("utf8:conditions",)),
    ("a surrogate pair escape is one character", raw_with("deviceId", '"\\ud83d\\ude00"'), ()),
    ("deviceSeq at the 64-bit limit", body_with(deviceSeq=2**63 - 1), ()),
    ("deviceSeq past 64 bits", body_with(deviceSeq=2**63), ("range:deviceSeq",)),
    ("schemaVersion past 32 bits", body_with(schemaVersion=2**31), ("range:schemaVersion",)),
    ("more than 5 minutes ahead", body_with(eventTime="2026-11-22T07:50:00.001Z"), ("future_time",)),
    ("ahead, in +05:30", body_with(eventTime="2026-11-22T13:20:01+05:30"), ("future_time",)),
    ("exactly 5 minutes ahead", body_with(eventTime="2026-11-22T07:50:00Z"), ()),
    (
        "several problems, in schema order",
        body_with(deviceId=..., humidity=101, windDirection="?"),
        ("missing:deviceId", "range:humidity", "enum:windDirection"),
    ),
    (
        "a bad field and a future time",
        body_with(temperature=99, eventTime="2027-01-01T00:00:00Z"),
        ("range:temperature", "future_time"),
    ),
    ("one byte over the size limit", padded_to(contract.MAX_BODY_BYTES + 1), ("too_large",)),
    ("not UTF-8", body_with(conditions="Snow").replace(b"Snow", b"Sn\xffw"), ("utf8",)),
    ("Latin-1 bytes", body_with(location="Reykjavík").replace("í".encode(), b"\xed"), ("utf8",)),
    ("truncated JSON", body_with()[:-10], ("json",)),
    ("empty body", b"", ("json",)),
    ("trailing garbage", body_with() + b"}", ("json",)),
    ("array", b"[" + body_with() + b"]", ("not_object",)),
    ("string", b'"hello"', ("not_object",)),
    ("number", b"42", ("not_object",)),
    ("null", b"null", ("not_object",)),
]


@pytest.mark.parametrize(("body", "reasons"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_body_gets_exactly_the_reasons_in_the_table(body: bytes, reasons: tuple[str, ...]) -> None:
    verdict = contract.validate_event(body, ENQUEUED)
    assert verdict.reasons == reasons
    assert verdict.valid == (not reasons)


# The size limit is checked once, before either path; the slow path sees only bodies within it.
_WITHIN_LIMIT = [c for c in CASES if c[2] != ("too_large",)]


@pytest.mark.parametrize(
    ("body", "reasons"), [c[1:] for c in _WITHIN_LIMIT], ids=[c[0] for c in _WITHIN_LIMIT]
)
def test_slow_path_gives_the_same_reasons_as_the_table(body: bytes, reasons: tuple[str, ...]) -> None:
    assert contract._slow_verdict(body, ENQUEUED).reasons == reasons


def test_valid_verdict_carries_event_id_and_parsed_time() -> None:
    verdict = contract.validate_event(body_with(eventTime="2026-11-22T13:10:00+05:30"), ENQUEUED)
    assert verdict.event_id == VALID["eventId"]
    assert verdict.event_time == datetime(2026, 11, 22, 7, 40, tzinfo=UTC)


def test_future_time_is_judged_against_now_without_an_enqueued_time() -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    later = (datetime.now(UTC) + timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert contract.validate_event(body_with(eventTime=soon)).reasons == ()
    assert contract.validate_event(body_with(eventTime=later)).reasons == ("future_time",)


def test_fields_follow_the_schema_file() -> None:
    schema = json.loads(contract.SCHEMA_PATH.read_text(encoding="utf-8"))
    assert [f.name for f in contract.FIELDS] == list(schema["properties"])
    assert {f.name for f in contract.FIELDS if f.required} == set(schema["required"])
    assert contract.FIELDS_BY_NAME["windSpeed"].column == "wind_speed"
    assert contract.FIELDS_BY_NAME["deviceSeq"].column == "device_seq"
    assert contract.MAX_BODY_BYTES == 256 * 1024


# ---------------------------------------------------------------------------------------------
# The fast path only ever says "valid"; whenever it does, the slow path must agree, and for every
# other body the answer is the slow path's. Hypothesis mixes valid values with every kind of bad.

_valid_values: dict[str, st.SearchStrategy[Any]] = {
    "eventId": st.text(min_size=1, max_size=64),
    "deviceId": st.text(min_size=1, max_size=64),
    "location": st.text(min_size=1, max_size=64),
    "eventTime": st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
    "temperature": st.floats(-90, 60) | st.integers(-90, 60),
    "humidity": st.floats(0, 100) | st.integers(0, 100),
    "windSpeed": st.floats(0, 120),
    "windDirection": st.sampled_from(contract.FIELDS_BY_NAME["windDirection"].enum or ("N",)),
    "precipitation": st.floats(0, 500),
    "conditions": st.text(min_size=1, max_size=64),
    "deviceSeq": st.integers(0, 2**63),
    "schemaVersion": st.integers(1, 5),
}
_anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=70),
    st.lists(st.integers(), max_size=2),
    st.sampled_from(["12.5", "", " ", "NaN", "2026-11-22T07:40:00", "2026-11-22T07:40:00+05:30"]),
)


@st.composite
def event_bodies(draw: st.DrawFn) -> bytes:
    event: dict[str, Any] = {}
    for name, valid in _valid_values.items():
        choice = draw(st.integers(0, 9))
        if choice == 0:
            continue  # missing
        event[name] = draw(_anything) if choice == 1 else draw(valid)
    if draw(st.booleans()):
        event[draw(st.text(max_size=8))] = draw(_anything)
    text = json.dumps(event, ensure_ascii=draw(st.booleans()))
    if draw(st.integers(0, 9)) == 0:
        text = text.replace(
            json.dumps(event.get("humidity", 0.5)), draw(st.sampled_from(["NaN", "1e999"])), 1
        )
    return text.encode("utf-8")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=event_bodies())
def test_fast_path_and_slow_path_agree(body: bytes) -> None:
    fast = contract.validate_event(body, ENQUEUED)
    slow = contract._slow_verdict(body, ENQUEUED)
    assert fast.reasons == slow.reasons
    assert fast.event_id == slow.event_id
    assert fast.event_time == slow.event_time


def test_parse_batch_gives_validate_batchs_outcomes_and_each_valid_bodys_values() -> None:
    bodies = [
        body_with(),
        raw_with("firmware", '{"v": [1, 2.50, 1e3]}'),  # an unknown field: the slow path reads it
        raw_with("deviceId", '"\\ud83d\\ude00"'),  # valid by the slow path's word
        body_with(humidity=101),
        body_with(eventTime="2026-11-22T13:10:00+05:30", schemaVersion=...),
        b"not json",
    ]
    enqueued = [ENQUEUED] * len(bodies)
    parsed = contract.parse_batch(bodies, enqueued)
    verdicts = [contract.validate_event(body, ENQUEUED) for body in bodies]
    assert parsed.outcomes == [v.event_id if v.valid else v for v in verdicts]
    assert [i for i, o in enumerate(parsed.outcomes) if isinstance(o, str)] == [0, 1, 2, 4]
    assert parsed.values["humidity"] == [
        VALID["humidity"],
        81,
        VALID["humidity"],
        None,
        VALID["humidity"],
        None,
    ]
    assert parsed.values["deviceId"][2] == "\U0001f600"
    assert parsed.values["schemaVersion"][4] == 1  # the schema's default
    assert parsed.event_times[4] == datetime(2026, 11, 22, 7, 40, tzinfo=UTC)
    assert parsed.event_times[3] is None and parsed.values["eventId"][5] is None
    # Compact, with each value spelled as the body spells it.
    assert parsed.unknown_fields == [None, '{"firmware":{"v":[1,2.50,1e3]}}', None, None, None, None]


def test_parse_batch_keeps_the_values_of_a_batch_that_decodes_whole_but_has_a_future_event() -> None:
    # Every body decodes, one is too far ahead of its enqueued time: the valid ones keep their
    # values (the outcome list once doubled as the decoded events and was overwritten with ids).
    future = (ENQUEUED + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    bodies = [body_with(eventId="a"), body_with(eventId="b", eventTime=future), body_with(eventId="c")]

    parsed = contract.parse_batch(bodies, [ENQUEUED] * 3)

    assert parsed.outcomes[0] == "a" and parsed.outcomes[2] == "c"
    assert parsed.outcomes[1].reasons == ("future_time",)  # type: ignore[union-attr]
    assert parsed.values["eventId"] == ["a", None, "c"]
    assert parsed.values["humidity"] == [VALID["humidity"], None, VALID["humidity"]]
