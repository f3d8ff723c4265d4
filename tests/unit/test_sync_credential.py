"""One DefaultAzureCredential per process: built once, its token cache serving every connection.

No Azure here: the credential is a recording subclass of DefaultAzureCredential that counts how
often it is built and answers get_token itself; pyodbc.connect is replaced by a recording
function (the driver boundary), as in test_tsql_statements.py.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pyodbc
import pytest
from azure.core.credentials import AccessToken
from azure.identity import DefaultAzureCredential

from functions import credentials
from functions.credentials import SharedCredential
from functions.gold_source import STORAGE_SCOPE, storage_options_from_settings
from functions.lake import BlobLake
from functions.sql_target.connections import SQL_COPT_SS_ACCESS_TOKEN, SQL_SERVER_SCOPE, access_token_struct
from functions.sql_target.warehouse import warehouse_from_settings
from settings import load_settings

SQL_SERVER = "Driver={ODBC Driver 18 for SQL Server};Server=tcp:s.database.windows.net,1433;Database=d"
GOLD_ON_ADLS = "abfss://gold@weatherlake.dfs.core.windows.net/weather_summary"


class RecordingCredential(DefaultAzureCredential):
    """A DefaultAzureCredential that hands out a fixed token per scope and records the asks."""

    def __init__(self) -> None:
        super().__init__()
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken(f"token-for-{scopes[0]}", int(time.time()) + 3600)


@pytest.fixture
def built(monkeypatch) -> list[RecordingCredential]:
    """Credentials the process builds, in order (the module's shared one replaced by a fresh one)."""
    made: list[RecordingCredential] = []

    def factory() -> RecordingCredential:
        made.append(RecordingCredential())
        return made[-1]

    monkeypatch.setattr(credentials, "PROCESS_CREDENTIAL", SharedCredential(factory))
    return made


@pytest.fixture
def connects(monkeypatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def recording_connect(connection_string: str, **kwargs: Any) -> str:
        calls.append(kwargs)
        return "connection"

    monkeypatch.setattr(pyodbc, "connect", recording_connect)
    return calls


def test_two_syncs_with_two_connections_each_build_one_credential(built, connects):
    settings = load_settings(environ={"SQL_CONNECTION": SQL_SERVER, "GOLD_TABLE_URI": GOLD_ON_ADLS})
    for _ in range(2):  # what the timer Function builds on each tick
        options = storage_options_from_settings(settings)
        warehouse = warehouse_from_settings(settings)
        warehouse.connect()
        warehouse.connect()
        assert options["bearer_token"] == f"token-for-{STORAGE_SCOPE}"
    assert len(built) == 1
    # Asked on every connection (the credential answers from its cache until the token expires).
    assert built[0].scopes == [STORAGE_SCOPE, SQL_SERVER_SCOPE, SQL_SERVER_SCOPE] * 2
    sql_token = access_token_struct(f"token-for-{SQL_SERVER_SCOPE}")
    assert [c["attrs_before"] for c in connects] == [{SQL_COPT_SS_ACCESS_TOKEN: sql_token}] * 4


def test_the_ingest_lake_shares_the_syncs_credential(built):
    first = BlobLake.from_account_url("https://weatherlake.blob.core.windows.net")
    second = BlobLake.from_account_url("https://weatherlake.blob.core.windows.net")
    assert len(built) == 1
    assert first._service.credential is second._service.credential is built[0]


def test_threads_asking_at_once_still_build_one_credential():
    made: list[object] = []
    start = threading.Barrier(4)

    def slow_factory() -> Any:
        time.sleep(0.05)  # widen the window in which a second build could start
        made.append(object())
        return made[-1]

    shared = SharedCredential(slow_factory)
    seen: list[object] = []

    def ask() -> None:
        start.wait(timeout=10)
        seen.append(shared.get())

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(made) == 1
    assert seen == made * 4


def test_by_default_the_shared_credential_is_one_default_azure_credential():
    shared = SharedCredential()
    assert isinstance(shared.get(), DefaultAzureCredential)
    assert shared.get() is shared.get()
