"""SQL Server cannot run here: every T-SQL statement the SQL Server dialect emits is parsed with sqlglot."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pyodbc
import pytest
import sqlglot
from sqlglot import exp
from sqlglot.executor import execute

from functions.sql_target.connections import (
    SQL_COPT_SS_ACCESS_TOKEN,
    access_token_struct,
    dialect_name_for,
    needs_access_token,
    odbc_connector,
)
from functions.sql_target.dialects import (
    Dialect,
    PostgresDialect,
    SqliteDialect,
    SqlServerDialect,
    TableNames,
    dialect_for,
)
from functions.sql_target.schema import ddl, ddl_script
from functions.sql_target.sync_statements import sync_statements
from functions.sql_target.transient_errors import is_transient_error
from functions.sync_core import GOLD_COLUMNS
from settings import SettingsError

ROOT = Path(__file__).resolve().parents[2]
TSQL = SqlServerDialect(TableNames("reporting", "weather_summary"))
TSQL_SYNC = sync_statements(TSQL)


def parse_tsql(statement: str) -> Any:
    (tree,) = sqlglot.parse(statement, read="tsql")
    assert tree is not None
    # A Command is sqlglot giving up and keeping the text: that is not a parse.
    assert not isinstance(tree, exp.Command), statement
    return tree


def all_statements(dialect: Dialect) -> list[str]:
    """Every statement the sync can send to the dialect's engine."""
    return [*ddl(dialect), dialect.schema_probe(), *sync_statements(dialect).statements()]


@pytest.mark.parametrize("statement", all_statements(TSQL), ids=lambda s: s[:60])
def test_every_tsql_statement_the_code_emits_parses(statement):
    parse_tsql(statement)


def test_the_upsert_is_one_merge_with_holdlock_on_the_unique_key():
    merge = parse_tsql(TSQL_SYNC.upsert())
    assert isinstance(merge, exp.Merge)
    sql = merge.sql("tsql")
    assert "WITH (HOLDLOCK)" in sql
    assert "[reporting].[weather_summary]" in sql
    on = merge.args["on"].sql("tsql")
    assert on == "t.[location] = s.[location] AND t.[window_start] = s.[window_start]"
    # both branches stamp synced_at from a parameter; nothing else is a parameter
    assert TSQL_SYNC.upsert().count("?") == 2
    assert "EXCEPT" in sql  # only changed rows are updated, so synced_at survives a replay


def test_the_watermark_is_locked_and_advanced_with_compare_and_set():
    lock = parse_tsql(TSQL_SYNC.lock_watermark()).sql("tsql")
    assert "WITH (UPDLOCK, HOLDLOCK)" in lock
    update = parse_tsql(TSQL_SYNC.advance_watermark())
    assert isinstance(update, exp.Update)
    where = update.args["where"].sql("tsql")
    assert "[delta_version] = ?" in where and "[table_name] = ?" in where


def test_staging_is_a_session_temp_table():
    drop, create = TSQL_SYNC.create_stage()
    assert parse_tsql(create).find(exp.Table).sql("tsql") == "#weather_sync_stage"
    assert isinstance(parse_tsql(drop), exp.Drop)
    assert isinstance(parse_tsql(TSQL_SYNC.insert_stage()), exp.Insert)
    assert TSQL_SYNC.insert_stage().count("?") == len(GOLD_COLUMNS) + 1


def test_staging_text_columns_take_the_database_collation_not_tempdbs():
    create = parse_tsql(TSQL_SYNC.create_stage()[1])
    collations = {}
    for column in create.find_all(exp.ColumnDef):
        collate = [
            c for c in column.args.get("constraints") or [] if isinstance(c.kind, exp.CollateColumnConstraint)
        ]
        collations[column.name] = collate[0].kind.this.name if collate else None
    text = {"op", "location", "dominant_wind_direction", "dominant_conditions"}
    assert collations == {c: "DATABASE_DEFAULT" if c in text else None for c in ("op", *GOLD_COLUMNS)}


