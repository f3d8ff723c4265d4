"""Which SQL errors are worth retrying the whole sync transaction for: deadlocks, serialization
failures, failovers, throttling, a busy database. Anything else fails the run at once."""

from __future__ import annotations

import re
import sqlite3

SQL_SERVER_TRANSIENT = frozenset(
    {1205, 40613, 40197, 40501, 49918, 49919, 49920, 4060, 10928, 10929, 233, 10053, 10054, 10060, 64}
)
POSTGRES_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})
POSTGRES_TRANSIENT_TEXT = ("could not serialize access", "deadlock detected")
SQLITE_BUSY, SQLITE_LOCKED = 5, 6


def sql_server_error_numbers(exc: BaseException) -> set[int]:
    """Native error numbers in a pyodbc error message (``... (1205) (SQLExecDirectW)``)."""
    return {int(n) for n in re.findall(r"\((\d+)\)", " ".join(str(a) for a in exc.args))}


def is_transient_error(dialect: str, exc: BaseException) -> bool:
    """True when ``exc`` is a deadlock, serialization failure, failover or busy database."""
    if dialect == "sqlite":
        if not isinstance(exc, sqlite3.OperationalError):
            return False
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None:
            return code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)
        return "locked" in str(exc) or "busy" in str(exc)
    try:
        import pyodbc
    except ImportError:  # pragma: no cover - pyodbc is a dependency of the app
        return False
    if not isinstance(exc, pyodbc.Error):
        return False
    sqlstate = str(exc.args[0]) if exc.args else ""
    if dialect == "postgresql":
        text = str(exc).lower()
        return sqlstate in POSTGRES_TRANSIENT_SQLSTATES or any(t in text for t in POSTGRES_TRANSIENT_TEXT)
    if sqlstate == "40001":  # SQL Server reports a deadlock victim (1205) with SQLSTATE 40001
        return True
    return bool(sql_server_error_numbers(exc) & SQL_SERVER_TRANSIENT)
