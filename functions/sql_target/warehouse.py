"""The SQL target adapter: :class:`SqlWarehouse` runs one sync as one transaction.

It implements :class:`functions.sync_core.Warehouse` over a DB-API connection: creates the schema
when missing (:mod:`functions.sql_target.schema`), reads the watermark, and applies a plan with the
statements of :mod:`functions.sql_target.sync_statements` -- stage, upsert, delete, advance the
watermark (compare-and-set) and record the run, or nothing at all. Engines differ only in their
:class:`functions.sql_target.dialects.Dialect`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from typing import Any

from functions.sql_target.connections import dialect_name_for, odbc_connector, sqlite_connector
from functions.sql_target.dialects import Dialect, PostgresDialect, SqlServerDialect, TableNames, dialect_for
from functions.sql_target.schema import ddl
from functions.sql_target.sync_statements import PostgresSyncStatements, sync_statements
from functions.sql_target.transient_errors import is_transient_error
from functions.sync_core import GOLD_COLUMNS, KEY_COLUMNS, ApplyResult, RunInfo, SyncPlan, to_utc_naive
from settings import Settings

log = logging.getLogger(__name__)

STAGE_CHUNK_ROWS = 5_000


class SqlWarehouse:
    """:class:`functions.sync_core.Warehouse` over a DB-API connection and a :class:`Dialect`."""

    def __init__(
        self, connect: Callable[[], Any], dialect: Dialect, stage_chunk_rows: int = STAGE_CHUNK_ROWS
    ) -> None:
        self.connect = connect
        self.dialect = dialect
        self.sql = sync_statements(dialect)
        self.stage_chunk_rows = stage_chunk_rows

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        conn = self.connect()
        try:
            yield conn
        finally:
            conn.close()

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
                statements = ddl(d)
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
            cur.execute(self.sql.read_watermark(), [self.dialect.watermark_key])
            row = cur.fetchone()
            conn.rollback()
        return -1 if row is None else int(row[0])

    def is_transient(self, exc: BaseException) -> bool:
        return is_transient_error(self.dialect.name, exc)

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
        d, sql = self.dialect, self.sql
        for statement in d.begin():
            cur.execute(statement)
        ensure, params = sql.ensure_watermark_row()
        cur.execute(ensure, params)
        cur.execute(sql.lock_watermark(), [d.watermark_key])
        current = int(cur.fetchone()[0])
        if current != expected:
            log.info("watermark is %d, expected %d: another sync got there first", current, expected)
            return ApplyResult(applied=False)
        self._stage(cur, plan)
        cur.execute(sql.insert_locations())
        cur.execute(sql.upsert(), sql.upsert_params(run))
        upserted = max(cur.rowcount, 0)
        cur.execute(sql.delete_keys())
        deleted = max(cur.rowcount, 0)
        if plan.replace_all:
            cur.execute(sql.delete_missing())
            deleted += max(cur.rowcount, 0)
        self._finish(cur, plan, expected, run, upserted, deleted)
        return ApplyResult(applied=True, rows_upserted=upserted, rows_deleted=deleted)

    def _stage(self, cur: Any, plan: SyncPlan) -> None:
        d, sql = self.dialect, self.sql
        for statement in sql.create_stage():
            cur.execute(statement)
        blanks = (None,) * (len(GOLD_COLUMNS) - len(KEY_COLUMNS))
        rows: list[tuple[Any, ...]] = [("U", *r) for r in plan.upserts]
        rows += [("D", *k, *blanks) for k in plan.deletes]
        rows += [("K", *k, *blanks) for k in plan.kept]
        rows = [tuple(d.adapt(v) for v in r) for r in rows]
        if not rows:
            return
        if isinstance(sql, PostgresSyncStatements):
            self._stage_json(cur, sql, rows)
            return
        if isinstance(d, SqlServerDialect):
            cur.fast_executemany = True  # one round trip per chunk (parameter arrays)
        insert = sql.insert_stage()
        for start in range(0, len(rows), self.stage_chunk_rows):
            cur.executemany(insert, rows[start : start + self.stage_chunk_rows])

    def _stage_json(self, cur: Any, sql: PostgresSyncStatements, rows: list[tuple[Any, ...]]) -> None:
        import orjson

        columns, insert = sql.stage_columns(), sql.insert_stage_json()
        for start in range(0, len(rows), self.stage_chunk_rows):
            chunk = [dict(zip(columns, r, strict=True)) for r in rows[start : start + self.stage_chunk_rows]]
            # orjson writes naive datetimes as ISO 8601, which PostgreSQL reads back exactly.
            cur.execute(insert, [orjson.dumps(chunk).decode()])

    def _finish(
        self, cur: Any, plan: SyncPlan, expected: int, run: RunInfo, upserted: int, deleted: int
    ) -> None:
        """Advance the watermark (compare-and-set) and record the run, still inside the transaction."""
        d, sql = self.dialect, self.sql
        cur.execute(
            sql.advance_watermark(),
            [plan.to_version, d.adapt(run.synced_at), d.watermark_key, expected],
        )
        if cur.rowcount != 1:
            raise RuntimeError(
                f"watermark compare-and-set from {expected} to {plan.to_version} matched no row"
            )
        finished = to_utc_naive(datetime.now(UTC))
        cur.execute(
            sql.insert_run(),
            [run.run_id, d.adapt(run.started_at), d.adapt(finished), plan.from_version, plan.to_version,
             upserted, deleted, plan.rows_skipped, d.adapt(plan.max_source_updated_at)],
        )  # fmt: skip


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
