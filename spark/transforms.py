"""Pure DataFrame -> DataFrame transforms: bronze -> silver (valid, rejected), silver -> gold.

Nothing here reads or writes storage. The contract re-check is built as column expressions from
``contract.FIELDS`` and yields the contract's own reason codes, plus ``bronze_malformed`` for a
bronze record that is not a readable envelope with a body.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

from pyspark import SparkContext
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from contract import FIELDS, MAX_BODY_BYTES, FieldRule
from spark.schemas import (
    BODY_COLUMN,
    CORRUPT_RECORD_COLUMN,
    GOLD_SCHEMA,
    QUARANTINE_SCHEMA,
    SILVER_SCHEMA,
    SOURCE_FILE_COLUMN,
)

BRONZE_MALFORMED = "bronze_malformed"

_BODY_MAP = T.MapType(T.StringType(), T.VariantType()).simpleString()
_KNOWN_FIELDS = [rule.name for rule in FIELDS]
_TIME_RULE = next(rule for rule in FIELDS if rule.format == "date-time")
_SPARK_NAME = {"string": "string", "number": "double", "integer": "long"}
# check_bronze parses these two timestamps once, into these columns.
_EVENT_TIME = "_event_time"
_ENQUEUED_TIME = "_enqueued_time"
_FAST = "_fast_valid"
_CANONICAL = "_canonical_body"
_Built = TypeVar("_Built")
# Expressions built once per SparkContext (see _per_context): key -> (context, value).
_BUILT: dict[Hashable, tuple[Any, Any]] = {}


@dataclass(frozen=True)
class BronzeShape:
    """What the check's expressions depend on in a bronze frame's schema."""

    has_corrupt_record: bool  # JSON lines: the reader's column for lines that are not JSON
    binary_body: bool  # Avro: Body is bytes (JSON lines: text)

    @classmethod
    def of(cls, bronze: DataFrame) -> BronzeShape:
        schema = bronze.schema
        return cls(
            has_corrupt_record=CORRUPT_RECORD_COLUMN in schema.names,
            binary_body=isinstance(schema[BODY_COLUMN].dataType, T.BinaryType),
        )


def _per_context(key: Hashable, build: Callable[[], _Built]) -> _Built:
    """``build()`` once per SparkContext and key, then the same value for every micro-batch.

    The check is a few hundred column expressions, each built with several Py4J calls: about a
    second per micro-batch (measured), as much as a small batch's whole work. Unresolved
    expressions are not tied to a frame, so every batch can select the same ones; they are tied
    to the JVM, hence one set per SparkContext.
    """
    context = SparkContext._active_spark_context
    built = _BUILT.get(key)
    if built is None or built[0] is not context:
        built = _BUILT[key] = (context, build())
    return built[1]


@cache
def _python_whitespace_class() -> str:
    """The characters ``str.isspace`` (and so Python's ``\\s``) calls whitespace, as the body of a
    Java character class (Java's own ``\\s`` is ASCII only, and ``(?U)\\s`` differs too)."""
    spaces = [c for c in range(sys.maxunicode + 1) if chr(c).isspace()]
    ranges: list[list[int]] = []
    for code in spaces:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(rf"\x{{{low:x}}}-\x{{{high:x}}}" for low, high in ranges)


def spark_regex(pattern: str) -> str:
    """The Java regex (Spark's ``rlike``) that finds a match exactly where Python's ``re.search``
    with ``pattern`` does; the contract's patterns are written for Python's ``re``.

    Translated: ``\\s``/``\\S`` (Unicode whitespace as ``str.isspace`` defines it), ``.`` (any
    character but ``\\n``; Java's also stops at ``\\r``, ``\\u0085``, ``\\u2028``...) and a final
    ``$`` (the end, or before one final ``\\n``; Java's also accepts other line terminators).

    Raises:
        ValueError: for constructs whose meaning differs and that are not translated (``\\d``,
            ``\\w``, ``\\b``, escapes inside a character class, ``$`` before the end...): a
            contract pattern Spark cannot check exactly must fail loudly, not disagree quietly.
    """
    out, in_class, i = [], False, 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            escaped = pattern[i + 1 : i + 2]
            if escaped in ("s", "S") and not in_class:
                out.append(f"[{'^' if escaped == 'S' else ''}{_python_whitespace_class()}]")
            elif escaped and not escaped.isalnum():
                out.append(char + escaped)  # an escaped punctuation character is itself in both
            else:
                raise ValueError(f"pattern {pattern!r}: \\{escaped} is not translated to Spark's regex")
            i += 2
            continue
        if in_class:
            if char == "[" or pattern[i : i + 2] == "&&":  # Java: a nested class or an intersection
                raise ValueError(f"pattern {pattern!r}: {char!r} inside a class is not translated")
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == ".":
            char = r"[^\n]"
        elif char == "$":
            if i != len(pattern) - 1:
                raise ValueError(f"pattern {pattern!r}: $ before its end is not translated")
            char = r"(?=\n?\z)"
        out.append(char)
        i += 1
    return "".join(out)


def _typed_body_schema() -> str:
    """The body parsed straight into the contract's types (date-time as its text)."""
    return ", ".join(f"`{rule.name}` {_SPARK_NAME[rule.type]}" for rule in FIELDS)


# Two tiers, one verdict. The fast tier parses the body into typed columns (Spark's codegen'd
# JSON reader) and checks every rule on them; a row passes it only when it is certainly valid.
# Anything else goes to the exact tier, which looks at each value's JSON type through a variant
# parse and names every reason the way contract.validate_event does. The exact tier is slow but
# runs only for rows the fast tier could not clear (bad or unusual bodies), so the verdict never
# depends on which tier decided it.


def _all(conditions: list[Column]) -> Column:
    """AND of the conditions as a balanced tree: a long left-deep chain can overflow the stack of
    Spark's stream execution thread when Catalyst walks it."""
    if len(conditions) == 1:
        return conditions[0]
    middle = len(conditions) // 2
    return _all(conditions[:middle]) & _all(conditions[middle:])


def _typed(rule: FieldRule) -> Column:
    return F.col("_event")[rule.name]


def _raw_has_string_value(body: Column, rule: FieldRule, value: Column) -> Column:
    """True when the raw body spells this key with this JSON string value (compact or spaced).

    Spark's reader turns a number or object under a string field into text, so the fast tier
    only trusts a string field when the body shows it as a quoted value. In a flat object a
    quoted key followed by a colon is always a key, so this is exact; nested bodies and values
    with escapes simply fail it and take the exact tier.
    """
    compact = F.concat(F.lit(f'"{rule.name}":"'), value, F.lit('"'))
    spaced = F.concat(F.lit(f'"{rule.name}": "'), value, F.lit('"'))
    # contains compares bytes; instr would walk the body character by character (3x the cost).
    return F.contains(body, compact) | F.contains(body, spaced)


def _spelled_ok(body: Column, rule: FieldRule) -> Column | None:
    """The raw body spells this field as its typed parse assumes (None: nothing to check).

    A string field's value must be a quoted JSON string in the body (the parse would also turn a
    number or an object into text), and an optional field that parses as null must be absent
    (a JSON null, or a wrong type, reads as null too).
    """
    value = _typed(rule)
    absent = value.isNull() & ~F.contains(body, F.lit(f'"{rule.name}"'))
    if rule.type == "string":
        quoted = _raw_has_string_value(body, rule, value)
        return quoted if rule.required else (absent | quoted)
    return None if rule.required else (absent | value.isNotNull())


def _fast_field_ok(rule: FieldRule) -> Column:
    value = _typed(rule)
    if not rule.required:
        return value.isNull() | _fast_value_ok(rule, value)  # absence is checked by _spelled_ok
    return _fast_value_ok(rule, value)


def _fast_value_ok(rule: FieldRule, value: Column) -> Column:
    ok = [value.isNotNull()]
    if rule.type == "string":
        if rule.format == "date-time":
            ok += [F.col(_EVENT_TIME).isNotNull(), _contract_accepts_time(value)]
        if rule.min_length is not None:
            ok.append(F.char_length(value) >= rule.min_length)
        if rule.max_length is not None:
            ok.append(F.char_length(value) <= rule.max_length)
        if rule.enum is not None:
            ok.append(value.isin(*rule.enum))
        if rule.pattern is not None:
            ok.append(value.rlike(spark_regex(rule.pattern)))
        return _all(ok)
    if rule.type == "number":
        ok += [~F.isnan(value), F.abs(value) != F.lit(float("inf"))]
    if rule.minimum is not None:
        ok.append(value >= rule.minimum)
    if rule.maximum is not None:
        ok.append(value <= rule.maximum)
    return _all(ok)


def _contract_accepts_time(text: Column) -> Column:
    """False for the times Spark parses and the pattern lets through but the contract refuses:
    a final newline (Spark trims it; ``$`` allows it), year 0 (``fromisoformat`` refuses both) and
    an offset past ``x-maxUtcOffsetMinutes`` or with minute 60 or more (``contract._offset_ok``)."""
    accepted = ~F.endswith(text, F.lit("\n")) & ~F.startswith(text, F.lit("0000"))
    limit = _TIME_RULE.max_utc_offset_minutes
    if limit is None:
        return accepted
    hours, minutes = F.substring(text, -5, 2).try_cast("int"), F.substring(text, -2, 2).try_cast("int")
    # A branch of its own, so that only times with an offset are cut up: a try_cast that fails
    # costs a JVM exception, and "...:12Z" would fail it on every row (the job ran ~2x slower).
    in_range = F.coalesce((minutes < 60) & (hours * 60 + minutes <= limit), F.lit(False))
    return accepted & F.when(F.endswith(text, F.lit("Z")), F.lit(True)).otherwise(in_range)


def _is_future(event_time: Column) -> Column:
    if _TIME_RULE.max_future_skew is None:
        return F.lit(False)
    enqueued = F.coalesce(F.col(_ENQUEUED_TIME), F.current_timestamp())
    skew_micros = int(_TIME_RULE.max_future_skew.total_seconds() * 1_000_000)
    return (F.unix_micros(event_time) - F.unix_micros(enqueued)) > skew_micros


def _fast_valid(shape: BronzeShape, canonical: Column) -> Column:
    body = _body_text()
    ok = [F.col(BODY_COLUMN).isNotNull(), F.octet_length(F.col(BODY_COLUMN)) <= MAX_BODY_BYTES]
    if shape.has_corrupt_record:
        ok.append(F.col(CORRUPT_RECORD_COLUMN).isNull())
    if shape.binary_body:
        ok.append(F.is_valid_utf8(F.col(BODY_COLUMN)))
    ok.append(F.col("_event").isNotNull())
    ok += [_fast_field_ok(rule) for rule in FIELDS]
    ok.append(~_is_future(F.col(_EVENT_TIME)))
    # How the body spells its values. A canonical body (see _canonical) is to_json of a flat
    # struct of the contract's fields: every string a quoted JSON string, no null or unknown key,
    # nothing nested. So only other bodies need the raw-text tests (and, since nested objects or
    # arrays could hide a look-alike key, those must be flat); Or skips them for canonical ones.
    spelled = [_flat(body), ~F.contains(body, F.lit("["))]
    spelled += [check for rule in FIELDS if (check := _spelled_ok(body, rule)) is not None]
    ok.append(canonical | _all(spelled))
    return _all(ok)


def _flat(body: Column) -> Column:
    """No ``{`` after the first character: ``instr(substring(body, 2), "{") = 0``, without copying.

    ``{`` is one byte in UTF-8 and never part of another character, so this holds exactly when
    the body has fewer than two ``{`` and any one it has is its first byte. substring_index
    returns the body itself when it finds fewer than two, and searches bytes (instr walks
    characters, and the substring would be a copy of the body).
    """
    fewer_than_two = F.octet_length(F.substring_index(body, "{", 2)) == F.octet_length(body)
    return fewer_than_two & (~F.contains(body, F.lit("{")) | F.startswith(body, F.lit("{")))


# --- exact tier ----------------------------------------------------------------------------------


def _exact_type_ok(rule: FieldRule, text: Column, value: Column) -> Column:
    # ``text`` is the value's JSON text: a leading quote means a JSON string, a digit or minus a
    # number (NaN and Infinity, which Spark's reader accepts, start with neither).
    if rule.type == "string":
        return text.startswith('"')
    is_number = text.substr(1, 1).isin("-", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9")
    if rule.type == "integer":
        return is_number & ~text.rlike("[.eE]") & value.isNotNull()
    return is_number & ~F.isnan(value) & (F.abs(value) != F.lit(float("inf")))


def _exact_field_reason(rule: FieldRule, body_map: Column) -> Column:
    """The first reason this field fails, in the order ``contract.check_value`` checks them."""
    raw = body_map[rule.name]
    text = F.to_json(raw)
    value = F.try_variant_get(raw, "$", _SPARK_NAME[rule.type])
    reason = F.when(raw.isNull(), F.lit(f"missing:{rule.name}") if rule.required else F.lit(None))
    reason = reason.when(~_exact_type_ok(rule, text, value), F.lit(f"type:{rule.name}"))
    if rule.format == "date-time":
        bad_format = F.try_to_timestamp(value).isNull() | ~_contract_accepts_time(value)
        if rule.pattern:
            bad_format = bad_format | ~value.rlike(spark_regex(rule.pattern))
        return reason.when(bad_format, F.lit(f"format:{rule.name}"))
    if rule.type == "string":
        length = F.char_length(value)
        too_short = length < rule.min_length if rule.min_length is not None else F.lit(False)
        too_long = length > rule.max_length if rule.max_length is not None else F.lit(False)
        reason = reason.when(too_short | too_long, F.lit(f"length:{rule.name}"))
        if rule.enum is not None:
            reason = reason.when(~value.isin(*rule.enum), F.lit(f"enum:{rule.name}"))
        if rule.pattern is not None:
            reason = reason.when(~value.rlike(spark_regex(rule.pattern)), F.lit(f"pattern:{rule.name}"))
        return reason
    below = value < rule.minimum if rule.minimum is not None else F.lit(False)
    above = value > rule.maximum if rule.maximum is not None else F.lit(False)
    return reason.when(below | above, F.lit(f"range:{rule.name}"))


def _body_text() -> Column:
    # Text for both bronze formats (Avro's Body is bytes; JSON lines' is already a string).
    return F.col(BODY_COLUMN).cast("string")


def _kept_text(shape: BronzeShape) -> Column:
    """What quarantine keeps: the body, or the raw line when the bronze line itself was malformed."""
    if shape.has_corrupt_record:
        return F.coalesce(_body_text(), F.col(CORRUPT_RECORD_COLUMN))
    return _body_text()


def _exact_reasons(shape: BronzeShape) -> Column:
    """Every reason code for one bronze row, as an array (empty when the event is valid)."""
    body = F.col(BODY_COLUMN)
    body_map = F.from_json(_body_text(), _BODY_MAP)
    malformed = body.isNull()
    if shape.has_corrupt_record:
        malformed = malformed | F.col(CORRUPT_RECORD_COLUMN).isNotNull()
    whole_body = F.when(malformed, F.array(F.lit(BRONZE_MALFORMED))).when(
        F.octet_length(body) > MAX_BODY_BYTES, F.array(F.lit("too_large"))
    )
    if shape.binary_body:
        whole_body = whole_body.when(~F.is_valid_utf8(body), F.array(F.lit("utf8")))
    whole_body = whole_body.when(
        body_map.isNull(),
        F.when(F.try_parse_json(_body_text()).isNull(), F.array(F.lit("json"))).otherwise(
            F.array(F.lit("not_object"))
        ),
    )
    per_field = [_exact_field_reason(rule, body_map) for rule in FIELDS]
    time_ok = _exact_field_reason(_TIME_RULE, body_map).isNull()
    event_time = F.try_to_timestamp(F.try_variant_get(body_map[_TIME_RULE.name], "$", "string"))
    per_field.append(F.when(time_ok & _is_future(event_time), F.lit("future_time")))
    return whole_body.otherwise(F.array_compact(F.array(*per_field)))


def _rescued_exact() -> Column:
    """Unknown body fields as a JSON object string, or null: lists every body's keys."""
    keys = F.json_object_keys(_body_text())
    body_map = F.from_json(_body_text(), _BODY_MAP)
    unknown = F.map_filter(body_map, lambda key, _value: ~key.isin(*_KNOWN_FIELDS))
    has_unknown = F.size(F.array_except(keys, F.array(*[F.lit(k) for k in _KNOWN_FIELDS]))) > 0
    return F.when(has_unknown, F.to_json(unknown))


def _canonical() -> Column:
    """Whether the body is spelled exactly as ``to_json`` writes its typed parse.

    Such a body is a JSON object whose keys are exactly the known fields it holds, so it has no
    unknown ones: :func:`_rescued_exact` would say null without its second JSON scan. Bodies
    written another way (spacing, key order, number spelling, escapes, unknown or repeated keys)
    take the exact path. Compact producers (orjson, contract order) match.
    """
    return F.to_json(F.col("_event")) == _body_text()


def check_bronze(bronze: DataFrame, processed_at: datetime) -> DataFrame:
    """Parse every bronze record's body and attach its reason codes (one row per input row).

    Args:
        bronze: Bronze envelope rows (``BRONZE_JSON_SCHEMA`` or ``BRONZE_AVRO_SCHEMA`` fields) with
            a ``source_file`` column.
        processed_at: The micro-batch's processing time, stamped on every row.

    Returns:
        The silver columns (meaningful when valid) plus ``_reasons`` (empty when valid) and what
        quarantine keeps; split it with :func:`split_checked`.
    """
    shape = BronzeShape.of(bronze)
    stages = _per_context(("check", shape), lambda: _check_stages(shape))
    frame = bronze.select("*", F.lit(processed_at).cast("timestamp").alias("_processed_at"))
    for columns in stages:
        frame = frame.select(*columns)
    return frame


def _check_stages(shape: BronzeShape) -> list[list[Column | str]]:
    """check_bronze's projections, in order (the processing time is a column by then)."""
    parse: list[Column | str] = [
        # Parsed once here: the check, the future-time rule and the silver columns all use them.
        "*",
        F.from_json(_body_text(), _typed_body_schema()).alias("_event"),
    ]
    times: list[Column | str] = [
        "*",
        F.try_to_timestamp(_typed(_TIME_RULE)).alias(_EVENT_TIME),
        F.try_to_timestamp(F.col("EnqueuedTimeUtc")).alias(_ENQUEUED_TIME),
    ]
    # The cheap verdicts get their own projection: with the exact tier's large generated code in
    # the same one, the JIT compiled the hot path poorly (the whole check ran ~1.6x slower). The
    # two columns are used more than once below, so Spark keeps this projection apart.
    canonical = _canonical()
    screen: list[Column | str] = [
        "*",
        _fast_valid(shape, canonical).alias(_FAST),
        canonical.alias(_CANONICAL),
    ]
    reasons = F.when(F.col(_FAST), F.array().cast("array<string>")).otherwise(_exact_reasons(shape))
    rescued = F.when(F.col(_CANONICAL), F.lit(None).cast("string")).otherwise(_rescued_exact())
    result: list[Column | str] = [
        *[(F.col(_EVENT_TIME) if rule is _TIME_RULE else _typed(rule)).alias(rule.column) for rule in FIELDS],
        rescued.alias("_rescued_data"),
        F.col("PartitionId").alias("partition_id"),
        F.col("SequenceNumber").alias("sequence_number"),
        F.col(_ENQUEUED_TIME).alias("enqueued_time"),
        F.try_to_timestamp(F.col("IngestedTimeUtc")).alias("ingested_at"),
        F.col(SOURCE_FILE_COLUMN),
        F.col("_processed_at").alias("processed_at"),
        reasons.alias("_reasons"),
        # Only quarantine needs the text; valid rows skip it, which keeps the cached batch small.
        F.when(F.size(reasons) > 0, _kept_text(shape)).alias("_body_text"),
        F.col("EventId").alias("_envelope_event_id"),
    ]
    return [parse, times, screen, result]


def _silver_columns() -> dict[str, Column]:
    """The silver columns of a checked row by name (meaningful for valid rows)."""
    defaults = {rule.column: rule.default for rule in FIELDS if rule.default is not None}
    columns = {
        f.name: (
            F.coalesce(F.col(f.name), F.lit(defaults[f.name])) if f.name in defaults else F.col(f.name)
        ).cast(f.dataType)
        for f in SILVER_SCHEMA.fields
        if f.name != "event_date"
    }
    columns["event_date"] = F.to_date(F.col("event_time"))
    return columns


def _quarantine_columns() -> dict[str, Column]:
    """The quarantine columns of a checked row by name (meaningful for rejected rows)."""
    return {
        "event_id": F.coalesce(F.col("event_id"), F.col("_envelope_event_id")),
        "reasons": F.col("_reasons"),
        "body": F.col("_body_text"),
        **{f.name: F.col(f.name) for f in QUARANTINE_SCHEMA.fields[3:]},
    }


def split_checked(checked: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Split :func:`check_bronze` output into ``(valid, rejected)``; every row lands in exactly one.

    Valid rows are in ``SILVER_SCHEMA`` (not yet deduplicated); rejected rows are in
    ``QUARANTINE_SCHEMA`` with their reason codes.
    """
    valid = checked.where(F.size("_reasons") == 0).select(
        *[column.alias(name) for name, column in _silver_columns().items()]
    )
    rejected = checked.where(F.size("_reasons") > 0).select(
        *[column.alias(name) for name, column in _quarantine_columns().items()]
    )
    return valid, rejected


#: The flat_checked columns only rejected rows fill, by quarantine column name (apart from silver's).
QUARANTINE_ONLY_COLUMNS = {"event_id": "_quarantine_event_id", "reasons": "reasons", "body": "body"}
VALID_COLUMN = "_valid"


def flat_checked(checked: DataFrame, window_minutes: int | None = None) -> DataFrame:
    """:func:`split_checked` as one frame, so that one pass (one ``toArrow``) yields both sides.

    Every row has ``_valid``, the silver columns (null on rejected rows) and the quarantine's own
    columns (``QUARANTINE_ONLY_COLUMNS``, null on valid rows); the ingestion columns are shared.
    Filtering on ``_valid`` and taking either side's columns gives exactly ``split_checked``'s rows.
    With ``window_minutes``, valid rows also carry :func:`gold_inputs` (``GOLD_INPUT_COLUMNS``).
    """
    return checked.select(*_per_context(("flat", window_minutes), lambda: _flat_columns(window_minutes)))


def _flat_columns(window_minutes: int | None) -> list[Column]:
    valid = F.size("_reasons") == 0
    shared = {f.name for f in QUARANTINE_SCHEMA.fields[3:]}
    # Guarded by the verdict like split_checked's filter: a cast must not fail on a rejected row.
    silver = [
        (column if name in shared else F.when(valid, column)).alias(name)
        for name, column in _silver_columns().items()
    ]
    quarantine = [
        F.when(~valid, column).alias(QUARANTINE_ONLY_COLUMNS[name])
        for name, column in _quarantine_columns().items()
        if name not in shared
    ]
    extra = [] if window_minutes is None else gold_inputs(window_minutes)
    gold = [F.when(valid, column).alias(name) for name, column in extra]
    return [valid.alias(VALID_COLUMN), *silver, *quarantine, *gold]


def bronze_to_silver(bronze: DataFrame, processed_at: datetime) -> tuple[DataFrame, DataFrame]:
    """Parse and re-check bronze records: ``(valid, rejected)``, see :func:`split_checked`."""
    return split_checked(check_bronze(bronze, processed_at))


def has_duplicate_ids(silver: DataFrame) -> bool:
    """Whether any ``event_id`` occurs twice (a narrow check that lets most batches skip the sort)."""
    return bool(silver.groupBy("event_id").count().where("count > 1").limit(1).count())


def dedupe_events(silver: DataFrame) -> DataFrame:
    """Keep one row per ``event_id``: the first enqueued (then lowest partition and sequence)."""
    first = Window.partitionBy("event_id").orderBy("enqueued_time", "partition_id", "sequence_number")
    return silver.withColumn("_rank", F.row_number().over(first)).where("_rank = 1").drop("_rank")


def window_start(event_time: Column, window_minutes: int) -> Column:
    """The start of the tumbling window holding ``event_time`` (windows align to the epoch)."""
    size = window_minutes * 60 * 1_000_000
    micros = F.unix_micros(event_time)
    return F.timestamp_micros(micros - F.pmod(micros, F.lit(size)))


#: The silver columns :func:`touched_windows` reads.
TOUCHED_WINDOW_COLUMNS = ["location", "event_time"]


def touched_windows(silver: DataFrame, window_minutes: int) -> DataFrame:
    """The distinct gold keys (``location``, ``window_start``) that silver rows fall into."""
    return silver.select(
        "location", window_start(F.col("event_time"), window_minutes).alias("window_start")
    ).distinct()


# Sums are taken over fixed-point integers (nano-units) so they do not depend on the order Spark
# adds rows in: a window recomputed in a later micro-batch or by reprocessing gives bit-identical
# doubles. A long holds 9.2e18 nano-units: ~18 million readings of 500 per window.
_FIXED_POINT = 1_000_000_000


#: The columns summed as fixed-point integers (averages and totals in gold).
FIXED_POINT_COLUMNS = ["temperature", "humidity", "wind_speed", "precipitation"]
WINDOW_START_COLUMN = "_window_start"


def fixed_point_column(name: str) -> str:
    return f"_fixed_{name}"


def _fixed_point(name: str) -> Column:
    return F.round(F.col(name) * _FIXED_POINT).cast("long")


def gold_inputs(window_minutes: int) -> list[tuple[str, Column]]:
    """:func:`silver_to_gold`'s per-row values as Spark computes them: the window start and the
    fixed-point integers, so that another aggregator (``spark.batch.gold_arrow``) needs no
    rounding or time arithmetic of its own to give the same gold."""
    return [
        (WINDOW_START_COLUMN, window_start(F.col("event_time"), window_minutes)),
        *[(fixed_point_column(name), _fixed_point(name)) for name in FIXED_POINT_COLUMNS],
    ]


def _exact_sum(name: str) -> Column:
    return F.sum(_fixed_point(name))


def _exact_avg(name: str) -> Column:
    return (_exact_sum(name) / F.count(F.lit(1)) / _FIXED_POINT).cast("double")


def silver_to_gold(silver: DataFrame, window_minutes: int, updated_at: datetime) -> DataFrame:
    """Aggregate silver rows into gold rows, one per (``location``, ``window_start``).

    ``dominant_*`` is the most frequent value in the window; ties go to the alphabetically first.
    """
    size = window_minutes * 60 * 1_000_000
    windowed = silver.withColumn("window_start", window_start(F.col("event_time"), window_minutes))
    gold = windowed.groupBy("location", "window_start").agg(
        F.count(F.lit(1)).alias("event_count"),
        _exact_avg("temperature").alias("avg_temperature"),
        F.min("temperature").alias("min_temperature"),
        F.max("temperature").alias("max_temperature"),
        _exact_avg("humidity").alias("avg_humidity"),
        _exact_avg("wind_speed").alias("avg_wind_speed"),
        F.max("wind_speed").alias("max_wind_speed"),
        (_exact_sum("precipitation") / _FIXED_POINT).cast("double").alias("total_precipitation"),
        F.mode("wind_direction", deterministic=True).alias("dominant_wind_direction"),
        F.mode("conditions", deterministic=True).alias("dominant_conditions"),
    )
    return gold.select(
        *[
            (
                F.timestamp_micros(F.unix_micros("window_start") + F.lit(size))
                if f.name == "window_end"
                else F.lit(updated_at).cast("timestamp")
                if f.name == "updated_at"
                else F.col(f.name)
            )
            .cast(f.dataType)
            .alias(f.name)
            for f in GOLD_SCHEMA.fields
        ]
    )
