"""`python -m pipeline` off the happy path: every failure a user can cause is one line and an exit code.

Each case runs the real CLI in a subprocess. Settings are checked before a command does anything,
so these cases fail before Spark starts; Ctrl-C while Spark starts is in test_cli_interrupts.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from settings import PROJECT_ROOT
from tests.fixtures.cli import cli_env, one_error_line, pipeline

pytestmark = pytest.mark.integration

WRITERS = [
    ["ingest", "--until-idle"],
    ["spark", "--available-now"],
    ["reprocess", "--from", "2026-11-20", "--to", "2026-11-22"],
    ["sync"],
    ["run", "--once"],
    ["sql", "init"],
]
READERS = [["status"], ["status", "--json"], ["report"]]


# --- section 1: failures a user can cause -----------------------------------------------------------


@pytest.mark.parametrize("command", [*WRITERS, *READERS, ["demo", "--events", "10"]], ids=" ".join)
def test_a_state_folder_that_is_a_file_is_one_line_for_every_command(
    tmp_path: Path, command: list[str]
) -> None:
    home = tmp_path / "not-a-folder"
    home.write_text("x")
    line = one_error_line(pipeline(cli_env(home), *command))
    assert line == f"error: PIPELINE_HOME must be a folder (created when missing), but {home} is a file"
    assert home.read_text() == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not-a-folder"]


def test_sql_server_without_credentials_or_azure_login_is_one_line(tmp_path: Path) -> None:
    # FreeTDS speaks to SQL Server; with no UID/PWD the sync signs in with DefaultAzureCredential,
    # which finds nothing here (no az CLI, no managed identity, no AZURE_* variables).
    connection = "Driver={FreeTDS};Server=127.0.0.1;Port=1;Database=weather"
    env = cli_env(tmp_path, SQL_CONNECTION=connection)
    line = one_error_line(pipeline(env, "sync"))
    assert line.startswith("error: Azure sign-in failed: DefaultAzureCredential found no credential")
    assert "SQL_CONNECTION has no UID/PWD" in line
    assert "az login" in line
    # status still shows every other layer, then says the same in its one SQL line (exit 0: it answered).
    status = pipeline(env, "status")
    assert status.returncode == 0 and "Traceback" not in status.stdout + status.stderr
    assert "│ bronze records" in status.stdout
    assert status.stdout.strip().splitlines()[-1] == f"SQL target unreachable: {line.removeprefix('error: ')}"


@pytest.mark.parametrize("command", [["status"], ["report"], ["sync"], ["sql", "init"]], ids=" ".join)
def test_an_odbc_driver_that_is_not_installed_is_named_before_anything_runs(
    tmp_path: Path, command: list[str]
) -> None:
    env = cli_env(tmp_path, SQL_CONNECTION="Driver={ODBC Driver 99 for SQL Server};Server=tcp:x,1433")
    line = one_error_line(pipeline(env, *command))
    assert line.startswith(
        "error: SQL_CONNECTION names the ODBC driver 'ODBC Driver 99 for SQL Server', which is not "
        "installed here (installed: "
    )
    assert not (tmp_path / "reports").exists()


def test_a_driver_for_another_database_is_refused_by_status_as_by_sync(tmp_path: Path) -> None:
    env = cli_env(tmp_path, SQL_CONNECTION="Driver={SQLite3};Database=/tmp/x.db")
    lines = {one_error_line(pipeline(env, command)) for command in ("status", "sync")}
    assert len(lines) == 1
    assert lines.pop().startswith(
        "error: SQL_CONNECTION must name an ODBC Driver for SQL Server or PostgreSQL"
    )


@pytest.mark.parametrize(
    "command", [["status"], ["sync"], ["sql", "init"], ["sql", "script", "--dialect", "sqlite"]]
)
def test_a_bad_sql_table_is_one_line_in_every_sql_command(tmp_path: Path, command: list[str]) -> None:
    line = one_error_line(pipeline(cli_env(tmp_path, SQL_TABLE="weather-summary"), *command))
    assert line.startswith("error: SQL_TABLE must be a plain SQL identifier")
    assert "'weather-summary'" in line


def test_an_unreachable_sql_target_is_one_line(tmp_path: Path) -> None:
    env = cli_env(
        tmp_path, SQL_CONNECTION="Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=1;Database=x;Uid=u;Pwd=p"
    )
    line = one_error_line(pipeline(env, "sync"))
    assert line.startswith("error: the SQL target (SQL_CONNECTION) failed: ")
    assert "[unixODBC]" not in line


def _with_local_settings(
    env: dict[str, str], document: bytes, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """``python -m pipeline <args>`` reading ``document`` as its local.settings.json.

    The file lives next to settings.py in the project, which a test must not overwrite; this runs
    the same entry point with settings.LOCAL_SETTINGS_FILE pointing at a copy in ``tmp_path``.
    """
    path = tmp_path / "local.settings.json"
    path.write_bytes(document)
    code = (
        "import runpy, sys, pathlib, settings; "
        f"settings.LOCAL_SETTINGS_FILE = pathlib.Path({str(path)!r}); "
        f"sys.argv = ['pipeline', *{list(args)!r}]; "
        "runpy.run_module('pipeline', run_name='__main__')"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_local_settings_whose_values_is_not_an_object_is_one_line(tmp_path: Path) -> None:
    result = _with_local_settings(cli_env(tmp_path), b'{"Values": ["SQL_TABLE"]}', tmp_path, "status")
    line = one_error_line(result)
    assert (
        line
        == 'error: "Values" in local.settings.json must be an object of setting names to values, got an array'
    )


def test_local_settings_saved_with_a_byte_order_mark_is_read_and_null_means_the_default(
    tmp_path: Path,
) -> None:
    env = cli_env(tmp_path)
    env.pop("SQL_TABLE", None)
    env.pop("SQL_SCHEMA", None)
    document = json.dumps({"IsEncrypted": False, "Values": {"SQL_SCHEMA": "from_file", "SQL_TABLE": None}})
    result = _with_local_settings(
        env, b"\xef\xbb\xbf" + document.encode(), tmp_path, "sql", "script", "--dialect", "postgresql"
    )
    assert result.returncode == 0, result.stderr
    assert '"from_file"."weather_summary"' in result.stdout
    assert "None" not in result.stdout


def test_debug_shows_the_traceback_behind_the_one_line(tmp_path: Path) -> None:
    env = cli_env(tmp_path, SQL_TABLE="bad-name")
    for result in (pipeline(env, "status", "--debug"), pipeline({**env, "PIPELINE_DEBUG": "1"}, "status")):
        assert result.returncode == 1
        assert "Traceback (most recent call last)" in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith("error: SQL_TABLE must be")


# --- section 2: settings checked before anything runs ------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value", "commands"),
    [
        (
            "BRONZE_FORMAT",
            "parquet",
            [["ingest", "--until-idle"], ["spark", "--available-now"], ["run", "--once"]],
        ),
        (
            "WINDOW_MINUTES",
            "7",
            [
                ["spark", "--available-now"],
                ["run", "--once"],
                ["reprocess", "--from", "2026-11-20", "--to", "2026-11-20"],
            ],
        ),
        ("LOCAL_HUB_PARTITIONS", "0", [["ingest", "--until-idle"], ["run", "--once"]]),
        ("SPARK_TRIGGER_SECONDS", "0", [["spark"], ["run"]]),
        ("SQL_SCHEMA", "dbo;drop", [["sync"], ["run", "--once"], ["status"]]),
        ("SYNC_SCHEDULE", "every minute", [["run"]]),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_bad_setting_stops_the_command_before_it_starts_any_work(
    tmp_path: Path, setting: str, value: str, commands: list[list[str]]
) -> None:
    home = tmp_path / "home"
    for command in commands:
        line = one_error_line(pipeline(cli_env(home, **{setting: value}), *command))
        assert line.startswith(f"error: {setting} must be"), command
        assert repr(value) in line or f" {value}" in line, line
        # Nothing was started: no progress bar, no hub, no lake, no lock taken.
        assert not home.exists(), command


def test_the_demo_checks_its_settings_before_it_creates_a_folder_or_sends_an_event(tmp_path: Path) -> None:
    line = one_error_line(pipeline(cli_env(tmp_path, BRONZE_FORMAT="csv", WINDOW_MINUTES="7"), "demo"))
    assert line.startswith(
        "error: BRONZE_FORMAT must be jsonl, jsonl.gz or avro, got 'csv'; WINDOW_MINUTES must be"
    )
    assert list(tmp_path.iterdir()) == []


def test_reprocess_dates_out_of_range_are_refused_by_the_parser(tmp_path: Path) -> None:
    result = pipeline(cli_env(tmp_path), "reprocess", "--from", "0001-01-01", "--to", "2026-11-22")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "python -m pipeline reprocess: error: argument --from: expected an event date from 1900-01-01 to "
        )
    )
    assert "Traceback" not in result.stderr
    backwards = pipeline(cli_env(tmp_path), "reprocess", "--from", "2026-11-22", "--to", "2026-11-20")
    assert one_error_line(backwards) == "error: --to (2026-11-20) is before --from (2026-11-22)"
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_demo_folder_is_one_line(tmp_path: Path) -> None:
    line = one_error_line(pipeline(cli_env(tmp_path), "status", "--last-demo"))
    assert line == f"error: no demo-* folder under {tmp_path}: run `make demo` first"
    line = one_error_line(pipeline(cli_env(tmp_path), "report", "--home", str(tmp_path / "nowhere")))
    assert line == f"error: --home {tmp_path / 'nowhere'}: no such folder"


def test_ctrl_c_while_the_demo_produces_is_one_line_naming_its_folder(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "demo", "--events", "5000000"],
        cwd=PROJECT_ROOT,
        env=cli_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches
    )
    try:
        deadline = time.monotonic() + 60
        while not any((home / "hub.db").exists() for home in tmp_path.glob("demo-*")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        time.sleep(1.0)  # the producer is sending
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    (home,) = tmp_path.glob("demo-*")
    assert proc.returncode == 130
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"interrupted: the demo stopped part-way; {home} keeps what it did (`status --home {home}`); "
        "`make demo` starts a new one"
    )


@pytest.mark.spark
def test_a_window_size_other_than_golds_is_refused_in_one_line_saying_how_to_rebuild(
    tmp_path: Path, spark: object
) -> None:
    from pipeline.spark_runner import lake_config
    from settings import load_settings
    from spark.delta_tables import DeltaTables

    home = tmp_path / "home"
    lake = lake_config(load_settings(environ={"PIPELINE_HOME": str(home)}))
    DeltaTables(spark, lake, window_minutes=5).prepare()  # gold built with 5-minute windows

    result = pipeline(cli_env(home, WINDOW_MINUTES="10"), "spark", "--available-now", timeout=300)

    line = one_error_line(result)
    assert "holds 5-minute windows, but WINDOW_MINUTES is 10" in line
    assert "GOLD_TABLE_URI" in line and "reprocess" in line
