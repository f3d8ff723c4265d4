"""Pure DataFrame -> DataFrame transforms: bronze -> silver (valid, rejected), silver -> gold.

Nothing here reads or writes storage. The contract re-check runs the contract's own validator
(``contract.parse_batch``) and yields its reason codes, plus ``bronze_malformed`` for a bronze
record that is not a readable envelope with a body and ``bronze_rescued`` for one whose envelope
Auto Loader had to rescue (contract/bronze.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, overload

import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_type

from contract import EVENT_ID_FIELD, FIELDS, FieldRule, ParsedBatch, parse_batch, utf8_text
from contract.bronze import BRONZE_INCOMPLETE, BRONZE_MALFORMED, BRONZE_RESCUED, RECORDS_IN_FILE
from spark.schemas import (
    BODY_COLUMN,
    CORRUPT_RECORD_COLUMN,
    EVENT_FIELDS,
    GOLD_SCHEMA,
    QUARANTINE_SCHEMA,
    RESCUED_ENVELOPE_COLUMN,
    SILVER_SCHEMA,
    SOURCE_FILE_COLUMN,
)


def check_bronze(
    bronze: DataFrame, processed_at: datetime, incomplete_files: Sequence[str] = ()
) -> DataFrame:
    """Parse every bronze record's body and attach its reason codes (one row per input row).

    The verdict is the ingest Function's own: the body goes through ``contract.parse_batch``
    (the validator the Function runs) in Spark's Python workers, a batch of Arrow rows at a time.
    A second rendering of the contract as Spark expressions would have to agree with Python's
    JSON, regex and time parsing on every odd body; this cannot disagree.

    Args:
        bronze: Bronze envelope rows (``BRONZE_JSON_SCHEMA`` or ``BRONZE_AVRO_SCHEMA`` fields) with
            a ``source_file`` column.
        processed_at: The micro-batch's processing time, stamped on every row.
        incomplete_files: Files found short of their ``RecordsInFile``: every row of them is
            rejected as ``bronze_incomplete``.

    Returns:
        The silver columns (meaningful when valid) plus ``_reasons`` (empty when valid) and what
        quarantine keeps; split it with :func:`split_checked`.
    """
    body = F.col(BODY_COLUMN)
    # JSON lines: the reader's column for lines that are not JSON (Avro has none); Auto Loader:
    # the envelope values it rescued.
    corrupt = _optional(bronze, CORRUPT_RECORD_COLUMN)
    rescued = _optional(bronze, RESCUED_ENVELOPE_COLUMN)
    found = [
        F.when(body.isNull() | corrupt.isNotNull(), F.lit(BRONZE_MALFORMED)),
        F.when(rescued.isNotNull(), F.lit(BRONZE_RESCUED)),
    ]
    if incomplete_files:
        found.append(F.when(F.col(SOURCE_FILE_COLUMN).isin(*incomplete_files), F.lit(BRONZE_INCOMPLETE)))
    bronze_reasons = F.filter(F.array(*found), lambda reason: reason.isNotNull())
    # Body goes as it is (text or bytes) and the envelope's times as text: the Python step reads
    # both with Arrow, cheaper than Spark's per-row copy and time parser (measured with JFR).
    inputs = bronze.select(
        body.alias(BODY_COLUMN),
        bronze_reasons.alias(_BRONZE_REASONS),
        F.col("EnqueuedTimeUtc"),
        F.col("IngestedTimeUtc"),
        F.col("PartitionId").alias("partition_id"),
        F.col("SequenceNumber").alias("sequence_number"),
        F.col(SOURCE_FILE_COLUMN),
        F.col("EventId").alias("_envelope_event_id"),
        corrupt.alias(CORRUPT_RECORD_COLUMN),
        _optional(bronze, RECORDS_IN_FILE, T.LongType()).alias("records_in_file"),
    )
    checked = inputs.mapInArrow(check_arrow_batches, _CHECKED_SCHEMA)
    kept_text = F.coalesce(F.col(_REJECTED_BODY).cast("string"), F.col(CORRUPT_RECORD_COLUMN))
    return checked.select(
        *[F.col(rule.column) for rule in FIELDS],
        "_rescued_data",
        "partition_id",
        "sequence_number",
        "enqueued_time",
        "ingested_at",
        SOURCE_FILE_COLUMN,
        "records_in_file",
        F.lit(processed_at).cast("timestamp").alias("processed_at"),
        "_reasons",
        # Only quarantine needs the text; valid rows skip it, which keeps the batch small.
        F.when(F.size("_reasons") > 0, kept_text).alias("_body_text"),
        "_envelope_event_id",
    )


def _optional(frame: DataFrame, name: str, kind: T.DataType | None = None) -> Column:
    return F.col(name) if name in frame.columns else F.lit(None).cast(kind or T.StringType())


# What check_bronze's Python step adds to the envelope columns it passes through. Columns only
# quarantine reads (the body, the envelope's eventId) come back for rejected rows only (null
# otherwise): fewer values to convert.
_BRONZE_REASONS = "_bronze_reasons"
_REJECTED_BODY = "_rejected_body"
_PASSED_THROUGH = [
    T.StructField("partition_id", T.StringType()),
    T.StructField("sequence_number", T.LongType()),
    T.StructField(SOURCE_FILE_COLUMN, T.StringType()),
    T.StructField(CORRUPT_RECORD_COLUMN, T.StringType()),
    T.StructField("records_in_file", T.LongType()),
]
_CHECKED_SCHEMA = T.StructType(
    [
        *EVENT_FIELDS,
        T.StructField("_rescued_data", T.StringType()),
        T.StructField("_reasons", T.ArrayType(T.StringType())),
        T.StructField(_REJECTED_BODY, T.BinaryType()),
        T.StructField("_envelope_event_id", T.StringType()),
        T.StructField("enqueued_time", T.TimestampType()),
        T.StructField("ingested_at", T.TimestampType()),
        *_PASSED_THROUGH,
    ]
)


def check_arrow_batches(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """check_bronze's ``mapInArrow`` step: each batch of envelope rows through the contract."""
    for batch in batches:
        yield check_arrow(batch)


