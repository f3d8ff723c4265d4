"""Where the job reads bronze and writes its tables: paths or URIs, or Unity Catalog names."""

from __future__ import annotations

from dataclasses import dataclass

from contract.bronze import FORMATS

#: The ``writer`` every commit of the job names in its ``userMetadata`` (spark/delta_tables.py),
#: so readers of the tables' history tell its writes from anyone else's.
SPARK_WRITER = "weather-spark"


@dataclass(frozen=True)
class LakeConfig:
    """Where the job reads and writes.

    Tables are paths (``abfss://...`` or local folders) or Unity Catalog names
    (``catalog.schema.table``); :func:`table_ref` makes either one a name Spark SQL takes.
    """

    bronze_path: str
    bronze_format: str
    silver_table: str
    quarantine_table: str
    gold_table: str
    checkpoint: str
    schema_location: str = ""

    def __post_init__(self) -> None:
        if self.bronze_format not in FORMATS:
            raise ValueError(f"bronze format must be one of {', '.join(FORMATS)}, got {self.bronze_format!r}")


def is_path(table: str) -> bool:
    """Whether a table is given by its location rather than a catalog name."""
    return "/" in table or ":" in table


def table_ref(table: str) -> str:
    """The table as Spark SQL names it: ``delta.`<path>``` for a location, else the name."""
    if is_path(table):
        if "`" in table:
            raise ValueError(f"a table path cannot contain a backtick: {table!r}")
        return f"delta.`{table}`"
    return table
