"""Names in the SQL target: the one rule for identifiers, and how long each engine keeps them.

Every name the sync creates or reads (``SQL_SCHEMA``, ``SQL_TABLE`` and the names derived from
it, its own tables, views and columns) is a plain identifier: a letter or ``_``, then letters,
digits or ``_``. Such a name never needs escaping and cannot carry SQL; values are always
parameters. How long it may be is the engine's rule:

* PostgreSQL keeps 63 bytes (``NAMEDATALEN`` - 1) and silently cuts longer names, so two long
  names could become one: longer names are refused.
* SQL Server's identifiers (``sysname``) hold 128 characters.
* SQLite has no limit of its own. It is the local stand-in for SQL Server, and a stand-in refuses
  what the real target refuses: SQL Server's 128.

The sync derives names from ``SQL_TABLE`` (:func:`derived_names`); the longest,
``ix_<table>_window_start``, decides how long ``SQL_TABLE`` may be.
"""

from __future__ import annotations

import re

#: The SQL engines the sync writes to, by the name the code uses for each.
SQL_SERVER, POSTGRESQL, SQLITE = "sqlserver", "postgresql", "sqlite"
#: The longest identifier each engine keeps whole (see above).
MAX_IDENTIFIER_LENGTH: dict[str, int] = {SQL_SERVER: 128, POSTGRESQL: 63, SQLITE: 128}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def is_identifier(name: str) -> bool:
    """Whether ``name`` is a plain identifier (of any length)."""
    return _IDENTIFIER.fullmatch(name) is not None


def derived_names(table: str) -> dict[str, str]:
    """The names the sync makes from the table's: its location keys, window index and unique key."""
    return {
        "location": f"{table}_location",
        "window_index": f"ix_{table}_window_start",
        "unique_key": f"uq_{table}_key",
    }


def max_table_length(engine: str) -> int:
    """How long ``SQL_TABLE`` may be in ``engine``: its longest derived name must fit too."""
    longest_extra = max(map(len, derived_names("").values()))
    return MAX_IDENTIFIER_LENGTH[engine] - longest_extra


def identifier_problem(name: str, engine: str, *, max_length: int | None = None) -> str | None:
    """Why ``name`` cannot be an identifier in ``engine``, or None when it can.

    Args:
        name: The identifier.
        engine: ``sqlserver``, ``postgresql`` or ``sqlite``.
        max_length: A shorter limit than the engine's (a table name leaves room for its derived names).
    """
    limit = MAX_IDENTIFIER_LENGTH[engine] if max_length is None else max_length
    if is_identifier(name) and len(name) <= limit:
        return None
    return (
        f"must be a plain SQL identifier (a letter or _, then letters, digits or _; at most {limit} "
        f"characters in {_ENGINE_NAMES[engine]}), got {name!r}"
    )


_ENGINE_NAMES = {SQL_SERVER: "SQL Server", POSTGRESQL: "PostgreSQL", SQLITE: "SQLite, as in SQL Server"}


def engine_of(connection_string: str) -> str | None:
    """The engine an ODBC connection string names by its driver (empty: the local SQLite), or None."""
    if not connection_string.strip():
        return SQLITE
    parts = (p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    driver = {k.strip().lower(): v.strip() for k, v in parts}.get("driver", "").strip("{}").lower()
    if "postgres" in driver:
        return POSTGRESQL
    if "sql server" in driver or "freetds" in driver:
        return SQL_SERVER
    return None
