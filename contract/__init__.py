"""The data contract: one definition of every rule, imported by producer, Function and Spark alike.

* :mod:`contract.event` -- event v1 as ``event.v1.schema.json`` states it: fields, ranges, reason
  codes, :class:`Verdict`. Start here.
* :mod:`contract.validation` -- :func:`validate_event`: one body checked rule by rule (the plain,
  readable path and the reference for the fast one).
* :mod:`contract.fast_path` -- :func:`validate_batch` and :func:`parse_batch`: the same verdicts
  for a whole batch at a time, what the ingest Function and the Spark job run.
* :mod:`contract.bronze` -- the bronze record, its file formats and Avro schema, bronze reason codes.
* :mod:`contract.lake_layout` -- where bronze and quarantine files go and how they are named.
* :mod:`contract.gold` -- the gold table's columns, and why the sync skips a gold row.
* :mod:`contract.sql_names` -- the one rule for SQL identifiers, per engine.
"""

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
    FIELDS_BY_NAME,
    FUTURE_TIME,
    MAX_BODY_BYTES,
    MISSING,
    NOT_IN_ENUM,
    OUT_OF_RANGE,
    PATTERN_MISMATCH,
    SCHEMA,
    SCHEMA_PATH,
    SCHEMA_VERSION,
    TOO_LARGE,
    WRONG_TYPE,
    FieldRule,
    Verdict,
    field_reason,
)
from contract.fast_path import ParsedBatch, parse_batch, validate_batch
from contract.validation import check_value, utf8_text, validate_event

__all__ = [
    "BAD_FORMAT",
    "BAD_LENGTH",
    "BODY_NOT_JSON",
    "BODY_NOT_OBJECT",
    "BODY_NOT_UTF8",
    "EVENT_ID_FIELD",
    "EVENT_TIME_FIELD",
    "FIELDS",
    "FIELDS_BY_NAME",
    "FIELD_NOT_UTF8",
    "FUTURE_TIME",
    "MAX_BODY_BYTES",
    "MISSING",
    "NOT_IN_ENUM",
    "OUT_OF_RANGE",
    "PATTERN_MISMATCH",
    "SCHEMA",
    "SCHEMA_PATH",
    "SCHEMA_VERSION",
    "TOO_LARGE",
    "WRONG_TYPE",
    "FieldRule",
    "ParsedBatch",
    "Verdict",
    "check_value",
    "field_reason",
    "parse_batch",
    "utf8_text",
    "validate_batch",
    "validate_event",
]
