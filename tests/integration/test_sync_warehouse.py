"""Gold (a real Delta table) → a real SQL target, on SQLite and on a real PostgreSQL.

Each test writes gold itself with ``deltalake`` in the shape docs/architecture.md gives (change
data feed on), runs the sync and reads the SQL tables back. Expected rows are built from the
test's own inputs, not from the code under test.
"""

from __future__ import annotations

import math
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from functions.sql_target.connections import odbc_connector, sqlite_connector
from functions.sql_target.dialects import PostgresDialect, SqliteDialect, TableNames
from functions.sql_target.warehouse import SqlWarehouse
from functions.sync_core import GOLD_COLUMNS, SyncSummary, run_sync
from tests.fixtures.gold import Gold, as_datetime, expected, window

pytestmark = pytest.mark.integration


@dataclass
class Target:
    """A SQL target under test: makes warehouses and reads tables back."""

    kind: str
    make: Any  # (warehouse class) -> SqlWarehouse

    def warehouse(self, cls: type[SqlWarehouse] = SqlWarehouse) -> SqlWarehouse:
        return self.make(cls)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        warehouse = self.warehouse()
        with warehouse._connection() as conn:
            cur = conn.cursor()
            cur.execute(sql)
            rows = [tuple(as_datetime(v) for v in r) for r in cur.fetchall()]
            conn.rollback()
        return rows

    def name(self, table: str) -> str:
        return self.warehouse().dialect.qualified(table)

    def rows(self) -> dict[tuple[str, datetime], tuple[tuple[Any, ...], datetime]]:
        """SQL rows by key: (gold values, synced_at)."""
        cols = ", ".join(GOLD_COLUMNS)
        out = {}
        for r in self.query(f"SELECT {cols}, synced_at FROM {self.name('weather_summary')}"):
            out[(r[0], r[1])] = (tuple(r[:-1]), r[-1])
        return out

    def values(self) -> set[tuple[Any, ...]]:
        return {v for v, _ in self.rows().values()}

    def watermark(self) -> int:
        return self.warehouse().read_watermark()

    def runs(self) -> list[tuple[Any, ...]]:
        return self.query(
            "SELECT from_version, to_version, rows_upserted, rows_deleted, rows_skipped FROM "
            f"{self.name('sync_runs')} "
            "ORDER BY to_version"
        )


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path) -> Iterator[Target]:
    if request.param == "sqlite":
        path = str(tmp_path / "warehouse.db")
        yield Target("sqlite", lambda cls: cls(sqlite_connector(path), SqliteDialect(TableNames())))
    else:
        postgres = request.getfixturevalue("postgres")
        # A fresh schema per test keeps tests apart on the one session server.
        names = TableNames(schema=f"t_{uuid.uuid4().hex[:12]}")
        connect = odbc_connector(postgres.odbc_connection_string, "postgresql")
        yield Target("postgresql", lambda cls: cls(connect, PostgresDialect(names)))


@pytest.fixture
def gold(tmp_path) -> Gold:
    return Gold(tmp_path / "gold" / "weather_summary")


def sync(gold: Gold, target: Target, **kwargs: Any) -> SyncSummary:
    return run_sync(gold.source, target.warehouse(), **kwargs)


# --- the scenarios of issue 4 §4 -------------------------------------------------------------------------
def test_first_load_writes_every_gold_row_and_the_watermark(gold, target):
    rows = [window("Oslo", 0, 1.5), window("Oslo", 5, 2.0), window("Rome", 0, 14.25)]
    gold.write(rows)
    summary = sync(gold, target)
    assert (summary.status, summary.rows_upserted, summary.rows_skipped) == ("synced", 3, 0)
    assert target.values() == {expected(r) for r in rows}
    assert target.watermark() == 0
    assert target.runs() == [(-1, 0, 3, 0, 0)]
    synced_at = {s for _, s in target.rows().values()}
    assert len(synced_at) == 1  # one run, one stamp


