"""`pipeline sync`, `pipeline sql` and `pipeline powerbi`: parsers, help and output files."""

from __future__ import annotations

import json
import sqlite3

import pytest

from functions.sql_target.dialects import SqlServerDialect, TableNames
from functions.sql_target.schema import ddl_script
from pipeline.cli import UserError
from pipeline.commands import powerbi, sql
from pipeline.commands import sync as sync_command
from settings import load_settings
from tests.fixtures.cli import parser_with


@pytest.mark.parametrize("argv", [["sync", "--help"], ["sql", "--help"], ["sql", "init", "--help"],
                                  ["sql", "script", "--help"], ["powerbi", "--help"]])  # fmt: skip
def test_every_command_has_help(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parser_with(sync_command, sql, powerbi).parse_args(argv)
    assert exit_info.value.code == 0
    assert "usage: python -m pipeline" in capsys.readouterr().out


def test_powerbi_writes_a_pbids_opening_the_database_in_import_mode(tmp_path, capsys):
    out = tmp_path / "reports" / "weather.pbids"
    args = parser_with(powerbi).parse_args(
        ["powerbi", "--server", "myserver.database.windows.net", "--database", "weather", "--out", str(out)]
    )
    assert args.handler(args) == 0
    document = json.loads(out.read_text(encoding="utf-8"))
    assert document == {
        "version": "0.1",
        "connections": [
            {
                "details": {
                    "protocol": "tds",
                    "address": {"server": "myserver.database.windows.net", "database": "weather"},
                },
                "options": {},
                "mode": "Import",
            }
        ],
    }
    assert str(out) in capsys.readouterr().out


def test_powerbi_rejects_a_server_name_that_is_not_a_host():
    args = parser_with(powerbi).parse_args(["powerbi", "--server", 'x"; rm -rf', "--database", "d"])
    with pytest.raises(UserError, match="--server"):
        args.handler(args)


def test_sql_script_prints_the_dialects_ddl(capsys):
    args = parser_with(sql).parse_args(["sql", "script", "--dialect", "sqlserver"])
    assert args.handler(args) == 0
    settings = load_settings()
    assert capsys.readouterr().out == ddl_script(
        SqlServerDialect(TableNames(settings.sql_schema, settings.sql_table))
    )


def test_sql_init_creates_the_sqlite_warehouse(tmp_path, capsys):
    settings = load_settings(environ={"PIPELINE_HOME": str(tmp_path)})
    args = parser_with(sql).parse_args(["sql", "init"])
    args.settings = settings
    assert args.handler(args) == 0
    assert args.handler(args) == 0  # idempotent
    conn = sqlite3.connect(tmp_path / "warehouse.db")
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()
    assert {"weather_summary", "sync_watermark", "sync_runs", "dim_location", "dim_date"} <= names
    assert "SQL schema ready" in capsys.readouterr().out
