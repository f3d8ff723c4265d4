"""The sync timer Function as the host calls it, `pipeline sync`, and an optional real SQL Server."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime

import pytest
from azure.functions.timer import TimerRequest

import function_app
from functions.sql_target.connections import odbc_connector
from functions.sql_target.dialects import SqlServerDialect, TableNames
from functions.sql_target.warehouse import SqlWarehouse
from functions.sync_core import run_sync
from pipeline.sync_runner import SYNC_FUNCTION_NAME, find_timer_function, sync_once
from settings import load_settings
from tests.fixtures.gold import Gold, expected, sqlite_rows, window

pytestmark = pytest.mark.integration


def home_settings(tmp_path, **extra: str):
    return load_settings(environ={"PIPELINE_HOME": str(tmp_path / "home"), **extra})


def test_the_timer_binding_is_what_azure_would_index():
    function = find_timer_function(function_app.app)
    binding = json.loads(function.get_function_json())["bindings"][0]
    assert binding == {
        "direction": "IN",
        "type": "timerTrigger",
        "name": "timer",
        "schedule": "%SYNC_SCHEDULE%",
        "runOnStartup": False,
        "useMonitor": True,
    }


def test_the_timer_function_called_with_a_timer_request_syncs_gold(tmp_path, monkeypatch):
    settings = home_settings(tmp_path)
    rows = [window("Oslo", 0, 1.5), window("Rome", 0, 14.25)]
    Gold(settings.gold_table_uri).write(rows)
    function = find_timer_function(function_app.app).get_user_function()
    monkeypatch.setenv("PIPELINE_HOME", str(settings.home))  # app settings are the worker's environment
    function(TimerRequest(past_due=True))
    # The outcome, as the SQL database records it: one run, from never synced to gold version 0.
    conn = sqlite3.connect(settings.sqlite_path)
    runs = conn.execute("SELECT from_version, to_version, rows_upserted FROM sync_runs").fetchall()
    conn.close()
    assert runs == [(-1, 0, 2)]
    assert sqlite_rows(settings) == {expected(r) for r in rows}


def test_sync_once_on_a_fresh_home_without_gold_creates_the_schema_and_says_so(tmp_path):
    settings = home_settings(tmp_path)
    result = sync_once(settings)
    assert result["status"] == "no_gold"
    assert "gold table does not exist" in result["message"]
    conn = sqlite3.connect(settings.sqlite_path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
    conn.close()
    assert {"weather_summary", "sync_watermark", "sync_runs", "fact_weather_window", "dim_date"} <= tables


def test_sync_once_fires_the_function_and_returns_its_counts(tmp_path):
    settings = home_settings(tmp_path)
    gold = Gold(settings.gold_table_uri)
    gold.write([window("Oslo", 0, 1.5)])
    first = sync_once(settings)
    assert (first["status"], first["rows_upserted"], first["to_version"]) == ("synced", 1, 0)
    gold.merge([window("Oslo", 0, 2.0, processed=3), window("Bergen", 5, -1.0)])
    second = sync_once(settings)
    assert (second["status"], second["rows_upserted"], second["mode"]) == ("synced", 2, "cdf")
    assert sync_once(settings)["status"] == "up_to_date"
    assert sqlite_rows(settings) == {
        expected(window("Oslo", 0, 2.0, processed=3)),
        expected(window("Bergen", 5, -1.0)),
    }


def test_pipeline_sync_command_prints_json_counts(tmp_path, capsys):
    import argparse

    from pipeline.commands import sync as sync_command

    settings = home_settings(tmp_path)
    Gold(settings.gold_table_uri).write([window("Oslo", 0, 1.5)])
    assert sync_command.handle(argparse.Namespace(json=True, settings=settings)) == 0
    printed = json.loads(capsys.readouterr().out)
    assert (printed["status"], printed["rows_upserted"]) == ("synced", 1)
    assert SYNC_FUNCTION_NAME == "sync_gold_to_sql"


# --- a real SQL Server, when one is configured ------------------------------------------------------
SQLSERVER = load_settings().get("SQLSERVER_TEST_CONNECTION")


@pytest.mark.skipif(
    not SQLSERVER, reason="SQLSERVER_TEST_CONNECTION is not set (no SQL Server engine runs here)"
)
def test_sql_server_first_load_and_replay(tmp_path):
    names = TableNames(schema="sync_it", table=f"weather_{datetime.now(UTC):%H%M%S%f}")
    warehouse = SqlWarehouse(odbc_connector(SQLSERVER, "sqlserver"), SqlServerDialect(names))
    gold = Gold(tmp_path / "gold")
    rows = [window("Oslo", 0, 1.5), window("Rome", 0, 14.25)]
    gold.write(rows)
    first = run_sync(gold.source, warehouse)
    assert (first.status, first.rows_upserted) == ("synced", 2)
    gold.merge(rows)  # same values again: nothing changes
    replay = run_sync(gold.source, warehouse)
    assert (replay.status, replay.rows_upserted) == ("synced", 0)
    with warehouse._connection() as conn:
        cur = conn.cursor()
        cur.execute(f"SELECT COUNT(*) FROM {warehouse.dialect.qualified(names.table)}")
        assert cur.fetchone()[0] == 2