def check_arrow(batch: pa.RecordBatch) -> pa.RecordBatch:
    """One Arrow batch of check_bronze's inputs -> its checked rows (``_CHECKED_SCHEMA``)."""
    rows = batch.num_rows
    if not rows:
        return pa.RecordBatch.from_pylist([], schema=_CHECKED_ARROW_SCHEMA)
    body_column = batch.column(BODY_COLUMN).cast(pa.binary())  # text (JSON lines) or bytes (Avro)
    bodies = body_column.to_pylist()
    reasons_column = batch.column(_BRONZE_REASONS)
    found = pc.max(pc.list_value_length(reasons_column)).as_py()
    bronze_reasons = reasons_column.to_pylist() if found else [None] * rows
    enqueued_times = _utc_times(batch.column("EnqueuedTimeUtc"))
    enqueued = enqueued_times.cast(pa.int64())
    if enqueued.null_count:  # the future rule then looks at now, as validate_event does
        enqueued = enqueued.fill_null(_micros(datetime.now(UTC)))
    earliest = pc.min(enqueued).as_py()
    parsed = parse_batch(
        [body or b"" for body in bodies], _MicrosTimes(enqueued.to_pylist()), _from_micros(earliest)
    )
    if set(map(type, parsed.outcomes)) == {str} and not any(bronze_reasons):  # the usual batch
        valid = None
        reasons = pa.ListArray.from_arrays(pa.array([0] * (rows + 1), pa.int32()), pa.array([], pa.string()))
        rejected = [pa.nulls(rows, pa.binary()), pa.nulls(rows, pa.string())]
    else:
        codes = [
            list(bad) if bad else [] if type(outcome) is str else list(outcome.reasons)  # type: ignore[union-attr]
            for outcome, bad in zip(parsed.outcomes, bronze_reasons, strict=True)
        ]
        valid = [not code for code in codes]
        reasons = pa.array(codes, pa.list_(pa.string()))
        mask = pa.array(valid)
        rejected = [
            pc.if_else(mask, pa.nulls(rows, column.type), column)
            for column in (body_column, batch.column("_envelope_event_id"))
        ]
    columns = [_event_column(rule, parsed, valid) for rule in FIELDS]
    columns += [pa.array(_only(valid, parsed.unknown_fields), pa.string()), reasons, *rejected]
    columns += [enqueued_times, _utc_times(batch.column("IngestedTimeUtc"))]
    columns += [batch.column(field.name) for field in _PASSED_THROUGH]
    return pa.RecordBatch.from_arrays(columns, schema=_CHECKED_ARROW_SCHEMA)