def test_late_data_changing_a_synced_window_updates_only_that_window(gold, target):
    oslo, rome = window("Oslo", 0, 1.5), window("Rome", 0, 14.25)
    gold.write([oslo, rome])
    sync(gold, target)
    before = target.rows()
    late = window("Oslo", 0, 1.75, processed=60, count=4)  # a late event recomputed the window
    gold.merge([late])
    summary = sync(gold, target)
    after = target.rows()
    assert (summary.status, summary.mode, summary.rows_upserted) == ("synced", "cdf", 1)
    assert target.values() == {expected(late), expected(rome)}
    oslo_key = (late["location"], expected(late)[1])
    rome_key = (rome["location"], expected(rome)[1])
    assert after[oslo_key][1] > before[oslo_key][1]
    assert after[rome_key] == before[rome_key]  # untouched, synced_at included
    assert target.watermark() == 1


def test_replayed_run_is_a_no_op_for_values_and_synced_at(gold, target):
    gold.write([window("Oslo", 0, 1.5), window("Rome", 0, 14.25)])
    sync(gold, target)
    before, runs = target.rows(), target.runs()
    summary = sync(gold, target)
    assert summary.status == "up_to_date"
    assert target.rows() == before
    assert target.runs() == runs


def test_gold_rewritten_with_identical_rows_advances_the_watermark_but_keeps_synced_at(gold, target):
    rows = [window("Oslo", 0, 1.5), window("Rome", 0, 14.25)]
    gold.write(rows)
    sync(gold, target)
    before = target.rows()
    gold.merge(rows)  # a replayed gold micro-batch: new Delta version, same values
    summary = sync(gold, target)
    assert (summary.status, summary.rows_upserted) == ("synced", 0)
    assert target.rows() == before
    assert target.watermark() == 1


def test_an_apply_with_a_stale_watermark_writes_nothing(gold, target):
    gold.write([window("Oslo", 0, 1.5)])
    sync(gold, target)
    gold.merge([window("Oslo", 0, 3.0, processed=5)])
    warehouse = target.warehouse()
    from functions.sync_core import RunInfo, plan_sync

    plan = plan_sync(gold.source.read_changes(-1))  # as if a run still believed nothing was synced
    now = datetime.now(UTC).replace(tzinfo=None)
    result = warehouse.apply(plan, -1, RunInfo("stale", now, now))
    assert not result.applied
    assert target.values() == {expected(window("Oslo", 0, 1.5))}
    assert target.watermark() == 0


class BarrierWarehouse(SqlWarehouse):
    """Both runs read the watermark before either writes: the overlap a timer can cause."""

    barrier: threading.Barrier

    def read_watermark(self) -> int:
        value = super().read_watermark()
        self.barrier.wait(timeout=30)
        return value


def test_two_sync_runs_at_once_write_each_row_once_without_deadlock(gold, target):
    rows = [window(f"City{i}", 5 * (i % 4), float(i)) for i in range(40)]
    gold.write(rows)
    target.warehouse().init_schema()
    BarrierWarehouse.barrier = threading.Barrier(2)
    results: list[SyncSummary] = []
    errors: list[BaseException] = []

    def one_run() -> None:
        try:
            results.append(run_sync(gold.source, target.warehouse(BarrierWarehouse)))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert sorted(r.status for r in results) == ["superseded", "synced"]
    assert target.values() == {expected(r) for r in rows}
    count = target.query(f"SELECT COUNT(*) FROM {target.name('weather_summary')}")[0][0]
    assert count == len(rows)
    assert target.runs() == [(-1, 0, 40, 0, 0)]


class FailBeforeCommit(SqlWarehouse):
    """Fails after staging, upsert, delete and the watermark update, just before COMMIT."""

    def _finish(self, *args: Any, **kwargs: Any) -> None:
        super()._finish(*args, **kwargs)
        raise RuntimeError("injected failure before commit")


