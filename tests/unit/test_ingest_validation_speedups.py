"""The contract's fast pattern checks (added for ingest throughput) agree with re.search exactly."""

from __future__ import annotations

import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

import contract
from contract.fast_path import PATTERN_CHECKS

TIME_PATTERN = contract.FIELDS_BY_NAME["eventTime"].pattern
LOCATION_PATTERN = contract.FIELDS_BY_NAME["location"].pattern
assert TIME_PATTERN is not None and LOCATION_PATTERN is not None
FAST = dict(PATTERN_CHECKS)

digits = st.sampled_from("0123456789٣²")  # ASCII digits plus two that are digits only to Unicode
time_like = st.lists(
    st.one_of(digits, digits, digits, st.sampled_from("-T:.Z+\n ztx")), min_size=0, max_size=36
).map("".join)
rfc3339 = st.builds(
    lambda date, frac, zone, tail: f"{date:%Y-%m-%dT%H:%M:%S}{frac}{zone}{tail}",
    st.datetimes(),
    st.sampled_from(["", ".1", ".123", ".123456789", ".1234567890"]),
    st.sampled_from(["Z", "+01:00", "-11:30", "+0100", "z", ""]),
    st.sampled_from(["", "\n", "\n\n", " "]),
)


@settings(max_examples=3000, deadline=None)
@given(st.one_of(time_like, rfc3339, st.text(max_size=40)))
@example("2026-11-22T07:43:20Z\n")
@example("2026-11-22T07:43:20.Z")
@example("٢٠٢٦-11-22T07:43:20Z")
@example("2026-11-22T07:43:20\ud800")
def test_fast_event_time_check_matches_the_schema_pattern(value: str) -> None:
    assert FAST["eventTime"](value) == (re.search(TIME_PATTERN, value) is not None)


@settings(max_examples=1000, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(" \t\n\u00a0\u2003\u3000\x1c\x85abc"), max_size=8) | st.text(max_size=8)
)
def test_fast_location_check_matches_the_schema_pattern(value: str) -> None:
    assert FAST["location"](value) == (re.search(LOCATION_PATTERN, value) is not None)


def test_lone_surrogate_in_event_time_is_a_utf8_reason_not_a_crash() -> None:
    raw = (
        b'{"eventId":"a","deviceId":"d","location":"Oslo","eventTime":"2026-11-22T07:43:20\\ud800",'
        b'"temperature":1,"humidity":1,"windSpeed":1,"windDirection":"N","precipitation":0,"conditions":"x"}'
    )

    assert contract.validate_event(raw).reasons == ("utf8:eventTime",)
