"""The SQL of one sync: a single transaction per run, per engine.

It takes the watermark row's lock, stages the plan in a temporary table, applies ONE upsert
(``MERGE ... WITH (HOLDLOCK)`` on SQL Server, ``MERGE`` on PostgreSQL, ``INSERT ... ON CONFLICT``
on SQLite), deletes, advances the watermark with compare-and-set and records the run in
``sync_runs``. Rows whose values did not change are not touched, so ``synced_at`` keeps its value
when a run is replayed. :class:`functions.sql_target.warehouse.SqlWarehouse` runs these statements;
values are always parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from functions.sql_target.dialects import Dialect, column_kind
from functions.sync_core import GOLD_COLUMNS, KEY_COLUMNS, RunInfo


class SyncStatements:
    """One engine's statements of the sync transaction. Subclasses override only what differs."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect, self.names = dialect, dialect.names
        # The dialect's spelling, as the statements below use it.
        self.quote: Callable[[str], str] = dialect.quote
        self.qualified: Callable[[str], str] = dialect.qualified
        self.param: Callable[[str], str] = dialect.param
        self.adapt: Callable[[Any], Any] = dialect.adapt
        self.column_type: Callable[[str], str] = dialect.column_type
        self.stage_table = dialect.stage_table
        self.watermark_key = dialect.watermark_key

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
        values = ", ".join(self.param("text" if c == "op" else column_kind(c)) for c in cols)
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
        """Every statement of the transaction (for parsing them in tests)."""
        return [
            *self.dialect.begin(),
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


class SqlServerSyncStatements(SyncStatements):
    """T-SQL: the watermark row under ``UPDLOCK, HOLDLOCK``, a ``#`` stage, ``MERGE ... WITH (HOLDLOCK)``."""

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
                f"{self.quote(c)} {self.column_type(c)}{collate if column_kind(c) == 'text' else ''}"
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


class PostgresSyncStatements(SyncStatements):
    """PostgreSQL: ``ON CONFLICT DO NOTHING`` for the watermark row, the stage from one JSON parameter."""

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


class SqliteSyncStatements(SyncStatements):
    """SQLite: ``BEGIN IMMEDIATE`` holds the write lock; ``INSERT ... ON CONFLICT`` upserts."""

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


def sync_statements(dialect: Dialect) -> SyncStatements:
    """The sync transaction's statements for the dialect's engine."""
    statements: dict[str, type[SyncStatements]] = {
        "sqlserver": SqlServerSyncStatements,
        "postgresql": PostgresSyncStatements,
        "sqlite": SqliteSyncStatements,
    }
    return statements[dialect.name](dialect)
