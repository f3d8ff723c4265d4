"""Event contract v1, the rules people read: fields, ranges and reason codes.

Every rule comes from ``event.v1.schema.json``: :data:`FIELDS` holds one :class:`FieldRule` per
property as the schema states it. The producer, the ingest Function's validator
(:mod:`contract.validation`) and the Spark silver schema all derive from here; nothing else
spells out a rule. Reason codes are stable and machine-readable (docs/contract.md):

* whole body: ``too_large``, ``utf8``, ``json``, ``not_object``
* per field, ``<problem>:<field>``: ``missing``, ``type`` (wrong JSON type, null, boolean,
  NaN/Infinity), ``range``, ``length``, ``enum``, ``pattern``, ``format``, ``utf8`` (a string
  with a lone surrogate escape)
* context: ``future_time`` (eventTime more than the allowed skew after the enqueued time)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("event.v1.schema.json")
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
SCHEMA_VERSION = 1

MAX_BODY_BYTES: int = SCHEMA["x-maxBodyBytes"]

# --- reason codes -----------------------------------------------------------------------------------

# The whole body.
TOO_LARGE = "too_large"  # over MAX_BODY_BYTES (checked first, on the raw bytes)
BODY_NOT_UTF8 = "utf8"
BODY_NOT_JSON = "json"
BODY_NOT_OBJECT = "not_object"
# One field: the reason code is "<problem>:<field>" (field_reason).
MISSING = "missing"
WRONG_TYPE = "type"
OUT_OF_RANGE = "range"
BAD_LENGTH = "length"
NOT_IN_ENUM = "enum"
PATTERN_MISMATCH = "pattern"
BAD_FORMAT = "format"
FIELD_NOT_UTF8 = "utf8"
# The event in its context.
FUTURE_TIME = "future_time"  # eventTime too far after the enqueued time


def field_reason(problem: str, field: str) -> str:
    """The reason code of one field's problem (``range:temperature``)."""
    return f"{problem}:{field}"


# --- fields -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRule:
    """One property of the contract, as the schema states it."""

    name: str
    type: str  # JSON Schema type: "string", "number" or "integer"
    required: bool
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    enum: tuple[str, ...] | None = None
    pattern: str | None = None
    format: str | None = None
    default: Any = None
    max_future_skew: timedelta | None = None
    max_utc_offset_minutes: int | None = None

    @property
    def column(self) -> str:
        """The snake_case column name used in silver, gold and SQL (``windSpeed`` -> ``wind_speed``)."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.name).lower()


def _rules(schema: dict[str, Any]) -> tuple[FieldRule, ...]:
    required = set(schema["required"])
    rules = []
    for name, spec in schema["properties"].items():
        skew = spec.get("x-maxFutureSkewSeconds")
        rules.append(
            FieldRule(
                name=name,
                type=spec["type"],
                required=name in required,
                minimum=spec.get("minimum"),
                maximum=spec.get("maximum"),
                min_length=spec.get("minLength"),
                max_length=spec.get("maxLength"),
                enum=tuple(spec["enum"]) if "enum" in spec else None,
                pattern=spec.get("pattern"),
                format=spec.get("format"),
                default=spec.get("default"),
                max_future_skew=timedelta(seconds=skew) if skew is not None else None,
                max_utc_offset_minutes=spec.get("x-maxUtcOffsetMinutes"),
            )
        )
    return tuple(rules)


FIELDS: tuple[FieldRule, ...] = _rules(SCHEMA)
FIELDS_BY_NAME: dict[str, FieldRule] = {f.name: f for f in FIELDS}
#: The one date-time field: the event's time, which the future-time rule judges.
TIME_FIELD: FieldRule = next(f for f in FIELDS if f.format == "date-time")
EVENT_TIME_FIELD: str = TIME_FIELD.name
# The event's identity: what the envelope, quarantine and silver's deduplication key carry.
EVENT_ID_FIELD = "eventId"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of validating one body: valid when ``reasons`` is empty."""

    reasons: tuple[str, ...]
    event_id: str | None = None
    event_time: datetime | None = None

    @property
    def valid(self) -> bool:
        return not self.reasons