# --- the clustered index on window_start ----------------------------------------------------------------
def guarded_steps(statements: list[str]) -> list[tuple[exp.Select, bool, exp.Expression]]:
    """(the sys.indexes query, whether it must find a row, the action) of each guarded statement."""
    steps = []
    for statement in statements:
        tree = parse_tsql(statement)
        assert isinstance(tree, exp.IfBlock), statement
        condition, (action,) = tree.this, tree.args["true"].expressions
        negated = isinstance(condition, exp.Not)
        query = condition.find(exp.Select)
        assert query is not None and query.find(exp.Table).sql("tsql") == "sys.indexes"
        steps.append((query, not negated, action))
    return steps


def run_index_steps(indexes: list[dict[str, Any]], statements: list[str]) -> list[dict[str, Any]]:
    """Apply the guarded steps to a model of sys.indexes for the table, refusing what SQL Server
    refuses (a second clustered index: Msg 1902; an object name taken: Msg 2714)."""
    indexes = [dict(i) for i in indexes]
    for query, must_find, action in guarded_steps(statements):
        plain = query.copy().transform(
            lambda node: (
                exp.Literal.string(node.this.name)
                if isinstance(node, exp.ObjectId)
                else exp.Literal.string(node.name)
                if isinstance(node, exp.National)
                else node
            )
        )
        found = bool(execute(plain, tables={"sys": {"indexes": indexes}}, schema=SYS_INDEXES).rows)
        if found != must_find:
            continue
        sql = action.sql("tsql")
        clustered = 1 if " CLUSTERED" in sql and "NONCLUSTERED" not in sql else 2
        if isinstance(action, exp.Create):
            name = action.this.name
        elif action.find(exp.Drop):
            (name,) = [t.name for t in action.find(exp.Drop).find_all(exp.Table)]
            indexes = [i for i in indexes if i["name"] != name]
            continue
        else:
            name = action.find(exp.Constraint).name
        if clustered == 1 and any(i["type"] in (1, 5) for i in indexes):
            raise AssertionError(f"Msg 1902: cannot create more than one clustered index ({sql})")
        if any(i["name"] == name for i in indexes):
            raise AssertionError(f"Msg 2714: there is already an object named {name}")
        indexes.append({"object_id": TABLE, "name": name, "type": clustered})
    return indexes


SYS_INDEXES = {"sys": {"indexes": {"object_id": "VARCHAR", "name": "VARCHAR", "type": "INT"}}}
DBO = SqlServerDialect(TableNames())
TABLE = "[dbo].[weather_summary]"
UNIQUE_KEY = {"object_id": TABLE, "name": "uq_weather_summary_key", "type": 2}
WINDOW_INDEX = {"object_id": TABLE, "name": "ix_weather_summary_window_start", "type": 1}


def created_indexes(create_table: str) -> list[dict[str, Any]]:
    """sys.indexes after a CREATE TABLE: UNIQUE constraints are NONCLUSTERED unless they say CLUSTERED."""
    tree = parse_tsql(create_table).find(exp.Create)
    out = []
    for constraint in tree.find_all(exp.Constraint):
        sql = constraint.sql("tsql")
        out.append({"object_id": TABLE, "name": constraint.name, "type": 1 if " CLUSTERED" in sql else 2})
    return out


def test_the_clustered_index_leads_on_window_start_and_keeps_the_unique_key():
    create = parse_tsql(DBO.create_indexes()[1]).args["true"].expressions[0]
    assert isinstance(create, exp.Create)
    assert (create.args["kind"], create.args["unique"]) == ("CLUSTERED INDEX", True)
    assert create.this.name == "ix_weather_summary_window_start"
    columns = [c.name for c in create.this.args["params"].args["columns"]]
    assert columns == ["window_start", "location"]
    table = next(s for s in ddl(DBO) if "CREATE TABLE [dbo].[weather_summary] " in s)
    assert created_indexes(table) == [UNIQUE_KEY]  # explicitly NONCLUSTERED


