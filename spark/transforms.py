"""Pure DataFrame -> DataFrame transforms: bronze -> silver (valid, rejected), silver -> gold.

Nothing here reads or writes storage. The contract re-check is built as column expressions from
``contract.FIELDS`` and yields the contract's own reason codes, plus ``bronze_malformed`` for a
bronze record that is not a readable envelope with a body.
"""

from __future__ import annotations

from datetime import datetime

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
# What schema_of_variant calls a JSON number: integers parse as BIGINT, decimals as DECIMAL(p,s),
# exponents and NaN/Infinity as DOUBLE.
_INTEGER_KINDS = ("BIGINT", "INT", "SMALLINT", "TINYINT")


def _kind(value: Column) -> Column:
    return F.schema_of_variant(value)


def _is_number(value: Column) -> Column:
    kind = _kind(value)
    return kind.isin(*_INTEGER_KINDS, "DOUBLE", "FLOAT") | kind.startswith("DECIMAL")


def _typed(rule: FieldRule, value: Column) -> Column:
    """The field's value as its silver type (null when the JSON type is wrong)."""
    if rule.format == "date-time":
        return F.try_to_timestamp(F.try_variant_get(value, "$", "string"))
    spark_name = {"string": "string", "number": "double", "integer": "long"}[rule.type]
    return F.try_variant_get(value, "$", spark_name)


def _type_ok(rule: FieldRule, value: Column) -> Column:
    if rule.type == "string":
        return _kind(value) == "STRING"
    if rule.type == "integer":
        return _kind(value).isin(*_INTEGER_KINDS)
    number = F.try_variant_get(value, "$", "double")
    # NaN and Infinity are JSON extensions the contract rejects as the wrong type.
    return _is_number(value) & ~F.isnan(number) & (F.abs(number) != F.lit(float("inf")))


def _field_reason(rule: FieldRule, value: Column) -> Column:
    """The first reason this field fails, in the order ``contract.check_value`` checks them."""
    reason = F.when(value.isNull(), F.lit(f"missing:{rule.name}") if rule.required else F.lit(None))
    reason = reason.when(~_type_ok(rule, value), F.lit(f"type:{rule.name}"))
    text = F.try_variant_get(value, "$", "string")
    if rule.format == "date-time":
        bad_format = _typed(rule, value).isNull()
        if rule.pattern:
            bad_format = bad_format | ~text.rlike(rule.pattern)
        return reason.when(bad_format, F.lit(f"format:{rule.name}"))
    if rule.type == "string":
        length = F.char_length(text)
        too_short = length < rule.min_length if rule.min_length is not None else F.lit(False)
        too_long = length > rule.max_length if rule.max_length is not None else F.lit(False)
        reason = reason.when(too_short | too_long, F.lit(f"length:{rule.name}"))
        if rule.enum is not None:
            reason = reason.when(~text.isin(*rule.enum), F.lit(f"enum:{rule.name}"))
        if rule.pattern is not None:
            reason = reason.when(~text.rlike(rule.pattern), F.lit(f"pattern:{rule.name}"))
        return reason
    number = _typed(rule, value)
    below = number < rule.minimum if rule.minimum is not None else F.lit(False)
    above = number > rule.maximum if rule.maximum is not None else F.lit(False)
    return reason.when(below | above, F.lit(f"range:{rule.name}"))


def _body_text(bronze: DataFrame) -> Column:
    return F.col(BODY_COLUMN).cast("string")


def _reasons(bronze: DataFrame, body_map: Column) -> Column:
    """Every reason code for one bronze row, as an array (empty when the event is valid)."""
    body = F.col(BODY_COLUMN)
    malformed = body.isNull()
    if CORRUPT_RECORD_COLUMN in bronze.columns:
        malformed = malformed | F.col(CORRUPT_RECORD_COLUMN).isNotNull()
    whole_body = F.when(malformed, F.array(F.lit(BRONZE_MALFORMED))).when(
        F.octet_length(body) > MAX_BODY_BYTES, F.array(F.lit("too_large"))
    )
    if isinstance(bronze.schema[BODY_COLUMN].dataType, T.BinaryType):
        whole_body = whole_body.when(~F.is_valid_utf8(body), F.array(F.lit("utf8")))
    whole_body = whole_body.when(
        body_map.isNull(),
        F.when(F.try_parse_json(_body_text(bronze)).isNull(), F.array(F.lit("json"))).otherwise(
            F.array(F.lit("not_object"))
        ),
    )
    per_field = [_field_reason(rule, body_map[rule.name]) for rule in FIELDS]
    per_field.append(_future_time_reason(body_map))
    return whole_body.otherwise(F.array_compact(F.array(*per_field)))


def _future_time_reason(body_map: Column) -> Column:
    rule = next(r for r in FIELDS if r.format == "date-time")
    if rule.max_future_skew is None:
        return F.lit(None).cast("string")
    event_time = _typed(rule, body_map[rule.name])
    enqueued = F.coalesce(F.try_to_timestamp(F.col("EnqueuedTimeUtc")), F.current_timestamp())
    skew_micros = int(rule.max_future_skew.total_seconds() * 1_000_000)
    time_ok = (_field_reason(rule, body_map[rule.name])).isNull()
    is_future = (F.unix_micros(event_time) - F.unix_micros(enqueued)) > skew_micros
    return F.when(time_ok & is_future, F.lit("future_time"))


