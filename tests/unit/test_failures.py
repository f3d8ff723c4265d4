"""pipeline.failures.describe: each expected failure as one line that says what failed and what to do."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pyodbc
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CredentialUnavailableError
from deltalake.exceptions import TableNotFoundError
from pyspark.errors import PySparkRuntimeError

from pipeline.cli import UserError
from pipeline.failures import describe
from settings import Settings, SettingsError


def _settings(tmp_path: Path, **values: str) -> Settings:
    return Settings(values={"PIPELINE_HOME": str(tmp_path), **values})


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (UserError("--to is before --from"), "--to is before --from"),
        (SettingsError("BRONZE_FORMAT must be ..."), "BRONZE_FORMAT must be ..."),
        (
            pyodbc.Error(
                "01000", "[01000] [unixODBC][Driver Manager]Can't open lib 'X' : file not found (0)"
            ),
            "the SQL target (SQL_CONNECTION) failed: Can't open lib 'X' : file not found (0)",
        ),
        (
            TableNotFoundError("no log files"),
            "a Delta table could not be read or written: no log files (--debug shows the traceback)",
        ),
        (
            PermissionError(13, "Permission denied", "/data/home/writer.lock"),
            "Permission denied: /data/home/writer.lock (check PIPELINE_HOME and the paths in your settings)",
        ),
        (ConnectionRefusedError(111, "Connection refused"), "[Errno 111] Connection refused"),
        (
            ClientAuthenticationError("AADSTS700016: app not found\nmore"),
            "Azure sign-in failed: AADSTS700016: app not found",
        ),
    ],
)
def test_expected_failures_are_one_line(exc: BaseException, line: str) -> None:
    assert describe(exc) == line


def test_no_azure_credential_names_the_setting_that_needs_one(tmp_path: Path) -> None:
    settings = _settings(tmp_path, SQL_CONNECTION="Driver={FreeTDS};Server=db;Database=w")
    line = describe(
        CredentialUnavailableError("DefaultAzureCredential failed to retrieve a token\n..."), settings
    )
    assert line == (
        "Azure sign-in failed: DefaultAzureCredential found no credential (SQL_CONNECTION has no UID/PWD, "
        "so it signs in as you); run `az login`, run where a managed identity is available, or give the "
        "setting its own credentials"
    )


def test_a_locked_sqlite_database_says_to_try_again(tmp_path: Path) -> None:
    line = describe(sqlite3.OperationalError("database is locked"), _settings(tmp_path))
    assert line == (
        f"SQLite (hub.db or warehouse.db in {tmp_path}) failed: database is locked "
        "(another process is writing it: try again)"
    )


def test_spark_that_cannot_start_points_at_java() -> None:
    line = describe(PySparkRuntimeError(errorClass="JAVA_GATEWAY_EXITED", messageParameters={}))
    assert line is not None and line.startswith("Spark could not start (its Java process exited)")


def test_a_bug_is_not_an_expected_failure() -> None:
    assert describe(KeyError("result")) is None
    assert describe(TypeError("unsupported operand")) is None
