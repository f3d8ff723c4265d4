"""Upsert 100,000 gold rows into PostgreSQL through pyodbc: first load and a full re-upsert.

Baseline, same run, same rows: a plain pyodbc ``executemany`` INSERT into an empty table.
Targets: the upsert at least 20,000 rows/s, and within 2x the baseline's time. Exit 1 if missed.
Runs its own throwaway PostgreSQL (like the test fixture). ``--rows N`` for a quicker look.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from functions.sql_target.connections import odbc_connector
from functions.sql_target.dialects import PostgresDialect, TableNames
from functions.sql_target.warehouse import SqlWarehouse
from functions.sync_core import GOLD_COLUMNS, RunInfo, SyncPlan
from tests.fixtures.servers import PG_BIN, start_postgres, stop_postgres

TARGET_ROWS_PER_S = 20_000
TARGET_RATIO = 2.0


def gold_rows(n: int, seed: int, updated_at: datetime) -> list[tuple]:
    """``n`` distinct gold rows (200 locations x 5-minute windows), as the planner emits them."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1)
    rows = []
    for i in range(n):
        window = start + timedelta(minutes=5 * (i // 200))
        t = round(rng.uniform(-10, 30), 3)
        rows.append((
            f"City{i % 200:03d}", window, window + timedelta(minutes=5), rng.randint(1, 500),
            t, t - 2.5, t + 2.5, round(rng.uniform(0, 100), 2), round(rng.uniform(0, 20), 2),
            round(rng.uniform(20, 40), 2), round(rng.uniform(0, 5), 2),
            rng.choice(["N", "NE", "SW"]), rng.choice(["Sunny", "Rain"]), updated_at,
        ))  # fmt: skip
    return rows


def plan(rows: list[tuple], version: int) -> SyncPlan:
    return SyncPlan(version - 1, version, rows, [], [], False, max_source_updated_at=rows[0][-1])


def run_info() -> RunInfo:
    now = datetime.now(UTC).replace(tzinfo=None)
    return RunInfo(f"bench-{time.monotonic_ns()}", now, now)


def baseline_insert(connection_string: str, rows: list[tuple]) -> float:
    """Plain executemany INSERT of the rows into an empty table; returns seconds."""
    import pyodbc

    cols = ", ".join(GOLD_COLUMNS)
    conn = pyodbc.connect(connection_string, autocommit=False)
    cur = conn.cursor()
    cur.execute("CREATE TABLE baseline_insert (LIKE dbo.weather_summary INCLUDING DEFAULTS)")
    cur.execute("ALTER TABLE baseline_insert ALTER COLUMN synced_at DROP NOT NULL")
    conn.commit()
    started = time.perf_counter()
    cur.executemany(
        f"INSERT INTO baseline_insert ({cols}) VALUES ({', '.join('?' * len(GOLD_COLUMNS))})", rows
    )
    conn.commit()
    elapsed = time.perf_counter() - started
    cur.execute("SELECT COUNT(*) FROM baseline_insert")
    assert cur.fetchone()[0] == len(rows), "baseline lost rows"
    conn.close()
    return elapsed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_sql", description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="gold rows to upsert (default 100,000)")
    args = parser.parse_args(argv)
    if not (PG_BIN / "initdb").exists():
        print("PostgreSQL 15 is not installed: run .ci/run or `apt-get install postgresql`", file=sys.stderr)
        return 1
    console = Console()
    server = start_postgres()
    try:
        connection_string = server.postgres.odbc_connection_string
        warehouse = SqlWarehouse(
            odbc_connector(connection_string, "postgresql"), PostgresDialect(TableNames())
        )
        warehouse.init_schema()
        first = gold_rows(args.rows, 1, datetime(2026, 2, 1))
        second = gold_rows(args.rows, 2, datetime(2026, 2, 2))  # same keys, every row's values changed
        timings: dict[str, float] = {}
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("PostgreSQL", total=4)
            started = time.perf_counter()
            first_result = warehouse.apply(plan(first, 0), -1, run_info())
            timings["upsert: first load"] = time.perf_counter() - started
            progress.advance(task)
            started = time.perf_counter()
            second_result = warehouse.apply(plan(second, 1), 0, run_info())
            timings["upsert: full re-upsert (all rows changed)"] = time.perf_counter() - started
            progress.advance(task)
            started = time.perf_counter()
            replay_result = warehouse.apply(plan(second, 2), 1, run_info())
            timings["upsert: re-upsert, nothing changed"] = time.perf_counter() - started
            progress.advance(task)
            timings["baseline: executemany INSERT"] = baseline_insert(connection_string, first)
            progress.advance(task)
        counts = (first_result.rows_upserted, second_result.rows_upserted, replay_result.rows_upserted)
        if counts != (args.rows, args.rows, 0):
            console.print(f"[red]wrong row counts (first, re-upsert, unchanged): {counts}[/]")
            return 1
    finally:
        stop_postgres(server)

    baseline = timings["baseline: executemany INSERT"]
    table = Table(title=f"gold → PostgreSQL (pyodbc + psqlODBC), {args.rows:,} rows")
    for column in ("run", "seconds", "rows/s", "× baseline time"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for name, seconds in timings.items():
        table.add_row(name, f"{seconds:.2f}", f"{args.rows / seconds:,.0f}", f"{seconds / baseline:.2f}")
    console.print(table)
    console.print(
        f"targets: upsert ≥ {TARGET_ROWS_PER_S:,} rows/s and ≤ {TARGET_RATIO:g}× the baseline's time"
    )
    missed = [
        name
        for name, seconds in timings.items()
        if name.startswith("upsert")
        and (args.rows / seconds < TARGET_ROWS_PER_S or seconds > TARGET_RATIO * baseline)
    ]
    for name in missed:
        console.print(f"[red]missed target: {name}[/]")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
