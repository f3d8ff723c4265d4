"""The SQL target under faults (a real PostgreSQL): stopped mid-sync, two syncs at once, a sync killed.

To catch a sync inside its transaction every time, the test holds an EXCLUSIVE lock on the SQL
table: the sync begins its transaction, locks the watermark row, stages its rows and then waits
at its upsert, which is where the fault strikes. Plain reads (the schema probe, the watermark
read before the transaction) are not blocked by that lock.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyodbc
import pytest
from deltalake import DeltaTable

from settings import PROJECT_ROOT
from tests.fixtures.cli import run_python
from tests.fixtures.fault_harness import FaultRow, Pipeline, settle_and_check
from tests.fixtures.servers import Postgres, PostgresServer, pause_postgres, resume_postgres

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]


def fresh_database(server: Postgres) -> Postgres:
    """A new, empty database on a running cluster (tests sharing the cluster do not meet)."""
    name = f"faults_{uuid.uuid4().hex[:12]}"
    with contextlib.closing(pyodbc.connect(server.odbc_connection_string, autocommit=True)) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return Postgres(server.port, database=name)


@contextlib.contextmanager
def table_locked(server: Postgres, table: str = "dbo.weather_summary") -> Iterator[Any]:
    """Hold an EXCLUSIVE lock on the SQL table (reads pass, writes wait) until the block ends."""
    conn = pyodbc.connect(server.odbc_connection_string, autocommit=False)
    try:
        conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        yield conn
    finally:
        with contextlib.suppress(pyodbc.Error):
            conn.rollback()
        with contextlib.suppress(pyodbc.Error):
            conn.close()


def waiting_backends(server: Postgres) -> set[int]:
    """Backends of this database waiting for a lock (a sync stopped inside its transaction)."""
    with contextlib.closing(pyodbc.connect(server.odbc_connection_string, autocommit=True)) as conn:
        rows = conn.execute(
            "SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = ?",
            server.database,
        ).fetchall()
    return {int(r[0]) for r in rows}


def backend_alive(server: Postgres, pid: int) -> bool:
    with contextlib.closing(pyodbc.connect(server.odbc_connection_string, autocommit=True)) as conn:
        return bool(conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = ?", pid).fetchall())


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def init_sql(pipe: Pipeline) -> None:
    """`pipeline sql init`: the tables and the watermark, before any sync."""
    from functions.sql_target.warehouse import warehouse_from_settings

    warehouse_from_settings(pipe.settings).init_schema()


def sql_state(pipe: Pipeline) -> tuple[int, list[str], int]:
    """(watermark, SQL rows, sync runs): what a sync that did not commit must leave as it was."""
    from pipeline.layers import SqlReader

    with SqlReader(pipe.settings) as reader:
        rows = sorted(repr(sorted(r.items())) for r in reader.rows("weather_summary") or [])
        runs = len(reader.rows("sync_runs") or [])
    return pipe.watermark(), rows, runs


def test_postgres_stopped_mid_sync_leaves_the_watermark_and_the_next_sync_is_exact(
    tmp_path: Path, spark: Any, own_postgres: PostgresServer, fault: FaultRow
) -> None:
    fault.name = "SQL unavailable mid-sync (PostgreSQL stopped, restarted)"
    pg = own_postgres.postgres
    pipe = Pipeline.create(tmp_path / "home", SQL_CONNECTION=pg.odbc_connection_string)
    pipe.send(200)
    pipe.run_once()
    before = sql_state(pipe)
    pipe.send(200)
    pipe.ingest()
    pipe.spark()
    outcome: dict[str, Any] = {}

    def sync() -> None:
        try:
            outcome["result"] = pipe.sync()
        except Exception as exc:
            outcome["error"] = exc

    with table_locked(pg):
        syncing = threading.Thread(target=sync)
        syncing.start()
        wait_until(lambda: bool(waiting_backends(pg)), 60, "the sync to wait inside its transaction")
        pause_postgres(own_postgres)  # ends every session: the sync's transaction is rolled back
    syncing.join(60)
    status = run_python(pipe.environment(), "-m", "pipeline", "status", timeout=120)
    resume_postgres(own_postgres)

    assert "error" in outcome, outcome
    assert status.returncode == 0, status.stderr
    assert "SQL target unreachable" in status.stdout and "silver rows" in status.stdout
    assert "Traceback" not in status.stdout + status.stderr
    assert sql_state(pipe) == before  # watermark, rows and runs as they were
    result = pipe.sync()
    assert (result["status"], result["from_version"]) == ("synced", before[0])
    settle_and_check(pipe, fault)


def _sync_process(pipe: Pipeline, instance: Path | None = None) -> subprocess.Popen[str]:
    """`pipeline sync` on this pipeline's gold and SQL; with ``instance``, as another Function
    instance would run it: a state folder of its own (the CLI allows one writer per folder)."""
    other = (
        {"PIPELINE_HOME": str(instance), "GOLD_TABLE_URI": pipe.settings.gold_table_uri} if instance else {}
    )
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "sync", "--json"],
        cwd=PROJECT_ROOT,
        env=pipe.environment(**other),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_syncs_at_once_write_each_gold_change_once(
    tmp_path: Path, spark: Any, postgres: Postgres, fault: FaultRow
) -> None:
    fault.name = "two syncs at once against PostgreSQL (twice)"
    pg = fresh_database(postgres)
    pipe = Pipeline.create(tmp_path / "home", SQL_CONNECTION=pg.odbc_connection_string)
    init_sql(pipe)
    for _ in range(2):  # the first sync of all, then one with rows already there
        pipe.send(150)
        pipe.ingest()
        pipe.spark()
        gold_version = DeltaTable(pipe.settings.gold_table_uri).version()
        watermark, _, runs = sql_state(pipe)
        with table_locked(pg):
            syncs = [_sync_process(pipe), _sync_process(pipe, tmp_path / "second-instance")]
            # Both inside their transactions: one waits at the table, the other at the watermark row.
            wait_until(lambda: len(waiting_backends(pg)) >= 2, 120, "both syncs to wait")
        outputs = [p.communicate(timeout=120) for p in syncs]
        assert [p.returncode for p in syncs] == [0, 0], [err for _, err in outputs]
        results = [json.loads(out) for out, _ in outputs]

        assert sorted(r["status"] for r in results) == ["superseded", "synced"]
        assert [r["from_version"] for r in results] == [watermark, watermark]
        after, _, runs_after = sql_state(pipe)
        assert (after, runs_after) == (gold_version, runs + 1)  # advanced once, one run recorded
    settle_and_check(pipe, fault)


def test_a_sync_killed_mid_transaction_commits_nothing_and_the_next_sync_is_exact(
    tmp_path: Path, spark: Any, postgres: Postgres, fault: FaultRow
) -> None:
    fault.name = "SIGKILL: sync mid-transaction, then a restart"
    pg = fresh_database(postgres)
    pipe = Pipeline.create(tmp_path / "home", SQL_CONNECTION=pg.odbc_connection_string)
    init_sql(pipe)
    before = sql_state(pipe)
    pipe.send(300)
    pipe.ingest()
    pipe.spark()

    with table_locked(pg):
        sync = _sync_process(pipe)
        wait_until(lambda: bool(waiting_backends(pg)), 120, "the sync to wait inside its transaction")
        [backend] = waiting_backends(pg)
        sync.send_signal(signal.SIGKILL)
        sync.wait(30)
    # The orphaned backend finishes its statement, finds its client gone and rolls back.
    wait_until(lambda: not backend_alive(pg, backend), 60, "the killed sync's session to end")

    assert sync.returncode == -signal.SIGKILL
    assert sql_state(pipe) == before
    result = pipe.sync()
    assert (result["status"], result["from_version"]) == ("synced", before[0])
    settle_and_check(pipe, fault)
