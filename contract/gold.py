"""The gold table ``weather_summary``: its columns, shared by the Spark job (writer) and the SQL sync.

One definition so the Delta table, the SQL table and the sync's row checks cannot drift apart.
Types are logical: ``string``, ``timestamp`` (UTC), ``long`` and ``double``. Also the reason
codes the sync gives a gold row it cannot write (docs/sql-and-powerbi.md).
"""

from __future__ import annotations

GOLD_KEY: tuple[str, str] = ("location", "window_start")

GOLD_COLUMN_TYPES: dict[str, str] = {
    "location": "string",
    "window_start": "timestamp",
    "window_end": "timestamp",
    "event_count": "long",
    "avg_temperature": "double",
    "min_temperature": "double",
    "max_temperature": "double",
    "avg_humidity": "double",
    "avg_wind_speed": "double",
    "max_wind_speed": "double",
    "total_precipitation": "double",
    "dominant_wind_direction": "string",
    "dominant_conditions": "string",
    "updated_at": "timestamp",
}

GOLD_COLUMNS: tuple[str, ...] = tuple(GOLD_COLUMN_TYPES)

#: The aggregate columns: everything but the key and the bookkeeping timestamp.
GOLD_VALUE_COLUMNS: tuple[str, ...] = tuple(
    c for c in GOLD_COLUMNS if c not in GOLD_KEY and c != "updated_at"
)


def gold_columns_of_type(logical_type: str) -> frozenset[str]:
    """Return the gold columns of one logical type."""
    return frozenset(c for c, t in GOLD_COLUMN_TYPES.items() if t == logical_type)


# Why the sync skips a gold row (stable codes, counted per code in the sync's summary and log):
# ``<problem>:<column>`` (skip_reason), or the bare problem for a delete whose key is unreadable.
SKIP_NULL_KEY = "null_key"  # a key column is null or blank
SKIP_WRONG_TYPE = "type"  # a value of the wrong type for its column
SKIP_NON_FINITE = "non_finite"  # NaN or +-Infinity in a number column


def skip_reason(problem: str, column: str) -> str:
    """The reason code for a gold row the sync cannot write (``non_finite:avg_temperature``)."""
    return f"{problem}:{column}"
