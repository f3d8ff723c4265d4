"""One body against the contract, rule by rule: the plain statement of every check.

:func:`validate_event` decodes with the standard library and checks every rule of
:mod:`contract.event`, naming every reason a body earns. It is the reference: the batch validators
in :mod:`contract.fast_path` (what the ingest Function and the Spark job run) give exactly its
verdicts, faster; the property tests in tests/unit/test_contract.py and
tests/unit/test_ingest_batch_paths.py prove it on generated bodies.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from contract.event import (
    BAD_FORMAT,
    BAD_LENGTH,
    BODY_NOT_JSON,
    BODY_NOT_OBJECT,
    BODY_NOT_UTF8,
    EVENT_ID_FIELD,
    EVENT_TIME_FIELD,
    FIELD_NOT_UTF8,
    FIELDS,
    FUTURE_TIME,
    MAX_BODY_BYTES,
    MISSING,
    NOT_IN_ENUM,
    OUT_OF_RANGE,
    PATTERN_MISMATCH,
    TIME_FIELD,
    TOO_LARGE,
    WRONG_TYPE,
    FieldRule,
    Verdict,
    field_reason,
)


def validate_event(body: bytes, enqueued_time: datetime | None = None) -> Verdict:
    """Validate one raw event body against the contract.

    Args:
        body: The event body exactly as received.
        enqueued_time: When the hub accepted the event (timezone-aware); the future-time rule
            is checked against it, or against now when it is None.

    Returns:
        The verdict: no reasons when valid, else every reason code found, in schema order.
    """
    if len(body) > MAX_BODY_BYTES:
        return Verdict((TOO_LARGE,))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Verdict((BODY_NOT_UTF8,))
    try:
        obj = json.loads(text, parse_constant=_NonFinite)
    except (ValueError, RecursionError):
        return Verdict((BODY_NOT_JSON,))
    if not isinstance(obj, dict):
        return Verdict((BODY_NOT_OBJECT,))
    reasons = list(_field_reasons(obj))
    event_id = obj.get(EVENT_ID_FIELD) if isinstance(obj.get(EVENT_ID_FIELD), str) else None
    event_time = None
    if not any(reason.endswith(f":{EVENT_TIME_FIELD}") for reason in reasons):  # its time is readable
        event_time = datetime.fromisoformat(obj[EVENT_TIME_FIELD])
        if is_future(event_time, enqueued_time):
            reasons.append(FUTURE_TIME)
    return Verdict(tuple(reasons), event_id, event_time)


class _NonFinite(float):
    """NaN/Infinity literals decode to this so they fail as ``type:<field>``, not as ``json``."""


def _field_reasons(obj: dict[str, Any]) -> Iterator[str]:
    for rule in FIELDS:
        if rule.name not in obj:
            if rule.required:
                yield field_reason(MISSING, rule.name)
            continue
        problem = check_value(rule, obj[rule.name])
        if problem:
            yield field_reason(problem, rule.name)


def check_value(rule: FieldRule, value: Any) -> str | None:
    """The problem (``type``, ``range``, ...) with one value of a field, or None when it is valid."""
    if rule.type == "string":
        if not isinstance(value, str):
            return WRONG_TYPE
        if not value.isascii() and not utf8_text(value):
            return FIELD_NOT_UTF8
        if rule.format == "date-time":
            if rule.pattern and not re.search(rule.pattern, value):
                return BAD_FORMAT
            try:
                datetime.fromisoformat(value)
            except ValueError:
                return BAD_FORMAT
            return BAD_FORMAT if rule.pattern and not offset_within_limit(value) else None
        if (rule.min_length is not None and len(value) < rule.min_length) or (
            rule.max_length is not None and len(value) > rule.max_length
        ):
            return BAD_LENGTH
        if rule.enum is not None and value not in rule.enum:
            return NOT_IN_ENUM
        if rule.pattern is not None and not re.search(rule.pattern, value):
            return PATTERN_MISMATCH
        return None
    if isinstance(value, (bool, _NonFinite)):
        return WRONG_TYPE
    if rule.type == "integer" and not isinstance(value, int):
        return WRONG_TYPE
    if rule.type == "number":
        if not isinstance(value, (int, float)):
            return WRONG_TYPE
        if isinstance(value, float) and not math.isfinite(value):
            return WRONG_TYPE
    if (rule.minimum is not None and value < rule.minimum) or (
        rule.maximum is not None and value > rule.maximum
    ):
        return OUT_OF_RANGE
    return None


def utf8_text(value: str) -> bool:
    """Whether UTF-8 can hold the string: not when a ``\\uD800``-style escape left a lone surrogate."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def offset_within_limit(text: str) -> bool:
    """Whether a time's offset is within the contract's range, minutes 00-59 (``fromisoformat``
    takes ``+23:59`` and ``+01:60``; Java's and Spark's times stop at 18:00 and 59 minutes).
    Only for texts that matched the pattern: they end in ``Z`` or ``±hh:mm``."""
    limit = TIME_FIELD.max_utc_offset_minutes
    if limit is None or text.endswith("Z"):
        return True
    hours, minutes = int(text[-5:-3]), int(text[-2:])
    return minutes < 60 and hours * 60 + minutes <= limit


def is_future(event_time: datetime, enqueued_time: datetime | None) -> bool:
    """Whether the event's time is more than the allowed skew after its enqueued time (or now)."""
    skew = TIME_FIELD.max_future_skew
    if skew is None:
        return False
    reference = enqueued_time or datetime.now(UTC)
    return event_time - reference > skew
