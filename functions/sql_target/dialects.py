"""How each SQL engine spells things: names, column types, quoting, parameters, tables and indexes.

A :class:`Dialect` knows one engine (SQL Server, PostgreSQL, SQLite) apart from the others: how it
quotes a validated identifier, types a gold column, marks and casts a parameter, and creates the
sync's tables and indexes idempotently. Subclasses override only what differs. The statements
built on it live by job: :mod:`functions.sql_target.reporting_views` (the Power BI views),
:mod:`functions.sql_target.sync_statements` (one sync's transaction), :mod:`functions.sql_target.schema` (the
whole schema, and its script). Identifiers follow the one rule of :mod:`contract.sql_names`;
values are always parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from contract import FIELDS
from contract.sql_names import (
    POSTGRESQL,
    SQL_SERVER,
    SQLITE,
    derived_names,
    identifier_problem,
    is_identifier,
)
from functions.sync_core import (
    DOUBLE_COLUMNS,
    GOLD_COLUMNS,
    INTEGER_COLUMNS,
    KEY_COLUMNS,
    TIMESTAMP_COLUMNS,
    to_utc_naive,
)
from settings import SettingsError

_MAX_LENGTH = {f.column: f.max_length for f in FIELDS if f.max_length}
TEXT_LENGTHS = {
    "location": _MAX_LENGTH.get("location", 64),
    "dominant_wind_direction": 8,
    "dominant_conditions": _MAX_LENGTH.get("conditions", 64),
}


def validate_identifier(name: str, what: str, engine: str | None = None) -> str:
    """Return ``name`` if it is a plain SQL identifier (that ``engine`` keeps whole, when given),
    else raise SettingsError (:mod:`contract.sql_names`)."""
    problem = identifier_problem(name, engine) if engine is not None else None
    if not is_identifier(name) and problem is None:
        problem = f"must be a plain SQL identifier (a letter or _, then letters, digits or _), got {name!r}"
    if problem is not None:
        raise SettingsError(f"{what} {problem}")
    return name


def column_kind(column: str) -> str:
    """The logical type of a gold column: ``timestamp``, ``double``, ``bigint`` or ``text``."""
    if column in TIMESTAMP_COLUMNS:
        return "timestamp"
    if column in DOUBLE_COLUMNS:
        return "double"
    if column in INTEGER_COLUMNS:
        return "bigint"
    return "text"


@dataclass(frozen=True)
class TableNames:
    """Validated names of everything the sync owns in the SQL database.

    Plain identifiers here; whether the engine keeps them whole is checked by its :class:`Dialect`.
    """

    schema: str = "dbo"
    table: str = "weather_summary"

    def __post_init__(self) -> None:
        validate_identifier(self.schema, "SQL_SCHEMA")
        validate_identifier(self.table, "SQL_TABLE")

    @property
    def watermark(self) -> str:
        return "sync_watermark"

    @property
    def runs(self) -> str:
        return "sync_runs"

    @property
    def location(self) -> str:
        """Integer surrogate keys for locations (stable across refreshes, unlike a rank)."""
        return derived_names(self.table)["location"]

    @property
    def window_index(self) -> str:
        """The index leading on ``window_start`` (Power BI's incremental refresh ranges)."""
        return derived_names(self.table)["window_index"]

    @property
    def unique_key(self) -> str:
        """The unique key on (``location``, ``window_start``)."""
        return derived_names(self.table)["unique_key"]

    fact_view = "fact_weather_window"
    dim_location_view = "dim_location"
    dim_date_view = "dim_date"
    stage = "weather_sync_stage"

    def all(self) -> dict[str, str]:
        """Every name, by what the settings call it."""
        derived = {f"SQL_TABLE's {kind} name": name for kind, name in derived_names(self.table).items()}
        return {"SQL_SCHEMA": self.schema, "SQL_TABLE": self.table, **derived}


class Dialect:
    """How one SQL engine spells things. Subclasses override only what differs."""

    name = "generic"
    #: The engine whose identifier limit applies (contract.sql_names).
    engine = POSTGRESQL
    types: ClassVar[dict[str, str]] = {
        "text": "VARCHAR({n})",
        "timestamp": "TIMESTAMP",
        "bigint": "BIGINT",
        "double": "DOUBLE PRECISION",
    }

    def __init__(self, names: TableNames) -> None:
        self.names = names
        for what, name in names.all().items():
            validate_identifier(name, what, self.engine)

    # identifiers and parameters
    def quote(self, identifier: str) -> str:
        return f'"{validate_identifier(identifier, "identifier", self.engine)}"'

    def qualified(self, table: str) -> str:
        return f"{self.quote(self.names.schema)}.{self.quote(table)}"

    @property
    def stage_table(self) -> str:
        return self.quote(self.names.stage)

    @property
    def watermark_key(self) -> str:
        """The value identifying the target table in the watermark table."""
        return f"{self.names.schema}.{self.names.table}"

    def param(self, kind: str) -> str:
        return "?"

    def adapt(self, value: Any) -> Any:
        """A Python value as the driver wants it."""
        return value

    def column_type(self, column: str) -> str:
        return self.types[column_kind(column)].format(n=TEXT_LENGTHS.get(column, 64))

    # the sync's tables and indexes
    def tables(self) -> dict[str, str]:
        """Each table the sync owns, and the body of its CREATE TABLE."""
        n = self.names
        gold = ", ".join(
            f"{self.quote(c)} {self.column_type(c)}{' NOT NULL' if c in KEY_COLUMNS else ''}"
            for c in GOLD_COLUMNS
        )
        ts, big, text = self.types["timestamp"], self.types["bigint"], self.types["text"]
        return {
            n.table: (
                f"{gold}, {self.quote('synced_at')} {ts} NOT NULL, "
                f"CONSTRAINT {self.quote(self.unique_key)} {self.unique_key_type} ({self.quote('location')}, "
                f"{self.quote('window_start')})"
            ),
            n.watermark: (
                f"{self.quote('table_name')} {text.format(n=128)} NOT NULL PRIMARY KEY, "
                f"{self.quote('delta_version')} {big} NOT NULL, {self.quote('synced_at')} {ts} NULL"
            ),
            n.runs: (
                f"{self.quote('run_id')} {text.format(n=36)} NOT NULL PRIMARY KEY, "
                f"{self.quote('started_at')} {ts} NOT NULL, {self.quote('finished_at')} {ts} NOT NULL, "
                f"{self.quote('from_version')} {big} NOT NULL, {self.quote('to_version')} {big} NOT NULL, "
                f"{self.quote('rows_upserted')} {big} NOT NULL, {self.quote('rows_deleted')} {big} NOT NULL, "
                f"{self.quote('rows_skipped')} {big} NOT NULL, {self.quote('max_source_updated_at')} "
                f"{ts} NULL"
            ),
            n.location: (
                f"{self.quote('location_key')} {self.identity_column()}, "
                f"{self.quote('location')} {self.column_type('location')} NOT NULL UNIQUE"
            ),
        }

    @property
    def unique_key(self) -> str:
        return self.names.unique_key

    unique_key_type = "UNIQUE"

    def create_indexes(self) -> list[str]:
        """Power BI's incremental refresh reads ``window_start`` ranges: index them (idempotent)."""
        n = self.names
        return [
            f"CREATE INDEX IF NOT EXISTS {self.quote(n.window_index)} ON {self.qualified(n.table)} "
            f"({self.quote('window_start')})"
        ]

    def create_schema(self) -> list[str]:
        return [f"CREATE SCHEMA IF NOT EXISTS {self.quote(self.names.schema)}"]

    def create_table(self, table: str, body: str) -> str:
        return f"CREATE TABLE IF NOT EXISTS {self.qualified(table)} ({body})"

    def create_view(self, view: str, body: str) -> str:
        return f"CREATE OR REPLACE VIEW {self.qualified(view)} AS {body}"

    def identity_column(self) -> str:
        return "INTEGER GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"

    def schema_probe(self) -> str:
        """A query that fails when the schema is not initialised."""
        return f"SELECT COUNT(*) FROM {self.qualified(self.names.watermark)} WHERE 1 = 0"

    def begin(self) -> list[str]:
        """What starts a transaction (the DDL's and a sync's)."""
        return []


class SqlServerDialect(Dialect):
    """T-SQL for SQL Server / Azure SQL Database (pyodbc + ODBC Driver 18 for SQL Server)."""

    name = "sqlserver"
    engine = SQL_SERVER

    types: ClassVar[dict[str, str]] = {
        "text": "NVARCHAR({n})",
        "timestamp": "DATETIME2(6)",
        "bigint": "BIGINT",
        "double": "FLOAT",
    }

    def quote(self, identifier: str) -> str:
        return f"[{validate_identifier(identifier, 'identifier', self.engine)}]"

    @property
    def stage_table(self) -> str:
        return f"#{validate_identifier(self.names.stage, 'identifier', self.engine)}"

    def create_schema(self) -> list[str]:
        # CREATE SCHEMA must be alone in its batch: SqlWarehouse runs it only when
        # schema_exists() finds nothing (see SqlWarehouse.init_schema).
        return [f"CREATE SCHEMA {self.quote(self.names.schema)}"]

    def schema_exists(self) -> str:
        return "SELECT SCHEMA_ID(?)"

    def create_table(self, table: str, body: str) -> str:
        name = self.qualified(table)
        return f"IF OBJECT_ID(N'{name}', N'U') IS NULL CREATE TABLE {name} ({body})"

    def create_view(self, view: str, body: str) -> str:
        return f"CREATE OR ALTER VIEW {self.qualified(view)} AS {body}"

    def identity_column(self) -> str:
        return "INT IDENTITY(1, 1) NOT NULL PRIMARY KEY"

    unique_key_type = "UNIQUE NONCLUSTERED"

    def create_indexes(self) -> list[str]:
        """The clustered index leads on ``window_start``; each step is guarded, so reruns are no-ops.

        A table made by an older DDL is a heap with the unique key nonclustered: the clustered
        index is simply added. Should the unique key have been made clustered, it is dropped and
        added back nonclustered around the new index. Another clustered index (a DBA's) is kept.
        """
        n, table = self.names, self.qualified(self.names.table)
        index_of = f"SELECT 1 FROM sys.indexes WHERE object_id = OBJECT_ID(N'{table}') AND "
        key = ", ".join(self.quote(c) for c in KEY_COLUMNS)
        return [
            f"IF EXISTS ({index_of}name = N'{self.unique_key}' AND type = 1) "
            f"ALTER TABLE {table} DROP CONSTRAINT {self.quote(self.unique_key)}",
            f"IF NOT EXISTS ({index_of}(name = N'{n.window_index}' OR type IN (1, 5))) "
            f"CREATE UNIQUE CLUSTERED INDEX {self.quote(n.window_index)} ON {table} "
            f"({self.quote('window_start')}, {self.quote('location')})",
            f"IF NOT EXISTS ({index_of}name = N'{self.unique_key}') ALTER TABLE {table} ADD CONSTRAINT "
            f"{self.quote(self.unique_key)} {self.unique_key_type} ({key})",
        ]

    def begin(self) -> list[str]:
        # Any error aborts and rolls back the whole transaction, not just the statement.
        return ["SET XACT_ABORT ON"]


class PostgresDialect(Dialect):
    """PostgreSQL 15+ through psqlODBC, which sends parameters as text: every one is CAST."""

    name = "postgresql"
    engine = POSTGRESQL

    types: ClassVar[dict[str, str]] = {
        "text": "VARCHAR({n})",
        "timestamp": "TIMESTAMP(6)",
        "bigint": "BIGINT",
        "double": "DOUBLE PRECISION",
    }

    casts: ClassVar[dict[str, str]] = {
        "text": "VARCHAR",
        "timestamp": "TIMESTAMP",
        "bigint": "BIGINT",
        "double": "DOUBLE PRECISION",
    }

    def param(self, kind: str) -> str:
        return f"CAST(? AS {self.casts[kind]})"


class SqliteDialect(Dialect):
    """SQLite (stdlib sqlite3), the embedded local warehouse. It has no schemas: names are bare."""

    name = "sqlite"
    engine = SQLITE

    types: ClassVar[dict[str, str]] = {
        "text": "TEXT",
        "timestamp": "TEXT",
        "bigint": "INTEGER",
        "double": "REAL",
    }

    def qualified(self, table: str) -> str:
        return self.quote(table)

    @property
    def watermark_key(self) -> str:
        return self.names.table

    def adapt(self, value: Any) -> Any:
        # One fixed text form, so equal instants compare equal and sort in time order.
        if isinstance(value, datetime):
            naive = to_utc_naive(value)
            assert naive is not None
            return naive.strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    def create_schema(self) -> list[str]:
        return []

    def create_view(self, view: str, body: str) -> str:
        return f"CREATE VIEW IF NOT EXISTS {self.qualified(view)} AS {body}"

    def identity_column(self) -> str:
        return "INTEGER PRIMARY KEY AUTOINCREMENT"

    def begin(self) -> list[str]:
        # Take the write lock up front: a second writer waits (busy timeout) instead of failing late.
        return ["BEGIN IMMEDIATE"]


def dialect_for(name: str, names: TableNames) -> Dialect:
    dialects: dict[str, type[Dialect]] = {
        "sqlserver": SqlServerDialect,
        "postgresql": PostgresDialect,
        "sqlite": SqliteDialect,
    }
    return dialects[name](names)
