"""The SQL target adapter: the one place that knows SQL Server, PostgreSQL and SQLite apart.

A :class:`Dialect` renders every statement (DDL, staging, the upsert, the watermark
compare-and-set) from validated identifiers; values are always parameters. A
:class:`SqlWarehouse` runs them: one transaction per sync, which locks the watermark row,
stages the plan, applies ONE upsert (``MERGE ... WITH (HOLDLOCK)`` on SQL Server, ``MERGE`` on
PostgreSQL, ``INSERT ... ON CONFLICT`` on SQLite), applies deletes, advances the watermark and
records the run. Rows whose values did not change are not touched, so ``synced_at`` keeps its
value when a run is replayed.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import struct
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from contract import FIELDS
from functions import credentials
from functions.sync_core import (
    DOUBLE_COLUMNS,
    GOLD_COLUMNS,
    INTEGER_COLUMNS,
    KEY_COLUMNS,
    TIMESTAMP_COLUMNS,
    ApplyResult,
    RunInfo,
    SyncPlan,
    to_utc_naive,
)
from settings import Settings, SettingsError

log = logging.getLogger(__name__)

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
SQL_SERVER_SCOPE = "https://database.windows.net/.default"
SQL_COPT_SS_ACCESS_TOKEN = 1256  # msodbcsql pre-connect attribute for an Entra ID access token
STAGE_CHUNK_ROWS = 5_000

# Azure SQL / SQL Server native errors worth retrying the whole transaction for: deadlock victim,
# database unavailable / failover / throttling, connection dropped. 18456 (login failed) is not.
SQL_SERVER_TRANSIENT = frozenset(
    {1205, 40613, 40197, 40501, 49918, 49919, 49920, 4060, 10928, 10929, 233, 10053, 10054, 10060, 64}
)
POSTGRES_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})
POSTGRES_TRANSIENT_TEXT = ("could not serialize access", "deadlock detected")
SQLITE_BUSY, SQLITE_LOCKED = 5, 6

_MAX_LENGTH = {f.column: f.max_length for f in FIELDS if f.max_length}
TEXT_LENGTHS = {
    "location": _MAX_LENGTH.get("location", 64),
    "dominant_wind_direction": 8,
    "dominant_conditions": _MAX_LENGTH.get("conditions", 64),
}
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December")  # fmt: skip
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def validate_identifier(name: str, what: str) -> str:
    """Return ``name`` if it is a plain SQL identifier, else raise SettingsError."""
    if not IDENTIFIER.fullmatch(name):
        raise SettingsError(f"{what} must match {IDENTIFIER.pattern} (letters, digits, _), got {name!r}")
    return name


def _kind(column: str) -> str:
    if column in TIMESTAMP_COLUMNS:
        return "timestamp"
    if column in DOUBLE_COLUMNS:
        return "double"
    if column in INTEGER_COLUMNS:
        return "bigint"
    return "text"


@dataclass(frozen=True)
class TableNames:
    """Validated names of everything the sync owns in the SQL database."""

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
        return validate_identifier(f"{self.table}_location", "SQL_TABLE + _location")

    @property
    def window_index(self) -> str:
        """The index leading on ``window_start`` (Power BI's incremental refresh ranges)."""
        return validate_identifier(f"ix_{self.table}_window_start", "ix_ + SQL_TABLE + _window_start")

    fact_view = "fact_weather_window"
    dim_location_view = "dim_location"
    dim_date_view = "dim_date"
    stage = "weather_sync_stage"


# --- dialects -------------------------------------------------------------------------------------
class Dialect:
    """How one SQL engine spells things. Subclasses override only what differs."""

    name = "generic"
    types: ClassVar[dict[str, str]] = {
        "text": "VARCHAR({n})",
        "timestamp": "TIMESTAMP",
        "bigint": "BIGINT",
        "double": "DOUBLE PRECISION",
    }

    def __init__(self, names: TableNames) -> None:
        self.names = names

    # identifiers and parameters
    def quote(self, identifier: str) -> str:
        return f'"{validate_identifier(identifier, "identifier")}"'

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
        return self.types[_kind(column)].format(n=TEXT_LENGTHS.get(column, 64))

    # DDL
    def ddl(self) -> list[str]:
        """Idempotent statements creating every table and view, in order."""
        n = self.names
        gold = ", ".join(
            f"{self.quote(c)} {self.column_type(c)}{' NOT NULL' if c in KEY_COLUMNS else ''}"
            for c in GOLD_COLUMNS
        )
        ts, big, text = self.types["timestamp"], self.types["bigint"], self.types["text"]
        tables = {
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
        statements = self.create_schema()
        statements += [self.create_table(name, body) for name, body in tables.items()]
        statements += self.create_indexes()
        statements += [self.create_view(view, body) for view, body in self.views().items()]
        return statements

    @property
    def unique_key(self) -> str:
        return f"uq_{self.names.table}_key"

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

    # reporting views
    def date_key(self, expr: str) -> str:
        parts = (f"EXTRACT({part} FROM {expr})" for part in ("YEAR", "MONTH", "DAY"))
        return "CAST({} * 10000 + {} * 100 + {} AS INTEGER)".format(*parts)

    def hour_of(self, expr: str) -> str:
        return f"CAST(EXTRACT(HOUR FROM {expr}) AS INTEGER)"

    def fact_view(self) -> str:
        q, n = self.quote, self.names
        measures = ", ".join(f"w.{q(c)}" for c in GOLD_COLUMNS if c not in ("location",))
        return (
            f"SELECT l.{q('location_key')}, {self.date_key('w.' + q('window_start'))} AS {q('date_key')}, "
            f"{self.hour_of('w.' + q('window_start'))} AS {q('window_hour')}, w.{q('location')}, {measures}, "
            f"w.{q('synced_at')} FROM {self.qualified(n.table)} AS w "
            f"INNER JOIN {self.qualified(n.location)} AS l ON l.{q('location')} = w.{q('location')}"
        )

    def dim_location_view(self) -> str:
        q = self.quote
        return f"SELECT {q('location_key')}, {q('location')} FROM {self.qualified(self.names.location)}"

    @staticmethod
    def _case(expr: str, names: Sequence[str]) -> str:
        whens = " ".join(f"WHEN {i} THEN '{name}'" for i, name in enumerate(names, start=1))
        return f"CASE {expr} {whens} END"

    def date_columns(self, d: str, year: str, month: str, day: str, dow: str, iso_week: str) -> str:
        """The dim_date select list from expressions for the parts (dow: Monday = 1)."""
        q = self.quote
        return (
            f"{year} * 10000 + {month} * 100 + {day} AS {q('date_key')}, {d} AS {q('date')}, "
            f"{year} AS {q('year')}, ({month} + 2) / 3 AS {q('quarter')}, {month} AS {q('month')}, "
            f"{self._case(month, MONTH_NAMES)} AS {q('month_name')}, "
            f"{self._case(month, [m[:3] for m in MONTH_NAMES])} AS {q('month_short')}, "
            f"{year} * 100 + {month} AS {q('year_month')}, {day} AS {q('day_of_month')}, "
            f"{dow} AS {q('day_of_week')}, {self._case(dow, DAY_NAMES)} AS {q('day_name')}, "
            f"{iso_week} AS {q('iso_week')}, CASE WHEN {dow} >= 6 THEN 1 ELSE 0 END AS {q('is_weekend')}"
        )

    def dim_date_view(self) -> str:
        raise NotImplementedError

    def views(self) -> dict[str, str]:
        n = self.names
        return {
            n.dim_location_view: self.dim_location_view(),
            n.dim_date_view: self.dim_date_view(),
            n.fact_view: self.fact_view(),
        }

    # the sync transaction
    def begin(self) -> list[str]:
        return []

    def ensure_watermark_row(self) -> tuple[str, list[Any]]:
        raise NotImplementedError

    def lock_watermark(self) -> str:
        q = self.quote
        return (
            f"SELECT {q('delta_version')} FROM {self.qualified(self.names.watermark)} "
            f"WHERE {q('table_name')} = {self.param('text')} FOR UPDATE"
        )

    def read_watermark(self) -> str:
        q = self.quote
        return (
            f"SELECT {q('delta_version')} FROM {self.qualified(self.names.watermark)} "
            f"WHERE {q('table_name')} = {self.param('text')}"
        )

    def stage_columns(self) -> list[str]:
        return ["op", *GOLD_COLUMNS]

    def create_stage(self) -> list[str]:
        cols = ", ".join(
            [f"{self.quote('op')} CHAR(1) NOT NULL"]
            + [f"{self.quote(c)} {self.column_type(c)}" for c in GOLD_COLUMNS]
        )
        return [
            f"DROP TABLE IF EXISTS {self.stage_table}",
            f"CREATE TEMPORARY TABLE {self.stage_table} ({cols})",
        ]

    def insert_stage(self) -> str:
        cols = self.stage_columns()
        values = ", ".join(self.param("text" if c == "op" else _kind(c)) for c in cols)
        return f"INSERT INTO {self.stage_table} ({', '.join(self.quote(c) for c in cols)}) VALUES ({values})"

    def key_match(self, a: str, b: str) -> str:
        return " AND ".join(f"{a}.{self.quote(k)} = {b}.{self.quote(k)}" for k in KEY_COLUMNS)

    def insert_locations(self) -> str:
        q, n = self.quote, self.names
        return (
            f"INSERT INTO {self.qualified(n.location)} ({q('location')}) SELECT DISTINCT s.{q('location')} "
            f"FROM {self.stage_table} AS s WHERE s.{q('op')} = 'U' AND NOT EXISTS (SELECT 1 FROM "
            f"{self.qualified(n.location)} AS l WHERE l.{q('location')} = s.{q('location')})"
        )

    def upsert(self) -> str:
        raise NotImplementedError

    def upsert_params(self, run: RunInfo) -> list[Any]:
        return [self.adapt(run.synced_at), self.adapt(run.synced_at)]

    def delete_keys(self) -> str:
        """Delete the target rows the stage marks ``D``."""
        q, target = self.quote, self.qualified(self.names.table)
        return (
            f"DELETE FROM {target} WHERE EXISTS (SELECT 1 FROM {self.stage_table} AS s WHERE "
            f"s.{q('op')} = 'D' AND " + " AND ".join(f"s.{q(k)} = {target}.{q(k)}" for k in KEY_COLUMNS) + ")"
        )

    def delete_missing(self) -> str:
        """Delete the target rows the stage does not mention (the stage holds a whole snapshot)."""
        q, target = self.quote, self.qualified(self.names.table)
        return (
            f"DELETE FROM {target} WHERE NOT EXISTS (SELECT 1 FROM {self.stage_table} AS s WHERE "
            + " AND ".join(f"s.{q(k)} = {target}.{q(k)}" for k in KEY_COLUMNS)
            + ")"
        )

    def advance_watermark(self) -> str:
        q = self.quote
        return (
            f"UPDATE {self.qualified(self.names.watermark)} SET {q('delta_version')} = "
            f"{self.param('bigint')}, "
            f"{q('synced_at')} = {self.param('timestamp')} WHERE {q('table_name')} = {self.param('text')} "
            f"AND {q('delta_version')} = {self.param('bigint')}"
        )

    def insert_run(self) -> str:
        cols = ("run_id", "started_at", "finished_at", "from_version", "to_version", "rows_upserted",
                "rows_deleted", "rows_skipped", "max_source_updated_at")  # fmt: skip
        kinds = (
            "text",
            "timestamp",
            "timestamp",
            "bigint",
            "bigint",
            "bigint",
            "bigint",
            "bigint",
            "timestamp",
        )
        return (
            f"INSERT INTO {self.qualified(self.names.runs)} ({', '.join(self.quote(c) for c in cols)}) "
            f"VALUES ({', '.join(self.param(k) for k in kinds)})"
        )

    def statements(self) -> list[str]:
        """Every statement this dialect can emit (for parsing them in tests)."""
        return [
            *self.ddl(),
            self.schema_probe(),
            *self.begin(),
            self.ensure_watermark_row()[0],
            self.read_watermark(),
            self.lock_watermark(),
            *self.create_stage(),
            self.insert_stage(),
            self.insert_locations(),
            self.upsert(),
            self.delete_keys(),
            self.delete_missing(),
            self.advance_watermark(),
            self.insert_run(),
        ]


class SqlServerDialect(Dialect):
    """T-SQL for SQL Server / Azure SQL Database (pyodbc + ODBC Driver 18 for SQL Server)."""

    name = "sqlserver"
    types: ClassVar[dict[str, str]] = {
        "text": "NVARCHAR({n})",
        "timestamp": "DATETIME2(6)",
        "bigint": "BIGINT",
        "double": "FLOAT",
    }

    def quote(self, identifier: str) -> str:
        return f"[{validate_identifier(identifier, 'identifier')}]"

    @property
    def stage_table(self) -> str:
        return f"#{validate_identifier(self.names.stage, 'identifier')}"

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

    def date_key(self, expr: str) -> str:
        return f"YEAR({expr}) * 10000 + MONTH({expr}) * 100 + DAY({expr})"

    def hour_of(self, expr: str) -> str:
        return f"DATEPART(HOUR, {expr})"

    def dim_date_view(self) -> str:
        q, target = self.quote, self.qualified(self.names.table)
        d = f"days.{q('date')}"
        # 1900-01-01 was a Monday: this day-of-week does not depend on SET DATEFIRST.
        dow = f"(DATEDIFF(DAY, CAST('19000101' AS DATE), {d}) % 7 + 1)"
        iso_week = f"DATEPART(ISO_WEEK, {d})"
        return (
            "WITH digits AS (SELECT v.d FROM (VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), "
            "(9)) AS v(d)), "
            "numbers AS (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d AS n FROM digits AS a "
            "CROSS JOIN digits AS b CROSS JOIN digits AS c CROSS JOIN digits AS e CROSS JOIN digits AS f), "
            f"bounds AS (SELECT DATEFROMPARTS(YEAR(MIN({q('window_start')})), 1, 1) AS first_day, "
            f"DATEFROMPARTS(YEAR(MAX({q('window_start')})), 12, 31) AS last_day FROM {target}), "
            f"days AS (SELECT DATEADD(DAY, numbers.n, bounds.first_day) AS {q('date')} FROM bounds "
            "INNER JOIN numbers ON numbers.n <= DATEDIFF(DAY, bounds.first_day, bounds.last_day)) "
            "SELECT "
            f"{self.date_columns(d, f'YEAR({d})', f'MONTH({d})', f'DAY({d})', dow, iso_week)} "
            "FROM days"
        )

    def begin(self) -> list[str]:
        # Any error aborts and rolls back the whole transaction, not just the statement.
        return ["SET XACT_ABORT ON"]

    def ensure_watermark_row(self) -> tuple[str, list[Any]]:
        q, wm = self.quote, self.qualified(self.names.watermark)
        sql = (
            f"INSERT INTO {wm} ({q('table_name')}, {q('delta_version')}, {q('synced_at')}) SELECT ?, "
            "-1, NULL "
            f"WHERE NOT EXISTS (SELECT 1 FROM {wm} WITH (UPDLOCK, HOLDLOCK) WHERE {q('table_name')} = ?)"
        )
        return sql, [self.watermark_key, self.watermark_key]

    def lock_watermark(self) -> str:
        q = self.quote
        return (
            f"SELECT {q('delta_version')} FROM {self.qualified(self.names.watermark)} WITH (UPDLOCK, "
            "HOLDLOCK) "
            f"WHERE {q('table_name')} = ?"
        )

    def create_stage(self) -> list[str]:
        # A #temp table's text takes tempdb's collation; where the database's differs, comparing it
        # with the target (MERGE ON, EXCEPT, the location insert) fails with a collation conflict.
        collate = " COLLATE DATABASE_DEFAULT"
        cols = ", ".join(
            [f"{self.quote('op')} CHAR(1){collate} NOT NULL"]
            + [
                f"{self.quote(c)} {self.column_type(c)}{collate if _kind(c) == 'text' else ''}"
                for c in GOLD_COLUMNS
            ]
        )
        return [f"DROP TABLE IF EXISTS {self.stage_table}", f"CREATE TABLE {self.stage_table} ({cols})"]

    def upsert(self) -> str:
        q = self.quote
        values = [c for c in GOLD_COLUMNS if c not in KEY_COLUMNS]
        cols = ", ".join(q(c) for c in GOLD_COLUMNS)
        changed = (
            f"EXISTS (SELECT {', '.join('s.' + q(c) for c in values)} "
            f"EXCEPT SELECT {', '.join('t.' + q(c) for c in values)})"
        )
        return (
            f"MERGE {self.qualified(self.names.table)} WITH (HOLDLOCK) AS t "
            f"USING (SELECT {cols} FROM {self.stage_table} WHERE {q('op')} = 'U') AS s "
            f"ON {self.key_match('t', 's')} "
            f"WHEN MATCHED AND {changed} THEN UPDATE SET "
            + ", ".join(f"t.{q(c)} = s.{q(c)}" for c in values)
            + f", t.{q('synced_at')} = ? "
            f"WHEN NOT MATCHED BY TARGET THEN INSERT ({cols}, {q('synced_at')}) "
            f"VALUES ({', '.join('s.' + q(c) for c in GOLD_COLUMNS)}, ?);"
        )


class PostgresDialect(Dialect):
    """PostgreSQL 15+ through psqlODBC, which sends parameters as text: every one is CAST."""

    name = "postgresql"
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

    def dim_date_view(self) -> str:
        q, target = self.quote, self.qualified(self.names.table)
        d = f"days.{q('date')}"
        part = lambda field: f"CAST(EXTRACT({field} FROM {d}) AS INTEGER)"  # noqa: E731
        return (
            f"WITH bounds AS (SELECT MAKE_DATE(CAST(EXTRACT(YEAR FROM MIN({q('window_start')})) AS "
            "INTEGER), 1, 1) "
            f"AS first_day, MAKE_DATE(CAST(EXTRACT(YEAR FROM MAX({q('window_start')})) AS INTEGER), 12, 31) "
            f"AS last_day FROM {target}), "
            f"days AS (SELECT CAST(g.d AS DATE) AS {q('date')} FROM bounds, "
            "GENERATE_SERIES(bounds.first_day, bounds.last_day, INTERVAL '1 day') AS g(d)) "
            "SELECT "
            f"{self.date_columns(d, part('YEAR'), part('MONTH'), part('DAY'), part('ISODOW'), part('WEEK'))} "
            "FROM days"
        )

    def ensure_watermark_row(self) -> tuple[str, list[Any]]:
        q = self.quote
        sql = (
            f"INSERT INTO {self.qualified(self.names.watermark)} ({q('table_name')}, {q('delta_version')}) "
            f"VALUES ({self.param('text')}, -1) ON CONFLICT ({q('table_name')}) DO NOTHING"
        )
        return sql, [self.watermark_key]

    def create_stage(self) -> list[str]:
        cols = ", ".join(
            [f"{self.quote('op')} CHAR(1) NOT NULL"]
            + [f"{self.quote(c)} {self.column_type(c)}" for c in GOLD_COLUMNS]
        )
        return [
            f"DROP TABLE IF EXISTS {self.stage_table}",
            f"CREATE TEMPORARY TABLE {self.stage_table} ({cols}) ON COMMIT DROP",
        ]

    def insert_stage_json(self) -> str:
        """Stage a whole chunk from ONE JSON parameter (far fewer round trips than executemany)."""
        cols = ", ".join(self.quote(c) for c in self.stage_columns())
        return (
            f"INSERT INTO {self.stage_table} ({cols}) SELECT {cols} FROM "
            f"JSON_POPULATE_RECORDSET(NULL::{self.stage_table}, CAST(? AS JSON))"
        )

    def upsert(self) -> str:
        q = self.quote
        values = [c for c in GOLD_COLUMNS if c not in KEY_COLUMNS]
        cols = ", ".join(q(c) for c in GOLD_COLUMNS)
        target_values = ", ".join("t." + q(c) for c in values)
        source_values = ", ".join("s." + q(c) for c in values)
        changed = f"({target_values}) IS DISTINCT FROM ({source_values})"
        return (
            f"MERGE INTO {self.qualified(self.names.table)} AS t "
            f"USING (SELECT {cols} FROM {self.stage_table} WHERE {q('op')} = 'U') AS s "
            f"ON {self.key_match('t', 's')} "
            f"WHEN MATCHED AND {changed} THEN UPDATE SET "
            + ", ".join(f"{q(c)} = s.{q(c)}" for c in values)
            + f", {q('synced_at')} = {self.param('timestamp')} "
            f"WHEN NOT MATCHED THEN INSERT ({cols}, {q('synced_at')}) "
            f"VALUES ({', '.join('s.' + q(c) for c in GOLD_COLUMNS)}, {self.param('timestamp')})"
        )


class SqliteDialect(Dialect):
    """SQLite (stdlib sqlite3), the embedded local warehouse. It has no schemas: names are bare."""

    name = "sqlite"
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

    def date_key(self, expr: str) -> str:
        return f"CAST(STRFTIME('%Y%m%d', {expr}) AS INTEGER)"

    def hour_of(self, expr: str) -> str:
        return f"CAST(STRFTIME('%H', {expr}) AS INTEGER)"

    def dim_date_view(self) -> str:
        q, target = self.quote, self.qualified(self.names.table)
        d = f"days.{q('date')}"
        part = lambda fmt: f"CAST(STRFTIME('{fmt}', {d}) AS INTEGER)"  # noqa: E731
        dow = f"((CAST(STRFTIME('%w', {d}) AS INTEGER) + 6) % 7 + 1)"
        # ISO week: the week of the year of this week's Thursday.
        iso_week = f"((CAST(STRFTIME('%j', DATE({d}, '-3 days', 'weekday 4')) AS INTEGER) - 1) / 7 + 1)"
        return (
            f"WITH RECURSIVE bounds AS (SELECT DATE(MIN({q('window_start')}), 'start of year') AS first_day, "
            f"DATE(MAX({q('window_start')}), 'start of year', '+1 year', '-1 day') AS last_day FROM "
            f"{target}), "
            f"days({q('date')}) AS (SELECT first_day FROM bounds WHERE first_day IS NOT NULL UNION ALL "
            f"SELECT DATE(days.{q('date')}, '+1 day') FROM days, bounds WHERE days.{q('date')} < "
            "bounds.last_day) "
            f"SELECT {self.date_columns(d, part('%Y'), part('%m'), part('%d'), dow, iso_week)} FROM days"
        )

    def begin(self) -> list[str]:
        # Take the write lock up front: a second writer waits (busy timeout) instead of failing late.
        return ["BEGIN IMMEDIATE"]

    def ensure_watermark_row(self) -> tuple[str, list[Any]]:
        q = self.quote
        sql = (
            f"INSERT OR IGNORE INTO {self.qualified(self.names.watermark)} ({q('table_name')}, "
            f"{q('delta_version')}) "
            "VALUES (?, -1)"
        )
        return sql, [self.watermark_key]

    def lock_watermark(self) -> str:
        return self.read_watermark()  # BEGIN IMMEDIATE already holds the database write lock

    def create_stage(self) -> list[str]:
        cols = ", ".join(
            [f"{self.quote('op')} TEXT NOT NULL"]
            + [f"{self.quote(c)} {self.column_type(c)}" for c in GOLD_COLUMNS]
        )
        return [
            f"DROP TABLE IF EXISTS temp.{self.stage_table}",
            f"CREATE TEMP TABLE {self.stage_table} ({cols})",
        ]

    def upsert(self) -> str:
        q, target = self.quote, self.qualified(self.names.table)
        values = [c for c in GOLD_COLUMNS if c not in KEY_COLUMNS]
        cols = ", ".join(q(c) for c in GOLD_COLUMNS)
        return (
            f"INSERT INTO {target} ({cols}, {q('synced_at')}) SELECT {cols}, ? FROM {self.stage_table} "
            f"WHERE {q('op')} = 'U' ON CONFLICT ({q('location')}, {q('window_start')}) DO UPDATE SET "
            + ", ".join(f"{q(c)} = excluded.{q(c)}" for c in values)
            + f", {q('synced_at')} = excluded.{q('synced_at')} WHERE "
            + " OR ".join(f"{target}.{q(c)} IS NOT excluded.{q(c)}" for c in values)
        )

    def upsert_params(self, run: RunInfo) -> list[Any]:
        return [self.adapt(run.synced_at)]


# --- connections ----------------------------------------------------------------------------------
def _connection_attributes(connection_string: str) -> dict[str, str]:
    parts = (p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    return {k.strip().lower(): v.strip() for k, v in parts}


def dialect_name_for(connection_string: str) -> str:
    """``sqlite`` for an empty connection string, else from the ODBC driver name."""
    if not connection_string.strip():
        return "sqlite"
    driver = _connection_attributes(connection_string).get("driver", "").strip("{}").lower()
    if "postgres" in driver:
        return "postgresql"
    if "sql server" in driver or "freetds" in driver:
        return "sqlserver"
    raise SettingsError(
        "SQL_CONNECTION must name an ODBC Driver for SQL Server or PostgreSQL "
        "(e.g. Driver={ODBC Driver 18 for SQL Server};...), or be empty for the local SQLite warehouse"
    )


def access_token_struct(token: str) -> bytes:
    """An Entra ID access token packed the way msodbcsql expects for SQL_COPT_SS_ACCESS_TOKEN."""
    encoded = token.encode("utf-16-le")
    return struct.pack(f"<I{len(encoded)}s", len(encoded), encoded)


def needs_access_token(connection_string: str) -> bool:
    """True when a SQL Server connection string carries no credentials of its own."""
    attrs = _connection_attributes(connection_string)
    return not ({"uid", "pwd", "authentication", "trusted_connection"} & attrs.keys())


def _default_sql_token() -> str:
    # Looked up per call: the process's one credential, whose cached token serves every connection.
    return credentials.PROCESS_CREDENTIAL.token(SQL_SERVER_SCOPE)


def odbc_connector(
    connection_string: str, dialect: str, token_provider: Callable[[], str] | None = None
) -> Callable[[], Any]:
    """A function opening a pyodbc connection (autocommit off) for ``dialect``."""

    def connect() -> Any:
        import pyodbc

        attrs_before: dict[int, Any] = {}
        if dialect == "sqlserver" and needs_access_token(connection_string):
            # Managed identity / DefaultAzureCredential: no secret in the connection string.
            attrs_before[SQL_COPT_SS_ACCESS_TOKEN] = access_token_struct(
                (token_provider or _default_sql_token)()
            )
        return pyodbc.connect(connection_string, autocommit=False, attrs_before=attrs_before or None)

    return connect


def sqlite_connector(path: str) -> Callable[[], Any]:
    def connect() -> sqlite3.Connection:
        # isolation_level=None: the adapter issues BEGIN IMMEDIATE / COMMIT itself.
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    return connect


# --- the warehouse ------------------------------------------------------------------------------
def sql_server_error_numbers(exc: BaseException) -> set[int]:
    """Native error numbers in a pyodbc error message (``... (1205) (SQLExecDirectW)``)."""
    return {int(n) for n in re.findall(r"\((\d+)\)", " ".join(str(a) for a in exc.args))}


def is_transient_error(dialect: str, exc: BaseException) -> bool:
    """True when ``exc`` is a deadlock, serialization failure, failover or busy database."""
    if dialect == "sqlite":
        if not isinstance(exc, sqlite3.OperationalError):
            return False
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)
        return "locked" in str(exc) or "busy" in str(exc)
    try:
        import pyodbc
    except ImportError:  # pragma: no cover - pyodbc is a dependency of the app
        return False
    if not isinstance(exc, pyodbc.Error):
        return False
    sqlstate = str(exc.args[0]) if exc.args else ""
    if dialect == "postgresql":
        text = str(exc).lower()
        return sqlstate in POSTGRES_TRANSIENT_SQLSTATES or any(t in text for t in POSTGRES_TRANSIENT_TEXT)
    if sqlstate == "40001":  # SQL Server reports a deadlock victim (1205) with SQLSTATE 40001
        return True
    return bool(sql_server_error_numbers(exc) & SQL_SERVER_TRANSIENT)


class SqlWarehouse:
    """:class:`functions.sync_core.Warehouse` over a DB-API connection and a :class:`Dialect`."""

    def __init__(
        self, connect: Callable[[], Any], dialect: Dialect, stage_chunk_rows: int = STAGE_CHUNK_ROWS
    ):
        self.connect = connect
        self.dialect = dialect
        self.stage_chunk_rows = stage_chunk_rows

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        conn = self.connect()
        try:
            yield conn
        finally:
            conn.close()

    # schema
    def schema_ready(self) -> bool:
        with self._connection() as conn, closing(conn.cursor()) as cur:
            try:
                cur.execute(self.dialect.schema_probe())
                cur.fetchall()
                return True
            except Exception:
                return False
            finally:
                conn.rollback()

    def init_schema(self) -> None:
        """Create whatever is missing (idempotent; safe when several processes start at once)."""
        d = self.dialect
        with self._connection() as conn, closing(conn.cursor()) as cur:
            try:
                for statement in d.begin():
                    cur.execute(statement)
                if isinstance(d, PostgresDialect):
                    # Concurrent CREATE ... IF NOT EXISTS can still collide in PostgreSQL's catalog.
                    cur.execute("SELECT pg_advisory_xact_lock(CAST(? AS BIGINT))", [0x5EED_5C4E])
                statements = d.ddl()
                if isinstance(d, SqlServerDialect):
                    cur.execute(d.schema_exists(), [d.names.schema])
                    if cur.fetchone()[0] is not None:
                        statements = [s for s in statements if s not in d.create_schema()]
                for statement in statements:
                    cur.execute(statement)
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    def read_watermark(self) -> int:
        with self._connection() as conn, closing(conn.cursor()) as cur:
            cur.execute(self.dialect.read_watermark(), [self.dialect.watermark_key])
            row = cur.fetchone()
            conn.rollback()
        return -1 if row is None else int(row[0])

    def is_transient(self, exc: BaseException) -> bool:
        return is_transient_error(self.dialect.name, exc)

    # the sync transaction
    def apply(self, plan: SyncPlan, expected_watermark: int, run: RunInfo) -> ApplyResult:
        """Stage, upsert, delete, advance the watermark (compare-and-set) and commit — or nothing."""
        with self._connection() as conn:
            cur = conn.cursor()
            try:
                result = self._apply(cur, plan, expected_watermark, run)
                if result.applied:
                    conn.commit()
                else:
                    conn.rollback()
                return result
            except BaseException:
                conn.rollback()
                raise
            finally:
                cur.close()

    def _apply(self, cur: Any, plan: SyncPlan, expected: int, run: RunInfo) -> ApplyResult:
        d = self.dialect
        for statement in d.begin():
            cur.execute(statement)
        sql, params = d.ensure_watermark_row()
        cur.execute(sql, params)
        cur.execute(d.lock_watermark(), [d.watermark_key])
        current = int(cur.fetchone()[0])
        if current != expected:
            log.info("watermark is %d, expected %d: another sync got there first", current, expected)
            return ApplyResult(applied=False)
        self._stage(cur, plan)
        cur.execute(d.insert_locations())
        cur.execute(d.upsert(), d.upsert_params(run))
        upserted = max(cur.rowcount, 0)
        cur.execute(d.delete_keys())
        deleted = max(cur.rowcount, 0)
        if plan.replace_all:
            cur.execute(d.delete_missing())
            deleted += max(cur.rowcount, 0)
        self._finish(cur, plan, expected, run, upserted, deleted)
        return ApplyResult(applied=True, rows_upserted=upserted, rows_deleted=deleted)

    def _stage(self, cur: Any, plan: SyncPlan) -> None:
        d = self.dialect
        for statement in d.create_stage():
            cur.execute(statement)
        blanks = (None,) * (len(GOLD_COLUMNS) - len(KEY_COLUMNS))
        rows: list[tuple[Any, ...]] = [("U", *r) for r in plan.upserts]
        rows += [("D", *k, *blanks) for k in plan.deletes]
        rows += [("K", *k, *blanks) for k in plan.kept]
        rows = [tuple(d.adapt(v) for v in r) for r in rows]
        if not rows:
            return
        if isinstance(d, PostgresDialect):
            self._stage_json(cur, rows)
            return
        if isinstance(d, SqlServerDialect):
            cur.fast_executemany = True  # one round trip per chunk (parameter arrays)
        insert = d.insert_stage()
        for start in range(0, len(rows), self.stage_chunk_rows):
            cur.executemany(insert, rows[start : start + self.stage_chunk_rows])

    def _stage_json(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        import orjson

        columns = self.dialect.stage_columns()
        insert = self.dialect.insert_stage_json()  # type: ignore[attr-defined]
        for start in range(0, len(rows), self.stage_chunk_rows):
            chunk = [dict(zip(columns, r, strict=True)) for r in rows[start : start + self.stage_chunk_rows]]
            # orjson writes naive datetimes as ISO 8601, which PostgreSQL reads back exactly.
            cur.execute(insert, [orjson.dumps(chunk).decode()])

    def _finish(
        self, cur: Any, plan: SyncPlan, expected: int, run: RunInfo, upserted: int, deleted: int
    ) -> None:
        """Advance the watermark (compare-and-set) and record the run, still inside the transaction."""
        d = self.dialect
        cur.execute(
            d.advance_watermark(),
            [plan.to_version, d.adapt(run.synced_at), d.watermark_key, expected],
        )
        if cur.rowcount != 1:
            raise RuntimeError(
                f"watermark compare-and-set from {expected} to {plan.to_version} matched no row"
            )
        finished = to_utc_naive(datetime.now(UTC))
        cur.execute(
            d.insert_run(),
            [run.run_id, d.adapt(run.started_at), d.adapt(finished), plan.from_version, plan.to_version,
             upserted, deleted, plan.rows_skipped, d.adapt(plan.max_source_updated_at)],
        )  # fmt: skip


def dialect_for(name: str, names: TableNames) -> Dialect:
    dialects: dict[str, type[Dialect]] = {
        "sqlserver": SqlServerDialect,
        "postgresql": PostgresDialect,
        "sqlite": SqliteDialect,
    }
    return dialects[name](names)


def warehouse_from_settings(settings: Settings) -> SqlWarehouse:
    """The SQL target configured by SQL_CONNECTION (empty: SQLite at $PIPELINE_HOME/warehouse.db)."""
    names = TableNames(settings.sql_schema, settings.sql_table)
    connection_string = settings.sql_connection
    name = dialect_name_for(connection_string)
    dialect = dialect_for(name, names)
    if name == "sqlite":
        settings.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        return SqlWarehouse(sqlite_connector(str(settings.sqlite_path)), dialect)
    return SqlWarehouse(odbc_connector(connection_string, name), dialect)


def ddl_script(dialect: Dialect) -> str:
    """The dialect's DDL as one idempotent script (what ``sql/<dialect>/schema.sql`` holds)."""
    header = (
        f"-- Generated by `python -m pipeline sql script --dialect {dialect.name}` from "
        "functions/warehouse.py.\n"
        "-- Idempotent: safe to run again. `python -m pipeline sql init` runs the same statements.\n\n"
    )
    statements = dialect.ddl()
    if isinstance(dialect, SqlServerDialect):
        schema = dialect.names.schema
        guarded = [
            f"IF SCHEMA_ID(N'{schema}') IS NULL EXEC(N'CREATE SCHEMA {dialect.quote(schema)}')"
            if s in dialect.create_schema()
            else s
            for s in statements
        ]
        return header + "\nGO\n\n".join(guarded) + "\nGO\n"
    return header + ";\n\n".join(statements) + ";\n"
