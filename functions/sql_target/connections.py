"""Opening connections to the SQL target: which engine a connection string names, ODBC with an
Entra ID token when it carries no credentials of its own, and the local SQLite file."""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Callable
from typing import Any

from contract.sql_names import engine_of
from functions import credentials
from settings import SettingsError

SQL_SERVER_SCOPE = "https://database.windows.net/.default"
SQL_COPT_SS_ACCESS_TOKEN = 1256  # msodbcsql pre-connect attribute for an Entra ID access token


def _connection_attributes(connection_string: str) -> dict[str, str]:
    parts = (p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    return {k.strip().lower(): v.strip() for k, v in parts}


def dialect_name_for(connection_string: str) -> str:
    """``sqlite`` for an empty connection string, else from the ODBC driver name."""
    engine = engine_of(connection_string)
    if engine is None:
        raise SettingsError(
            "SQL_CONNECTION must name an ODBC Driver for SQL Server or PostgreSQL "
            "(e.g. Driver={ODBC Driver 18 for SQL Server};...), or be empty for the local SQLite warehouse"
        )
    return engine


def access_token_struct(token: str) -> bytes:
    """An Entra ID access token packed the way msodbcsql expects for SQL_COPT_SS_ACCESS_TOKEN."""
    encoded = token.encode("utf-16-le")
    return struct.pack(f"<I{len(encoded)}s", len(encoded), encoded)


def needs_access_token(connection_string: str) -> bool:
    """True when a SQL Server connection string carries no credentials of its own."""
    attrs = _connection_attributes(connection_string)
    return not ({"uid", "pwd", "authentication", "trusted_connection"} & attrs.keys())


def _default_sql_token() -> str:
    # Looked up per call: the process's one credential, whose cached token serves every connection.
    return credentials.PROCESS_CREDENTIAL.token(SQL_SERVER_SCOPE)


def odbc_connector(
    connection_string: str, dialect: str, token_provider: Callable[[], str] | None = None
) -> Callable[[], Any]:
    """A function opening a pyodbc connection (autocommit off) for ``dialect``."""

    def connect() -> Any:
        import pyodbc

        attrs_before: dict[int, Any] = {}
        if dialect == "sqlserver" and needs_access_token(connection_string):
            # Managed identity / DefaultAzureCredential: no secret in the connection string.
            attrs_before[SQL_COPT_SS_ACCESS_TOKEN] = access_token_struct(
                (token_provider or _default_sql_token)()
            )
        return pyodbc.connect(connection_string, autocommit=False, attrs_before=attrs_before or None)

    return connect


def sqlite_connector(path: str) -> Callable[[], Any]:
    def connect() -> sqlite3.Connection:
        # isolation_level=None: the adapter issues BEGIN IMMEDIATE / COMMIT itself.
        conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    return connect