def test_failure_between_staging_and_commit_rolls_back_and_keeps_the_watermark(gold, target):
    gold.write([window("Oslo", 0, 1.5), window("Rome", 0, 14.25)])
    sync(gold, target)
    before, runs = target.rows(), target.runs()
    gold.merge([window("Oslo", 0, 5.0, processed=30), window("Paris", 0, 9.0)])
    gold.delete("Rome")
    with pytest.raises(RuntimeError, match="injected"):
        run_sync(gold.source, target.warehouse(FailBeforeCommit))
    assert target.rows() == before
    assert target.watermark() == 0
    assert target.runs() == runs
    summary = sync(gold, target)  # the next tick does the work
    assert (summary.rows_upserted, summary.rows_deleted) == (2, 1)
    assert target.values() == {
        expected(window("Oslo", 0, 5.0, processed=30)),
        expected(window("Paris", 0, 9.0)),
    }


def test_bad_rows_are_skipped_and_counted_and_the_rest_proceed(gold, target, caplog):
    good = window("Oslo", 0, 1.5)
    bad_nan = window("Rome", 0, math.nan)
    bad_inf = window("Paris", 0, 2.0) | {"max_wind_speed": math.inf}
    no_key = window(None, 0, 3.0)
    gold.write([good, bad_nan, bad_inf, no_key])
    with caplog.at_level("WARNING"):
        summary = sync(gold, target)
    assert summary.rows_skipped == 3
    assert summary.skip_reasons == {
        "non_finite:avg_temperature": 1,
        "non_finite:max_wind_speed": 1,
        "null_key:location": 1,
    }
    assert "skipped 3 gold rows" in caplog.text
    assert target.values() == {expected(good)}
    assert target.runs() == [(-1, 0, 1, 0, 3)]


def test_deletes_in_gold_are_applied_in_sql(gold, target):
    gold.write([window("Oslo", 0, 1.5), window("Rome", 0, 14.25)])
    sync(gold, target)
    gold.delete("Rome")
    summary = sync(gold, target)
    assert (summary.mode, summary.rows_deleted) == ("cdf", 1)
    assert target.values() == {expected(window("Oslo", 0, 1.5))}


def test_a_deleted_window_moves_no_synced_at_and_is_counted_in_sync_runs(gold, target):
    # Why Power BI's "Detect data changes" on synced_at cannot see a delete (docs/sql-and-powerbi.md).
    oslo, rome = window("Oslo", 0, 1.5), window("Rome", 0, 14.25)
    gold.write([oslo, rome])
    sync(gold, target)
    before = target.rows()
    gold.delete("Rome")  # as a reprocess deletes a window left without events
    sync(gold, target)
    oslo_key = (oslo["location"], expected(oslo)[1])
    assert target.rows() == {oslo_key: before[oslo_key]}
    assert target.runs()[-1] == (0, 1, 0, 1, 0)  # the delete's only trace: rows_deleted


def test_without_a_change_feed_sql_mirrors_a_gold_snapshot_including_deletes(tmp_path, target):
    gold = Gold(tmp_path / "plain_gold", change_feed=False)
    gold.write([window("Oslo", 0, 1.5), window("Rome", 0, 14.25)])
    sync(gold, target)
    gold.delete("Rome")
    gold.merge([window("Oslo", 0, 2.5, processed=9)])
    summary = sync(gold, target)
    assert (summary.mode, summary.rows_upserted, summary.rows_deleted) == ("snapshot", 1, 1)
    assert target.values() == {expected(window("Oslo", 0, 2.5, processed=9))}


