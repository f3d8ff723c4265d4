"""`python -m pipeline sql init` and the window_start index, on SQLite and a real PostgreSQL.

Power BI's incremental refresh reads `fact_weather_window` by `window_start` ranges. The index
must be there after `sql init` on a new database, after a second `sql init`, and on a database an
older version made: `tests/fixtures/sql_before_window_index/` holds that version's scripts
(`sql/<dialect>/schema.sql` before the index), run here as a user once ran them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from functions.sql_target.warehouse import SqlWarehouse, warehouse_from_settings
from settings import PROJECT_ROOT, load_settings
from tests.fixtures.cli import run_python

pytestmark = pytest.mark.integration

OLD_DDL = PROJECT_ROOT / "tests" / "fixtures" / "sql_before_window_index"
INDEX = "ix_weather_summary_window_start"
RANGE = "window_start >= '2026-03-01 00:00:00' AND window_start < '2026-03-02 00:00:00'"
COLUMNS = "location, window_start, window_end, event_count, synced_at"


@dataclass
class Database:
    """A SQL target as `pipeline sql init` sees it (its settings) and as the test reads it."""

    kind: str
    env: dict[str, str]
    schema: str

    @property
    def warehouse(self) -> SqlWarehouse:
        return warehouse_from_settings(load_settings(environ=self.env))

    def table(self, name: str) -> str:
        return self.warehouse.dialect.qualified(name)

    def execute(self, *statements: str) -> list[tuple[Any, ...]]:
        """Run statements in one transaction; the rows of the last one."""
        with self.warehouse._connection() as conn:
            cur = conn.cursor()
            rows: list[tuple[Any, ...]] = []
            for statement in statements:
                cur.execute(statement)
                rows = [tuple(r) for r in cur.fetchall()] if cur.description else []
            conn.commit()
        return rows

    def run_old_ddl(self) -> None:
        script = (
            (OLD_DDL / f"{self.kind}.sql").read_text(encoding="utf-8").replace('"dbo"', f'"{self.schema}"')
        )
        code = "\n".join(line for line in script.splitlines() if not line.startswith("--"))
        self.execute(*[s.strip() for s in code.split(";\n") if s.strip()])

    def sql_init(self) -> None:
        done = run_python({**os.environ, **self.env}, "-m", "pipeline", "sql", "init", timeout=120)
        assert done.returncode == 0, done.stderr
        assert "SQL schema ready" in done.stdout

    def indexes(self) -> set[str]:
        if self.kind == "sqlite":
            query = "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'weather_summary'"
        else:
            query = (
                "SELECT indexname FROM pg_indexes "
                f"WHERE schemaname = '{self.schema}' AND tablename = 'weather_summary'"
            )
        return {r[0] for r in self.execute(query)}

    def range_plan(self) -> str:
        """How the engine runs the query Power BI folds for one incremental-refresh partition."""
        query = f"SELECT * FROM {self.table('fact_weather_window')} WHERE {RANGE}"
        if self.kind == "sqlite":
            return "\n".join(str(r[-1]) for r in self.execute(f"EXPLAIN QUERY PLAN {query}"))
        # A day is a quarter of these rows, cheapest read whole: forbid that, to see which index serves.
        return "\n".join(r[0] for r in self.execute("SET LOCAL enable_seqscan = off", f"EXPLAIN {query}"))

    def insert_windows(self, days: int = 4, locations: int = 50) -> None:
        """Hourly windows per location over ``days`` days from 2026-02-28, then fresh statistics
        (a planner choosing an index for a one-day range needs to know the table is larger)."""
        start = datetime(2026, 2, 28)
        values = []
        for hour in range(days * 24):
            at = start + timedelta(hours=hour)
            for n in range(locations):
                values.append(f"('City{n}', '{at}', '{at + timedelta(minutes=5)}', 3, '{at}')")
        locations_sql = ", ".join(f"('City{n}')" for n in range(locations))
        self.execute(
            f"INSERT INTO {self.table('weather_summary_location')} (location) VALUES {locations_sql}",
            f"INSERT INTO {self.table('weather_summary')} ({COLUMNS}) VALUES {', '.join(values)}",
        )
        self.execute("ANALYZE")

    def insert_duplicate(self) -> None:
        at = datetime(2026, 3, 1)
        self.execute(
            f"INSERT INTO {self.table('weather_summary')} ({COLUMNS}) "
            f"VALUES ('City0', '{at}', '{at + timedelta(minutes=5)}', 1, '{at}')"
        )

    def rows(self) -> list[tuple[Any, ...]]:
        return self.execute(f"SELECT {COLUMNS} FROM {self.table('weather_summary')} ORDER BY 1, 2")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path: Path) -> Iterator[Database]:
    home = {"PIPELINE_HOME": str(tmp_path), "SQL_TABLE": "weather_summary"}
    if request.param == "sqlite":
        yield Database("sqlite", {**home, "SQL_CONNECTION": "", "SQL_SCHEMA": "dbo"}, "dbo")
    else:
        postgres = request.getfixturevalue("postgres")
        schema = f"t_{uuid.uuid4().hex[:12]}"  # apart from the other tests on the session server
        env = {**home, "SQL_CONNECTION": postgres.odbc_connection_string, "SQL_SCHEMA": schema}
        yield Database("postgresql", env, schema)


def test_sql_init_creates_the_window_start_index_and_a_second_run_keeps_it(database):
    database.sql_init()
    database.insert_windows()
    assert INDEX in database.indexes()
    before = database.indexes()
    database.sql_init()
    assert database.indexes() == before
    assert INDEX in database.range_plan()


def test_sql_init_adds_the_index_to_a_database_the_old_ddl_made(database):
    database.run_old_ddl()
    database.insert_windows()
    rows = database.rows()
    assert INDEX not in database.indexes()
    assert INDEX not in database.range_plan()  # what Power BI's range queries had before

    database.sql_init()
    database.sql_init()

    assert INDEX in database.indexes()
    assert INDEX in database.range_plan()
    assert database.rows() == rows
    with pytest.raises(Exception, match=r"(?i)unique"):  # the unique key still holds
        database.insert_duplicate()