@pytest.mark.parametrize(
    "before",
    [
        pytest.param([UNIQUE_KEY], id="made by this DDL or the old one (heap + nonclustered key)"),
        pytest.param([UNIQUE_KEY | {"type": 1}], id="unique key made clustered"),
    ],
)
def test_sql_init_gives_an_existing_table_the_clustered_index_and_a_rerun_changes_nothing(before):
    after = run_index_steps(before, DBO.create_indexes())
    assert sorted(after, key=lambda i: i["name"]) == [WINDOW_INDEX, UNIQUE_KEY]
    assert run_index_steps(after, DBO.create_indexes()) == after


def test_the_old_sql_server_ddl_made_a_heap_with_a_nonclustered_unique_key():
    old = (ROOT / "tests" / "fixtures" / "sql_before_window_index" / "sqlserver.sql").read_text()
    (table,) = [b.strip() for b in old.split("GO") if "CREATE TABLE [dbo].[weather_summary] " in b]
    assert created_indexes(table) == [UNIQUE_KEY]


def test_a_clustered_index_a_dba_chose_is_left_alone():
    theirs = {"object_id": TABLE, "name": "cx_dba_choice", "type": 1}
    assert run_index_steps([UNIQUE_KEY, theirs], DBO.create_indexes()) == [UNIQUE_KEY, theirs]


def test_generated_scripts_in_sql_folder_match_the_code():
    for name in ("sqlserver", "postgresql", "sqlite"):
        script = ddl_script(dialect_for(name, TableNames()))
        assert (ROOT / "sql" / name / "schema.sql").read_text(encoding="utf-8") == script, name


def test_sqlserver_script_batches_parse_apart_from_the_schema_guard():
    script = ddl_script(SqlServerDialect(TableNames()))
    code = "\n".join(line for line in script.splitlines() if not line.startswith("--"))
    body = [b.strip() for b in re.split(r"^GO$", code, flags=re.MULTILINE) if b.strip()]
    assert len(body) == len(ddl(SqlServerDialect(TableNames())))
    assert body[0].startswith("IF SCHEMA_ID(N'dbo') IS NULL")
    for batch in body[1:]:
        parse_tsql(batch)


def test_sqlite_statements_run_on_a_real_sqlite(tmp_path):
    dialect = SqliteDialect(TableNames())
    conn = sqlite3.connect(tmp_path / "w.db")
    for statement in ddl(dialect):
        conn.execute(statement)
    for statement in ddl(dialect):  # idempotent
        conn.execute(statement)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"weather_summary", "sync_watermark", "sync_runs", "dim_date", "dim_location"} <= names
    assert "ix_weather_summary_window_start" in names


# --- identifiers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["dbo; DROP TABLE x", "a b", "1abc", "x]", 'x"', ""])
def test_table_and_schema_names_from_settings_are_validated(bad):
    with pytest.raises(SettingsError):
        TableNames(schema=bad)
    with pytest.raises(SettingsError):
        TableNames(table=bad)


# PostgreSQL cuts names past 63 bytes; SQL Server keeps 128 characters, and SQLite, its local
# stand-in, refuses what it refuses. The table's longest derived name is ix_<table>_window_start.
@pytest.mark.parametrize(
    ("dialect", "longest"), [(SqlServerDialect, 128), (PostgresDialect, 63), (SqliteDialect, 128)]
)
def test_names_are_as_long_as_the_engine_keeps_them(dialect: Any, longest: int) -> None:
    dialect(TableNames(schema="s" * longest))
    with pytest.raises(SettingsError, match=f"SQL_SCHEMA must be .* at most {longest} characters"):
        dialect(TableNames(schema="s" * (longest + 1)))
    longest_table = longest - len("ix__window_start")
    assert "t" * longest_table in " ".join(ddl(dialect(TableNames(table="t" * longest_table))))
    with pytest.raises(SettingsError, match="window_index name must be"):
        dialect(TableNames(table="t" * (longest_table + 1)))


