"""The event contract: a table of bodies and the reason codes they must earn."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings

import contract
from tests.fixtures.contract_cases import CASES, ENQUEUED, VALID, body_with, event_bodies, raw_with


@pytest.mark.parametrize(("body", "reasons"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_body_gets_exactly_the_reasons_in_the_table(body: bytes, reasons: tuple[str, ...]) -> None:
    verdict = contract.validate_event(body, ENQUEUED)
    assert verdict.reasons == reasons
    assert verdict.valid == (not reasons)


def reasons_of(outcome: str | contract.Verdict) -> tuple[str, ...]:
    """A batch outcome's reasons: none for a valid body (its eventId), else its verdict's."""
    return () if isinstance(outcome, str) else outcome.reasons


@pytest.mark.parametrize(("body", "reasons"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_fast_path_gives_a_body_alone_the_reasons_in_the_table(body: bytes, reasons: tuple[str, ...]) -> None:
    [validated] = contract.validate_batch([body], [ENQUEUED])
    [parsed] = contract.parse_batch([body], [ENQUEUED]).outcomes
    assert reasons_of(validated) == reasons
    assert reasons_of(parsed) == reasons


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
# The fast path (contract.fast_path) only ever says "valid"; whenever it does, the plain path
# (contract.validate_event) must agree, and for every other body the answer is the plain path's.
# Hypothesis mixes valid values with every kind of bad.


# The fast path (contract.fast_path) only ever says "valid"; whenever it does, the plain path
# (contract.validate_event) must agree, and for every other body the answer is the plain path's.
# Hypothesis (tests/fixtures/contract_cases.event_bodies) mixes valid values with every kind of bad.
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=event_bodies())
def test_fast_path_and_plain_path_agree(body: bytes) -> None:
    plain = contract.validate_event(body, ENQUEUED)
    parsed = contract.parse_batch([body], [ENQUEUED])
    [fast] = parsed.outcomes
    [validated] = contract.validate_batch([body], [ENQUEUED])
    assert reasons_of(fast) == reasons_of(validated) == plain.reasons
    assert (fast if isinstance(fast, str) else fast.event_id) == plain.event_id
    assert (validated if isinstance(validated, str) else validated.event_id) == plain.event_id
    if plain.valid:
        assert parsed.event_times == [plain.event_time]
    else:
        assert fast == validated == plain


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