def _rescued(body_map: Column) -> Column:
    unknown = F.map_filter(body_map, lambda key, _value: ~key.isin(*_KNOWN_FIELDS))
    return F.when(F.size(unknown) > 0, F.to_json(unknown))


def check_bronze(bronze: DataFrame, processed_at: datetime) -> DataFrame:
    """Parse every bronze record's body and attach its reason codes (one row per input row).

    Args:
        bronze: Bronze envelope rows (``BRONZE_JSON_SCHEMA`` or ``BRONZE_AVRO_SCHEMA`` fields) with
            a ``source_file`` column.
        processed_at: The micro-batch's processing time, stamped on every row.

    Returns:
        The silver columns (null where the body lacks them) plus ``_reasons`` (empty when valid)
        and what quarantine keeps; split it with :func:`split_checked`.
    """
    body_map = F.from_json(_body_text(bronze), _BODY_MAP)
    parsed = bronze.select(
        "*", body_map.alias("_body"), F.lit(processed_at).cast("timestamp").alias("_processed_at")
    ).withColumn("_reasons", _reasons(bronze, F.col("_body")))
    return parsed.select(
        *[_typed(rule, F.col("_body")[rule.name]).alias(rule.column) for rule in FIELDS],
        _rescued(F.col("_body")).alias("_rescued_data"),
        F.col("PartitionId").alias("partition_id"),
        F.col("SequenceNumber").alias("sequence_number"),
        F.try_to_timestamp(F.col("EnqueuedTimeUtc")).alias("enqueued_time"),
        F.try_to_timestamp(F.col("IngestedTimeUtc")).alias("ingested_at"),
        F.col(SOURCE_FILE_COLUMN),
        F.col("_processed_at").alias("processed_at"),
        F.col("_reasons"),
        _body_text(bronze).alias("_body_text"),
        F.col("EventId").alias("_envelope_event_id"),
    )


def split_checked(checked: DataFrame) -> tuple[DataFrame, DataFrame]:
    """Split :func:`check_bronze` output into ``(valid, rejected)``; every row lands in exactly one.

    Valid rows are in ``SILVER_SCHEMA`` (not yet deduplicated); rejected rows are in
    ``QUARANTINE_SCHEMA`` with their reason codes.
    """
    defaults = {rule.column: rule.default for rule in FIELDS if rule.default is not None}
    valid = checked.where(F.size("_reasons") == 0).select(
        *[
            (F.coalesce(F.col(f.name), F.lit(defaults[f.name])) if f.name in defaults else F.col(f.name))
            .cast(f.dataType)
            .alias(f.name)
            for f in SILVER_SCHEMA.fields
            if f.name != "event_date"
        ],
        F.to_date(F.col("event_time")).alias("event_date"),
    )
    rejected = checked.where(F.size("_reasons") > 0).select(
        F.coalesce(F.col("event_id"), F.col("_envelope_event_id")).alias("event_id"),
        F.col("_reasons").alias("reasons"),
        F.col("_body_text").alias("body"),
        *[F.col(f.name) for f in QUARANTINE_SCHEMA.fields[3:]],
    )
    return valid, rejected


def bronze_to_silver(bronze: DataFrame, processed_at: datetime) -> tuple[DataFrame, DataFrame]:
    """Parse and re-check bronze records: ``(valid, rejected)``, see :func:`split_checked`."""
    return split_checked(check_bronze(bronze, processed_at))


def dedupe_events(silver: DataFrame) -> DataFrame:
    """Keep one row per ``event_id``: the first enqueued (then lowest partition and sequence)."""
    first = Window.partitionBy("event_id").orderBy("enqueued_time", "partition_id", "sequence_number")
    return silver.withColumn("_rank", F.row_number().over(first)).where("_rank = 1").drop("_rank")


def window_start(event_time: Column, window_minutes: int) -> Column:
    """The start of the tumbling window holding ``event_time`` (windows align to the epoch)."""
    size = window_minutes * 60 * 1_000_000
    micros = F.unix_micros(event_time)
    return F.timestamp_micros(micros - F.pmod(micros, F.lit(size)))


def touched_windows(silver: DataFrame, window_minutes: int) -> DataFrame:
    """The distinct gold keys (``location``, ``window_start``) that silver rows fall into."""
    return silver.select(
        "location", window_start(F.col("event_time"), window_minutes).alias("window_start")
    ).distinct()


# Sums go through a wide decimal so they do not depend on the order Spark adds rows in: a window
# recomputed in a later micro-batch or by reprocessing gives bit-identical results.
_EXACT = T.DecimalType(38, 12)


def _exact_avg(name: str) -> Column:
    return (F.sum(F.col(name).cast(_EXACT)) / F.count(F.lit(1))).cast("double")


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
        F.sum(F.col("precipitation").cast(_EXACT)).cast("double").alias("total_precipitation"),
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