def _event_column(rule: FieldRule, parsed: ParsedBatch, valid: list[bool] | None) -> pa.Array:
    if rule.name == EVENT_ID_FIELD and valid is not None:
        # Quarantine keeps a rejected body's eventId too, when it is a string UTF-8 can hold.
        event_ids = [o if type(o) is str else o.event_id for o in parsed.outcomes]  # type: ignore[union-attr]
        return pa.array(
            [i if i is None or i.isascii() or utf8_text(i) else None for i in event_ids], pa.string()
        )
    values = _only(valid, parsed.values[rule.name])
    if rule.format != "date-time":
        return pa.array(values, _ARROW_TYPES[rule.name])
    try:
        # Arrow's ISO 8601 cast reads the valid times as fromisoformat does, much faster than
        # converting datetimes; it refuses more than six fractional digits (fromisoformat cuts).
        return pc.cast(pa.array(values, pa.string()), _ARROW_TYPES[rule.name])
    except pa.ArrowInvalid:
        return pa.array(_only(valid, parsed.event_times), _ARROW_TYPES[rule.name])


def _utc_times(texts: pa.Array) -> pa.Array:
    """The envelope's RFC 3339 times as UTC timestamps; null where a text is not a time (as
    Spark's ``try_to_timestamp``). Arrow reads a whole column at once; a column with an odd
    value is read value by value."""
    try:
        return pc.cast(texts, _TIMESTAMP)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # As bytes: what a damaged Avro block decodes to need not be UTF-8 (nor, then, a time).
        raw = texts.cast(pa.binary()).to_pylist()
        return pa.array([_utc_time(t.decode("utf-8", "replace") if t else None) for t in raw], _TIMESTAMP)


def _utc_time(text: str | None) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text) if text else None
    except ValueError:
        return None
    if moment is not None and moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # Spark reads a time without offset in UTC here
    return moment


def _only(valid: list[bool] | None, values: list[Any]) -> list[Any]:
    """The values of valid rows; None for the others (a bronze-rejected row's body may parse)."""
    if valid is None:
        return values
    return [value if ok else None for value, ok in zip(values, valid, strict=True)]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def _from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


class _MicrosTimes(Sequence[datetime]):
    """Epoch microseconds read as UTC datetimes one at a time: the contract reads few of them,
    and Arrow's ``to_pylist`` of a timestamp column costs ~3 µs a row (measured)."""

    def __init__(self, micros: list[int]) -> None:
        self._micros = micros

    def __len__(self) -> int:
        return len(self._micros)

    @overload
    def __getitem__(self, index: int) -> datetime: ...

    @overload
    def __getitem__(self, index: slice) -> list[datetime]: ...

    def __getitem__(self, index: int | slice) -> datetime | list[datetime]:
        if isinstance(index, slice):
            return [_from_micros(m) for m in self._micros[index]]
        return _from_micros(self._micros[index])


_ARROW_TYPES = {
    rule.name: to_arrow_type(field.dataType) for rule, field in zip(FIELDS, EVENT_FIELDS, strict=True)
}
_TIMESTAMP = to_arrow_type(T.TimestampType())
_CHECKED_ARROW_SCHEMA = pa.schema(
    [pa.field(field.name, to_arrow_type(field.dataType)) for field in _CHECKED_SCHEMA.fields]
)


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


#: What :func:`file_counts` gives per bronze file of a checked batch.
FILE_COUNT_COLUMNS = [SOURCE_FILE_COLUMN, "rows", "sequenced", "written", "valid"]