def test_postgres_casts_every_parameter():
    pg = PostgresDialect(TableNames())
    pg_sync = sync_statements(pg)
    for statement in (
        pg_sync.advance_watermark(),
        pg_sync.insert_run(),
        pg_sync.insert_stage(),
        pg_sync.upsert(),
    ):
        assert statement.count("?") == statement.count("CAST(? AS"), statement


# --- connections -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("connection_string", "dialect"),
    [
        ("", "sqlite"),
        (
            "Driver={ODBC Driver 18 for SQL Server};Server=tcp:x.database.windows.net,1433;Database=d",
            "sqlserver",
        ),
        ("Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=5432;Database=d;Uid=u;Pwd=", "postgresql"),
    ],
)
def test_the_dialect_follows_the_connection_string(connection_string, dialect):
    assert dialect_name_for(connection_string) == dialect


def test_an_unknown_driver_is_a_clear_settings_error():
    with pytest.raises(SettingsError, match="SQL_CONNECTION"):
        dialect_name_for("Driver={MySQL};Server=x")


def test_managed_identity_token_is_packed_for_the_odbc_driver():
    packed = access_token_struct("abc")
    assert packed == b"\x06\x00\x00\x00a\x00b\x00c\x00"
    assert needs_access_token("Driver={ODBC Driver 18 for SQL Server};Server=tcp:s;Database=d")
    assert not needs_access_token("Driver={ODBC Driver 18 for SQL Server};Server=s;Uid=u;Pwd=p")
    assert not needs_access_token(
        "Driver={ODBC Driver 18 for SQL Server};Server=s;Authentication=ActiveDirectoryMsi"
    )


def test_sql_server_connection_without_credentials_sends_an_access_token(monkeypatch):
    calls: list[tuple[tuple, dict]] = []

    def recording_connect(*args: object, **kwargs: object) -> str:
        calls.append((args, kwargs))
        return "conn"

    monkeypatch.setattr(pyodbc, "connect", recording_connect)
    connect = odbc_connector("Driver={ODBC Driver 18 for SQL Server};Server=tcp:s;Database=d", "sqlserver",
                             token_provider=lambda: "tok")  # fmt: skip
    assert connect() == "conn"
    ((_, kwargs),) = calls
    assert kwargs["attrs_before"] == {SQL_COPT_SS_ACCESS_TOKEN: access_token_struct("tok")}
    assert kwargs["autocommit"] is False


# --- transient errors -----------------------------------------------------------------------------
def odbc_error(sqlstate: str, native: int, text: str) -> pyodbc.Error:
    return pyodbc.Error(
        sqlstate,
        f"[{sqlstate}] [Microsoft][ODBC Driver 18 for SQL Server][SQL Server]{text} ({native}) "
        "(SQLExecDirectW)",
    )


@pytest.mark.parametrize("native", [1205, 40613, 40197, 40501, 49918, 49919, 49920, 4060, 10928, 10929, 233,
                                    10053, 10054, 10060, 64])  # fmt: skip
def test_sql_server_deadlocks_and_azure_transients_are_retried(native):
    assert is_transient_error("sqlserver", odbc_error("42000", native, "transient"))


@pytest.mark.parametrize("native", [18456, 2627, 8152])
def test_sql_server_login_failure_and_data_errors_are_not_retried(native):
    assert not is_transient_error("sqlserver", odbc_error("28000", native, "Login failed for user 'x'."))


def test_postgres_serialization_and_deadlock_errors_are_retried():
    assert is_transient_error("postgresql", pyodbc.Error("40001", "ERROR: could not serialize access"))
    assert is_transient_error("postgresql", pyodbc.Error("40P01", "ERROR: deadlock detected"))
    assert not is_transient_error("postgresql", pyodbc.Error("23505", "ERROR: duplicate key value"))


def test_sqlite_busy_is_retried_but_other_errors_are_not():
    assert is_transient_error("sqlite", sqlite3.OperationalError("database is locked"))
    assert not is_transient_error("sqlite", sqlite3.OperationalError("no such table: x"))
    assert not is_transient_error("sqlite", ValueError("database is locked"))
