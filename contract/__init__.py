"""Event contract v1: every rule comes from ``event.v1.schema.json``.

The producer, the ingest Function's validator and the Spark silver schema all derive from
``SCHEMA``/``FIELDS`` here; nothing else spells out a rule. Reason codes are stable and
machine-readable (see docs/contract.md):

* whole body: ``too_large``, ``utf8``, ``json``, ``not_object``
* per field: ``missing:<field>``, ``type:<field>`` (wrong JSON type, null, boolean, NaN/Infinity),
  ``range:<field>``, ``length:<field>``, ``enum:<field>``, ``pattern:<field>``, ``format:<field>``,
  ``utf8:<field>`` (a string with a lone surrogate escape)
* context: ``future_time`` (eventTime more than the allowed skew after the enqueued time)
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

SCHEMA_PATH = Path(__file__).with_name("event.v1.schema.json")
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
SCHEMA_VERSION = 1

MAX_BODY_BYTES: int = SCHEMA["x-maxBodyBytes"]


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
_TIME_FIELD = next(f for f in FIELDS if f.format == "date-time")
EVENT_TIME_FIELD: str = _TIME_FIELD.name
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


# ---------------------------------------------------------------------------------------------
# Fast path: a msgspec Struct built from the rules decodes and checks a valid body in ~1 µs.
# Anything it rejects goes to the slow path, which names every reason; the fast path only ever
# says "valid", so the two can never disagree about a bad body's reasons.


def _msgspec_type(rule: FieldRule) -> Any:
    meta: dict[str, Any] = {}
    if rule.type == "string":
        base: Any = str
        if rule.min_length is not None:
            meta["min_length"] = rule.min_length
        if rule.max_length is not None:
            meta["max_length"] = rule.max_length
        # Patterns are checked after decoding (see _FAST_PATTERNS): msgspec's own pattern check
        # costs several times more than a precompiled re.search with the same semantics.
        if rule.enum is not None:
            return Literal[rule.enum]
    elif rule.type == "number":
        base = float
    elif rule.type == "integer":
        base = int
    else:  # pragma: no cover - the schema only uses the three types above
        raise ValueError(f"unsupported type {rule.type!r} for {rule.name}")
    if rule.minimum is not None:
        meta["ge"] = rule.minimum
    if rule.maximum is not None:
        meta["le"] = rule.maximum
    return Annotated[base, msgspec.Meta(**meta)] if meta else base


def _fast_struct(*, forbid_unknown_fields: bool = False) -> type[msgspec.Struct]:
    required = [(f.name, _msgspec_type(f)) for f in FIELDS if f.required]
    optional = [(f.name, _msgspec_type(f), f.default) for f in FIELDS if not f.required]
    # gc=False: the decoded struct holds only scalars, so the cycle collector need not track it.
    return msgspec.defstruct(
        "EventV1",
        [*required, *optional],
        kw_only=True,
        gc=False,
        forbid_unknown_fields=forbid_unknown_fields,
    )


_FastEvent = _fast_struct()
_fast_decoder = msgspec.json.Decoder(_FastEvent)
# The same, refusing unknown fields: parse_batch sends bodies with any to the slow path, which
# keeps them (a body without unknown fields reads exactly as with _fast_decoder).
_known_only_decoder = msgspec.json.Decoder(_fast_struct(forbid_unknown_fields=True))
# A body's top-level values as their JSON text, for keeping unknown fields as they were spelled.
_raw_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
# What the fast decoder raises for a body it does not accept (bad UTF-8 inside a string raises
# UnicodeDecodeError, not DecodeError).
_FAST_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError)
# The schema's eventTime pattern, for which _pattern_check has a faster exact equivalent.
_RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_ASCII_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
# Every string the pattern matches, with its ASCII digits turned into 0 (``$`` also matches
# before one final newline, hence the second variant of each).
_RFC3339_SHAPES = frozenset(
    f"0000-00-00T00:00:00{fraction}{zone}{newline}".encode()
    for fraction in ["", *("." + "0" * n for n in range(1, 10))]
    for zone in ("Z", "+00:00", "-00:00")
    for newline in ("", "\n")
)


def _pattern_check(pattern: str) -> Callable[[str], bool]:
    """A test with ``re.search(pattern, value)`` semantics (msgspec's), fast for the schema's two."""
    if pattern == r"\S":
        # \S is "not whitespace" exactly as str.isspace() defines whitespace.
        return lambda value: not (value == "" or value.isspace())
    if pattern == _RFC3339_PATTERN:
        # Non-ASCII characters (lone surrogates too) survive the translation as bytes >= 0x80
        # and match no shape.
        return lambda value: (
            value.encode("utf-8", "surrogatepass").translate(_ASCII_DIGITS_TO_ZERO) in _RFC3339_SHAPES
        )
    compiled = re.compile(pattern)
    return lambda value: compiled.search(value) is not None


# (field, check) for the string fields with a ``pattern``.
_FAST_PATTERNS = tuple((f.name, _pattern_check(f.pattern)) for f in FIELDS if f.pattern is not None)


def _column_check(pattern: str) -> Callable[[list[str]], bool] | None:
    """Whether a whole column of strings matches the pattern (all or not), for the schema's two."""
    if pattern == r"\S":
        return lambda values: all(values) and not any(map(str.isspace, values))
    if pattern == _RFC3339_PATTERN:
        # One translation of the joined column; a NUL inside a value adds a part, so the count
        # check keeps a value from passing as two.
        def rfc3339_column(values: list[str]) -> bool:
            joined = "\x00".join(values).encode("utf-8", "surrogatepass")
            shapes = joined.translate(_ASCII_DIGITS_TO_ZERO)
            # Usually every time has the same shape (one producer, one format): then the whole
            # column is that shape repeated, one comparison; else each part is looked up.
            first = shapes[: len(values[0].encode("utf-8", "surrogatepass")) if values else 0]
            if first in _RFC3339_SHAPES and shapes == b"\x00".join([first] * len(values)):
                return True
            parts = shapes.split(b"\x00")
            return len(parts) == len(values) and _RFC3339_SHAPES.issuperset(parts)

        return rfc3339_column
    return None


# The column form of each fast pattern check that has one (keyed by the per-value check).
_COLUMN_PATTERNS: dict[Callable[[str], bool], Callable[[list[str]], bool]] = {
    check: column
    for f, (_, check) in zip([f for f in FIELDS if f.pattern is not None], _FAST_PATTERNS, strict=True)
    if (column := _column_check(f.pattern or "")) is not None
}


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
        return Verdict(("too_large",))
    if _surrogate_escapes([body]):
        return _slow_verdict(body, enqueued_time)  # it checks each string (utf8:<field>)
    try:
        # Bad UTF-8 anywhere in the body must fail: msgspec skips the strings of unknown fields
        # without checking them, so a body that is not ASCII is decoded as text first.
        event = _fast_decoder.decode(body if body.isascii() else body.decode("utf-8"))
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        # msgspec raises UnicodeDecodeError (not DecodeError) for bad UTF-8 inside a string.
        return _slow_verdict(body, enqueued_time)
    for name, pattern in _FAST_PATTERNS:
        value = getattr(event, name)
        if value is not None and not pattern(value):
            return _slow_verdict(body, enqueued_time)
    text = getattr(event, EVENT_TIME_FIELD)
    try:
        event_time = datetime.fromisoformat(text)
    except ValueError:
        return _slow_verdict(body, enqueued_time)
    if not _offset_ok(text):
        return _slow_verdict(body, enqueued_time)
    event_id = getattr(event, EVENT_ID_FIELD)
    if _is_future(event_time, enqueued_time):
        return Verdict(("future_time",), event_id, event_time)
    return Verdict((), event_id, event_time)


def validate_batch(bodies: Sequence[bytes], enqueued_times: Sequence[datetime]) -> list[str | Verdict]:
    """Validate a batch of bodies: :func:`validate_event` for each, without an object per valid one.

    Each step runs over the whole batch at once (decode, then each pattern, then the times);
    a body any step rejects gets :func:`validate_event`'s slow path, as it would alone.

    Args:
        bodies: The event bodies exactly as received.
        enqueued_times: Each body's enqueued time (timezone-aware), in the same order.

    Returns:
        Per body, in order: its ``eventId`` (a str) when it is valid, else its :class:`Verdict`
        (exactly the one :func:`validate_event` returns).
    """
    return _validate_batch(bodies, enqueued_times, _fast_decoder).results


@dataclass(frozen=True)
class ParsedBatch:
    """A batch as :func:`parse_batch` reads it: verdicts, and the values of the valid bodies.

    Attributes:
        outcomes: Per body, its ``eventId`` when it is valid, else its :class:`Verdict` (the
            one :func:`validate_event` returns).
        values: Per contract field name, one value per body: the body's value (the schema's
            default when an optional field is left out), None where the body is rejected.
        event_times: Per body, its ``eventTime`` (timezone-aware), None where it is rejected.
        unknown_fields: Per body, its fields the contract does not name, as compact JSON text
            with each value spelled as in the body; None when it has none or is rejected.
    """

    outcomes: list[str | Verdict]
    values: dict[str, list[Any]]
    event_times: list[datetime | None]
    unknown_fields: list[str | None]


def parse_batch(
    bodies: Sequence[bytes], enqueued_times: Sequence[datetime], earliest_enqueued: datetime | None = None
) -> ParsedBatch:
    """Validate a batch as :func:`validate_batch` does, and keep what each valid body says.

    For readers that store the values (Spark's silver): their verdict is the Function's by
    construction. Bodies with unknown fields take the slow path (they are rare).

    Args:
        bodies: The event bodies exactly as received.
        enqueued_times: Each body's enqueued time (timezone-aware), in the same order; read only
            for bodies that may be in the future or take the slow path when ``earliest_enqueued``
            is given.
        earliest_enqueued: The earliest of ``enqueued_times``, when the caller knows it.
    """
    checks = _validate_batch(bodies, enqueued_times, _known_only_decoder, earliest_enqueued)
    results, decoded = checks.results, checks.decoded
    names = [f.name for f in FIELDS]
    if len(decoded) == len(results) and set(map(type, results)) == {str}:  # the usual batch
        return ParsedBatch(
            outcomes=results,
            values={name: list(map(attrgetter(name), decoded)) for name in names},
            event_times=checks.event_times,
            unknown_fields=[None] * len(results),
        )
    events: list[Any] = [None] * len(results)
    times: list[datetime | None] = [None] * len(results)
    for position, event, event_time in zip(checks.positions, decoded, checks.event_times, strict=True):
        events[position], times[position] = event, event_time
    values: dict[str, list[Any]] = {name: [None] * len(results) for name in names}
    unknown: list[str | None] = [None] * len(results)
    for i, outcome in enumerate(results):
        if type(outcome) is not str:
            if outcome.reasons:  # type: ignore[union-attr]
                continue
            results[i] = outcome.event_id  # type: ignore[union-attr,assignment]  # a valid body's is a str
        if events[i] is not None and type(outcome) is str:
            for name in names:
                values[name][i] = getattr(events[i], name)
            continue
        # Valid by the slow path's word (unknown fields, surrogate escapes): read it as it did.
        obj = json.loads(bodies[i].decode("utf-8"))
        for rule in FIELDS:
            values[rule.name][i] = obj.get(rule.name, rule.default)
        times[i] = (
            outcome.event_time if type(outcome) is Verdict else datetime.fromisoformat(obj[EVENT_TIME_FIELD])
        )
        unknown[i] = _unknown_fields(bodies[i], obj)
    return ParsedBatch(outcomes=results, values=values, event_times=times, unknown_fields=unknown)


def _unknown_fields(body: bytes, obj: dict[str, Any]) -> str | None:
    names = [name for name in obj if name not in FIELDS_BY_NAME]
    if not names:
        return None
    raw = _raw_fields.decode(body)
    # Compact, each value spelled as the body spells it (no number is re-rendered).
    return msgspec.json.format(msgspec.json.encode({name: raw[name] for name in names}), indent=-1).decode()


@dataclass(frozen=True)
class _BatchChecks:
    """What :func:`_validate_batch` found: the outcomes and the fast decoder's events."""

    results: list[str | Verdict]  # validate_batch's outcomes
    decoded: list[Any]  # the events the fast decoder read, in body order
    positions: list[int]  # the body each decoded event came from
    event_times: list[datetime | None]  # each decoded event's time (None where it failed)


def _validate_batch(
    bodies: Sequence[bytes],
    enqueued_times: Sequence[datetime],
    decoder: msgspec.json.Decoder[Any],
    earliest_enqueued: datetime | None = None,
) -> _BatchChecks:
    if len(bodies) != len(enqueued_times):
        raise ValueError("one enqueued time per body")
    if not bodies:
        return _BatchChecks([], [], [], [])
    # Bad UTF-8 anywhere must fail (see validate_event): msgspec skips the strings of unknown
    # fields unchecked, so a body that is not ASCII is decoded as text first. A body too large,
    # or not UTF-8, gets an empty input, which the fast decoder refuses. The few such bodies are
    # found with one pass per column, so that the loop below does nothing but decode.
    inputs: list[Any] = bodies if isinstance(bodies, list) else list(bodies)
    too_large = {i for i, size in enumerate(map(len, bodies)) if size > MAX_BODY_BYTES}
    not_ascii = [i for i, ascii in enumerate(map(bytes.isascii, bodies)) if not ascii]
    if too_large or not_ascii:
        inputs = list(inputs)
        for i in not_ascii:
            try:
                inputs[i] = bodies[i].decode("utf-8")
            except UnicodeDecodeError:
                inputs[i] = b""
        for i in too_large:
            inputs[i] = b""
    outcomes: list[Any] = []
    keep, decode, errors = outcomes.append, decoder.decode, _FAST_ERRORS
    for text in inputs:
        try:
            keep(decode(text))
        except errors:
            keep(None)  # the slow path names the reasons, below
    for i in too_large:
        outcomes[i] = Verdict(("too_large",))
    for i in _surrogate_escapes(bodies):
        if outcomes[i] is not None and type(outcomes[i]) is not Verdict:
            outcomes[i] = None  # the slow path checks its strings
    event_type = decoder.type
    positions = [i for i, event in enumerate(outcomes) if type(event) is event_type]
    decoded = outcomes if len(positions) == len(outcomes) else [outcomes[i] for i in positions]
    # Fast checks over whole columns; only when one fails are its values looked at one by one.
    failed: set[int] = set()
    for name, pattern in _FAST_PATTERNS:
        values = list(map(attrgetter(name), decoded))
        if not _all_match(pattern, values):
            failed.update(i for i, v in enumerate(values) if v is not None and not pattern(v))
    texts = list(map(attrgetter(EVENT_TIME_FIELD), decoded))
    try:
        event_times: list[datetime | None] = list(map(datetime.fromisoformat, texts))
    except ValueError:
        event_times = [_time_or_none(text) for text in texts]
        failed.update(i for i, t in enumerate(event_times) if t is None)
    if not all(map(str.endswith, texts, itertools.repeat("Z", len(texts)))):  # some carry an offset
        failed.update(
            i
            for i, text in enumerate(texts)
            if i not in failed and event_times[i] is not None and not _offset_ok(text)
        )
    event_ids = list(map(attrgetter(EVENT_ID_FIELD), decoded))
    skew = _TIME_FIELD.max_future_skew
    future: set[int] = set()
    if skew is not None and event_times:
        # Nothing is in the future when the latest event time is within the skew of the
        # earliest enqueued time: one pass of comparisons instead of a subtraction per event.
        # (Only times that passed the pattern, and so carry a zone, are compared.)
        passed = [t for i, t in enumerate(event_times) if i not in failed] if failed else event_times
        earliest = earliest_enqueued or min(enqueued_times)
        if passed and max(passed) > earliest + skew:  # type: ignore[type-var,operator]
            future = {
                i
                for i, t in enumerate(event_times)
                if t is not None and i not in failed and _is_future(t, enqueued_times[positions[i]])
            }
    if len(positions) == len(outcomes) and not failed and not future:
        return _BatchChecks(event_ids, decoded, positions, event_times)  # the usual batch: all valid
    if decoded is outcomes:  # outcomes is rewritten below; the decoded events must stay
        decoded = list(decoded)
    for position, event_id in zip(positions, event_ids, strict=True):
        outcomes[position] = event_id
    for i in future - failed:
        outcomes[positions[i]] = Verdict(("future_time",), event_ids[i], event_times[i])
    for i in failed:
        outcomes[positions[i]] = None
    results = [
        outcome if outcome is not None else _slow_verdict(bodies[i], enqueued_times[i])
        for i, outcome in enumerate(outcomes)
    ]
    return _BatchChecks(results, decoded, positions, event_times)


def _surrogate_escapes(bodies: Sequence[bytes]) -> list[int]:
    """The bodies with a ``\\uD800``-``\\uDFFF`` escape (one scan of the batch when none has one).

    Such an escape can leave a lone surrogate in a string, which no UTF-8 text can hold; the
    slow path checks those strings (``utf8:<field>``).
    """
    blob = b"\x00".join(bodies)
    # A one-byte search is a memchr, several times faster than a search for the escape itself.
    if b"\\" not in blob or (b"\\ud" not in blob and b"\\uD" not in blob):
        return []
    return [i for i, body in enumerate(bodies) if b"\\ud" in body or b"\\uD" in body]


def _offset_ok(text: str) -> bool:
    """Whether a time's offset is within the contract's range, minutes 00-59 (``fromisoformat``
    takes ``+23:59`` and ``+01:60``; Java's and Spark's times stop at 18:00 and 59 minutes).
    Only for texts that matched the pattern: they end in ``Z`` or ``±hh:mm``."""
    limit = _TIME_FIELD.max_utc_offset_minutes
    if limit is None or text.endswith("Z"):
        return True
    hours, minutes = int(text[-5:-3]), int(text[-2:])
    return minutes < 60 and hours * 60 + minutes <= limit


def _time_or_none(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _all_match(pattern: Callable[[str], bool], values: list[str | None]) -> bool:
    """Whether every value that is not None passes ``pattern``: a whole column in a few C calls."""
    if None in values:
        values = [v for v in values if v is not None]
    if not values:
        return True
    column_check = _COLUMN_PATTERNS.get(pattern)
    if column_check is not None:
        return column_check(values)  # type: ignore[arg-type]
    return all(map(pattern, values))  # type: ignore[arg-type]


def _is_future(event_time: datetime, enqueued_time: datetime | None) -> bool:
    skew = _TIME_FIELD.max_future_skew
    if skew is None:
        return False
    reference = enqueued_time or datetime.now(UTC)
    return event_time - reference > skew


# ---------------------------------------------------------------------------------------------
# Slow path: decode with the standard library and check every rule, collecting every reason.


class _NonFinite(float):
    """NaN/Infinity literals decode to this so they fail as ``type:<field>``, not as ``json``."""


def _slow_verdict(body: bytes, enqueued_time: datetime | None) -> Verdict:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return Verdict(("utf8",))
    try:
        obj = json.loads(text, parse_constant=_NonFinite)
    except (ValueError, RecursionError):
        return Verdict(("json",))
    if not isinstance(obj, dict):
        return Verdict(("not_object",))
    reasons = list(_field_reasons(obj))
    event_id = obj.get(EVENT_ID_FIELD) if isinstance(obj.get(EVENT_ID_FIELD), str) else None
    event_time = None
    if not any(reason.endswith(f":{EVENT_TIME_FIELD}") for reason in reasons):  # its time is readable
        event_time = datetime.fromisoformat(obj[EVENT_TIME_FIELD])
        if _is_future(event_time, enqueued_time):
            reasons.append("future_time")
    return Verdict(tuple(reasons), event_id, event_time)


def _field_reasons(obj: dict[str, Any]) -> Iterator[str]:
    for rule in FIELDS:
        if rule.name not in obj:
            if rule.required:
                yield f"missing:{rule.name}"
            continue
        problem = check_value(rule, obj[rule.name])
        if problem:
            yield f"{problem}:{rule.name}"


def utf8_text(value: str) -> bool:
    """Whether UTF-8 can hold the string: not when a ``\\uD800``-style escape left a lone surrogate."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_value(rule: FieldRule, value: Any) -> str | None:
    """Return the reason class (``type``, ``range``, ...) for one value, or None when it is valid."""
    if rule.type == "string":
        if not isinstance(value, str):
            return "type"
        if not value.isascii() and not utf8_text(value):
            return "utf8"
        if rule.format == "date-time":
            if rule.pattern and not re.search(rule.pattern, value):
                return "format"
            try:
                datetime.fromisoformat(value)
            except ValueError:
                return "format"
            return "format" if rule.pattern and not _offset_ok(value) else None
        if (rule.min_length is not None and len(value) < rule.min_length) or (
            rule.max_length is not None and len(value) > rule.max_length
        ):
            return "length"
        if rule.enum is not None and value not in rule.enum:
            return "enum"
        if rule.pattern is not None and not re.search(rule.pattern, value):
            return "pattern"
        return None
    if isinstance(value, (bool, _NonFinite)):
        return "type"
    if rule.type == "integer" and not isinstance(value, int):
        return "type"
    if rule.type == "number":
        if not isinstance(value, (int, float)):
            return "type"
        if isinstance(value, float) and not math.isfinite(value):
            return "type"
    if (rule.minimum is not None and value < rule.minimum) or (
        rule.maximum is not None and value > rule.maximum
    ):
        return "range"
    return None