def test_reporting_views_give_stable_location_keys_and_a_full_year_date_table(gold, target):
    gold.write([window("Oslo", 0, 1.5), window("Rome", 60 * 24 * 40, 14.25)])  # 2026-03-01 and 2026-04-10
    sync(gold, target)
    gold.merge([window("Bergen", 0, -2.0)])
    sync(gold, target)
    locations = dict(target.query(f"SELECT location, location_key FROM {target.name('dim_location')}"))
    assert sorted(locations.values()) == [1, 2, 3]
    assert locations["Bergen"] == 3  # a new location gets a new key; old keys do not move
    facts = target.query(
        f"SELECT location, location_key, date_key, window_hour FROM {target.name('fact_weather_window')}"
    )
    assert sorted(facts) == sorted(
        [("Oslo", locations["Oslo"], 20260301, 12), ("Rome", locations["Rome"], 20260410, 12),
         ("Bergen", locations["Bergen"], 20260301, 12)]
    )  # fmt: skip
    dates = target.query(
        f"SELECT date_key, year, quarter, month, month_name, day_of_week, day_name, iso_week, is_weekend "
        f"FROM {target.name('dim_date')} ORDER BY date_key"
    )
    assert len(dates) == 365
    by_key = {d[0]: d[1:] for d in dates}
    # 2026-03-01 is a Sunday in ISO week 9; 2026-12-31 a Thursday in ISO week 53.
    assert by_key[20260301] == (2026, 1, 3, "March", 7, "Sunday", 9, 1)
    assert by_key[20261231] == (2026, 4, 12, "December", 4, "Thursday", 53, 0)
    assert dates[0][0] == 20260101


# --- dialect specifics ----------------------------------------------------------------------------------
def test_a_busy_sqlite_database_is_retried_until_it_frees(gold, tmp_path):
    path = str(tmp_path / "busy.db")
    warehouse = SqlWarehouse(sqlite_connector(path), SqliteDialect(TableNames()))
    warehouse.init_schema()
    gold.write([window("Oslo", 0, 1.5)])

    def impatient() -> sqlite3.Connection:
        return sqlite3.connect(path, timeout=0.05, isolation_level=None)

    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
    release = threading.Timer(0.4, blocker.rollback)
    release.start()
    try:
        summary = run_sync(gold.source, SqlWarehouse(impatient, SqliteDialect(TableNames())), base_delay=0.2)
    finally:
        release.join()
        blocker.close()
    assert summary.status == "synced"
    assert summary.attempts >= 2
    assert warehouse.read_watermark() == 0


def test_init_schema_is_idempotent(target):
    warehouse = target.warehouse()
    assert not warehouse.schema_ready()
    warehouse.init_schema()
    warehouse.init_schema()
    assert warehouse.schema_ready()
    assert target.watermark() == -1


def test_a_real_postgres_deadlock_is_classified_as_transient(postgres):
    import pyodbc

    from functions.sql_target.transient_errors import is_transient_error

    setup = pyodbc.connect(postgres.odbc_connection_string, autocommit=True)
    table = f"dl_{uuid.uuid4().hex[:8]}"
    setup.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v INTEGER)")
    setup.execute(f"INSERT INTO {table} VALUES (1, 0), (2, 0)")
    a = pyodbc.connect(postgres.odbc_connection_string, autocommit=False)
    b = pyodbc.connect(postgres.odbc_connection_string, autocommit=False)
    errors: list[BaseException] = []
    a.execute(f"UPDATE {table} SET v = 1 WHERE id = 1")
    b.execute(f"UPDATE {table} SET v = 1 WHERE id = 2")

    def cross(conn: Any, row: int) -> None:
        try:
            conn.execute(f"UPDATE {table} SET v = 2 WHERE id = {row}")
        except pyodbc.Error as exc:
            errors.append(exc)
        finally:
            conn.rollback()

    threads = [threading.Thread(target=cross, args=(a, 2)), threading.Thread(target=cross, args=(b, 1))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for conn in (a, b, setup):
        conn.close()
    assert len(errors) == 1  # PostgreSQL picked one victim
    assert is_transient_error("postgresql", errors[0])
