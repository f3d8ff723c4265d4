"""Explicit Spark schemas: bronze envelope, silver, quarantine and gold.

The event columns are derived from ``contract.FIELDS`` (never spelled out here), so a contract
change reaches silver and gold without editing this file.
"""

from __future__ import annotations

from pyspark.sql import types as T

from contract import FIELDS, FieldRule, bronze, gold

# Columns stored as 32-bit integers; every other contract integer is a long (counters grow).
_INT32_COLUMNS = frozenset({"schema_version"})

BODY_COLUMN = "Body"
CORRUPT_RECORD_COLUMN = "_corrupt_record"
#: Auto Loader's rescued-data column on bronze (silver's own ``_rescued_data`` holds a body's
#: unknown fields, hence another name).
RESCUED_ENVELOPE_COLUMN = "_rescued_envelope"
SOURCE_FILE_COLUMN = "source_file"

_JSON_TYPES: dict[str, T.DataType] = {
    "long": T.LongType(),
    "string": T.StringType(),
    "optional_string": T.StringType(),
    "time": T.StringType(),
    "properties": T.MapType(T.StringType(), T.StringType()),  # JSON lines keep values as text
    "body": T.StringType(),
}

#: Bronze JSON lines as the file source reads them; malformed lines land in ``_corrupt_record``.
BRONZE_JSON_SCHEMA = T.StructType(
    [T.StructField(f.name, _JSON_TYPES[f.kind]) for f in bronze.RECORD_FIELDS]
    + [T.StructField(CORRUPT_RECORD_COLUMN, T.StringType())]
)

# The Avro fields the job reads, by name (Spark matches Avro fields by name, so the property maps,
# which the job does not use, are not read at all).
_AVRO_READ_TYPES: dict[str, T.DataType] = {
    "SequenceNumber": T.LongType(),
    BODY_COLUMN: T.BinaryType(),
    bronze.EXACT_ENQUEUED_TIME: T.StringType(),
    "PartitionId": T.StringType(),
    "EventId": T.StringType(),
    "IngestedTimeUtc": T.StringType(),
    bronze.RECORDS_IN_FILE: T.LongType(),
}
#: Bronze Avro (Event Hubs Capture's record plus the pipeline's fields) as the job reads it.
BRONZE_AVRO_SCHEMA = T.StructType(
    [
        T.StructField(name, _AVRO_READ_TYPES[name])
        for name in bronze.AVRO_FIELD_NAMES
        if name in _AVRO_READ_TYPES
    ]
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