def file_counts(checked: DataFrame) -> DataFrame:
    """Per bronze file of a :func:`check_bronze` batch: its rows, rows with a sequence number, the
    ``RecordsInFile`` it was written with (null for files from before the field) and valid rows."""
    return checked.groupBy(SOURCE_FILE_COLUMN).agg(
        F.count(F.lit(1)).alias("rows"),
        F.count("sequence_number").alias("sequenced"),
        F.max("records_in_file").alias("written"),
        F.sum((F.size("_reasons") == 0).cast("long")).alias("valid"),
    )


def is_incomplete(rows: int, sequenced: int, written: int | None) -> bool:
    """Whether a file's readable records are not the ones it was written with: fewer (cut,
    truncated, a damaged block skipped), more, or lines without a sequence number (damaged)."""
    return bool(written) and not rows == sequenced == written


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


#: The silver columns :func:`silver_to_gold` reads.
GOLD_INPUT_COLUMNS = [
    "location",
    "event_time",
    "temperature",
    "humidity",
    "wind_speed",
    "precipitation",
    "wind_direction",
    "conditions",
]


def touched_windows(silver: DataFrame, window_minutes: int) -> DataFrame:
    """The distinct gold keys (``location``, ``window_start``) that silver rows fall into."""
    return silver.select(
        "location", window_start(F.col("event_time"), window_minutes).alias("window_start")
    ).distinct()


# Sums are taken over fixed-point integers (nano-units) so they do not depend on the order Spark
# adds rows in: a window recomputed in a later micro-batch or by reprocessing gives bit-identical
# doubles. A long holds 9.2e18 nano-units: ~18 million readings of 500 per window.
_FIXED_POINT = 1_000_000_000


def _fixed_point(name: str) -> Column:
    # rint (half to even on the double) rather than round (half up through a BigDecimal made from
    # the double's text, per row: ~3% of the job's JVM time, JFR). Any rounding would do, as long
    # as every path takes it: gold from a micro-batch, from silver and from reprocessing.
    return F.rint(F.col(name) * _FIXED_POINT).cast("long")


def _exact_sum(name: str) -> Column:
    return F.sum(_fixed_point(name))


def _exact_avg(name: str) -> Column:
    return (_exact_sum(name) / F.count(F.lit(1)) / _FIXED_POINT).cast("double")


_GOLD_KEY = ["location", "window_start"]


def dominant_values(windowed: DataFrame, column: str) -> DataFrame:
    """The most frequent non-null ``column`` value per gold key, ties to the least (as Spark orders
    strings): ``mode(column, deterministic => true)``.

    Counted with a plain aggregation per value, then the least ``(-count, value)`` per key: two
    hash aggregations of primitive buffers, several times faster than ``mode``'s object buffers.
    """
    counts = windowed.where(F.col(column).isNotNull()).groupBy(*_GOLD_KEY, column).count()
    least = F.min(F.struct((-F.col("count")).alias("rank"), F.col(column).alias("value")))
    return (
        counts.groupBy(*_GOLD_KEY)
        .agg(least.alias("_least"))
        .select(*_GOLD_KEY, F.col("_least.value").alias(f"dominant_{column}"))
    )


def silver_to_gold(silver: DataFrame, window_minutes: int, updated_at: datetime) -> DataFrame:
    """Aggregate silver rows into gold rows, one per (``location``, ``window_start``).

    ``dominant_*`` is the most frequent value in the window; ties go to the alphabetically first.
    """
    size = window_minutes * 60 * 1_000_000
    windowed = silver.withColumn("window_start", window_start(F.col("event_time"), window_minutes))
    gold = (
        windowed.groupBy(*_GOLD_KEY)
        .agg(
            F.count(F.lit(1)).alias("event_count"),
            _exact_avg("temperature").alias("avg_temperature"),
            F.min("temperature").alias("min_temperature"),
            F.max("temperature").alias("max_temperature"),
            _exact_avg("humidity").alias("avg_humidity"),
            _exact_avg("wind_speed").alias("avg_wind_speed"),
            F.max("wind_speed").alias("max_wind_speed"),
            (_exact_sum("precipitation") / _FIXED_POINT).cast("double").alias("total_precipitation"),
        )
        .join(dominant_values(windowed, "wind_direction"), _GOLD_KEY, "left")
        .join(dominant_values(windowed, "conditions"), _GOLD_KEY, "left")
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
