"""Explicit Spark schemas: bronze envelope, silver, quarantine and gold.

The event columns are derived from ``contract.FIELDS`` (never spelled out here), so a contract
change reaches silver and gold without editing this file.
"""

from __future__ import annotations

from pyspark.sql import types as T

from contract import FIELDS, FieldRule, gold

# Columns stored as 32-bit integers; every other contract integer is a long (counters grow).
_INT32_COLUMNS = frozenset({"schema_version"})

BODY_COLUMN = "Body"
CORRUPT_RECORD_COLUMN = "_corrupt_record"
SOURCE_FILE_COLUMN = "source_file"

# The bronze envelope (docs/architecture.md "Bronze records"); Body is a string in JSON lines
# and bytes in Avro, so the transforms accept either.
_ENVELOPE_FIELDS = [
    T.StructField("SequenceNumber", T.LongType()),
    T.StructField("Offset", T.StringType()),
    T.StructField("EnqueuedTimeUtc", T.StringType()),
    T.StructField("SystemProperties", T.MapType(T.StringType(), T.StringType())),
    T.StructField("Properties", T.MapType(T.StringType(), T.StringType())),
    T.StructField(BODY_COLUMN, T.StringType()),
    T.StructField("PartitionId", T.StringType()),
    T.StructField("PartitionKey", T.StringType()),
    T.StructField("EventId", T.StringType()),
    T.StructField("IngestedTimeUtc", T.StringType()),
]

#: Bronze JSON lines as read by the file source; malformed lines land in ``_corrupt_record``.
BRONZE_JSON_SCHEMA = T.StructType([*_ENVELOPE_FIELDS, T.StructField(CORRUPT_RECORD_COLUMN, T.StringType())])

#: Bronze Avro as the local Avro data source yields it (Body as bytes, plus the file it came from).
BRONZE_AVRO_SCHEMA = T.StructType(
    [T.StructField(f.name, T.BinaryType()) if f.name == BODY_COLUMN else f for f in _ENVELOPE_FIELDS]
    + [T.StructField(SOURCE_FILE_COLUMN, T.StringType())]
)


def spark_type(rule: FieldRule) -> T.DataType:
    """The Spark type of one contract field's silver column."""
    if rule.format == "date-time":
        return T.TimestampType()
    if rule.type == "string":
        return T.StringType()
    if rule.type == "number":
        return T.DoubleType()
    if rule.type == "integer":
        return T.IntegerType() if rule.column in _INT32_COLUMNS else T.LongType()
    raise ValueError(f"unsupported contract type {rule.type!r} for {rule.name}")


#: The event's own columns, in contract order.
EVENT_FIELDS = [T.StructField(rule.column, spark_type(rule)) for rule in FIELDS]

#: Where a row came from and when each stage saw it: kept on silver and quarantine rows alike.
INGESTION_FIELDS = [
    T.StructField("partition_id", T.StringType()),
    T.StructField("sequence_number", T.LongType()),
    T.StructField("enqueued_time", T.TimestampType()),
    T.StructField("ingested_at", T.TimestampType()),
    T.StructField(SOURCE_FILE_COLUMN, T.StringType()),
    T.StructField("processed_at", T.TimestampType()),
]

METADATA_FIELDS = [T.StructField("_rescued_data", T.StringType()), *INGESTION_FIELDS]

SILVER_SCHEMA = T.StructType([*EVENT_FIELDS, *METADATA_FIELDS, T.StructField("event_date", T.DateType())])
SILVER_PARTITION_COLUMN = "event_date"

#: Columns that come from the event body: what "the same event" means when rebuilding silver.
SILVER_CONTENT_COLUMNS = [f.name for f in EVENT_FIELDS] + ["_rescued_data"]

QUARANTINE_SCHEMA = T.StructType(
    [
        T.StructField("event_id", T.StringType()),
        T.StructField("reasons", T.ArrayType(T.StringType())),
        T.StructField("body", T.StringType()),
        *INGESTION_FIELDS,
    ]
)

GOLD_KEY = list(gold.GOLD_KEY)
GOLD_VALUE_COLUMNS = list(gold.GOLD_VALUE_COLUMNS)
_GOLD_SPARK_TYPES = {
    "string": T.StringType(),
    "timestamp": T.TimestampType(),
    "long": T.LongType(),
    "double": T.DoubleType(),
}
GOLD_SCHEMA = T.StructType(
    [T.StructField(name, _GOLD_SPARK_TYPES[kind]) for name, kind in gold.GOLD_COLUMN_TYPES.items()]
)
