"""`python -m pipeline sql init | script`: create the SQL tables and views, or print their DDL."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from functions.warehouse import TableNames, ddl_script, dialect_for, warehouse_from_settings
from pipeline import preflight
from pipeline.cli import UserError

DIALECTS = ("sqlserver", "postgresql", "sqlite")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "sql",
        help="Create the SQL tables, watermark and reporting views (idempotent), or print the DDL",
        description=(
            "Manage the SQL target's schema: the summary table, sync_watermark, sync_runs and the views."
        ),
    )
    actions = parser.add_subparsers(dest="sql_action", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init",
        help="Create whatever is missing in the configured SQL target (SQL_CONNECTION or SQLite)",
        description="Run the idempotent DDL against SQL_CONNECTION (empty: $PIPELINE_HOME/warehouse.db).",
    )
    init.set_defaults(handler=handle_init, uses=(*preflight.STATE, *preflight.SQL))
    script = actions.add_parser(
        "script",
        help="Print (or write) the idempotent DDL script for a dialect",
        description=(
            "Print the DDL for SQL_SCHEMA / SQL_TABLE in one dialect, as in sql/<dialect>/schema.sql."
        ),
    )
    script.add_argument("--dialect", choices=DIALECTS, required=True, help="the SQL engine")
    script.add_argument("--out", type=Path, help="write the script to this file instead of printing it")
    script.set_defaults(handler=handle_script, uses=("SQL_SCHEMA", "SQL_TABLE"))


def handle_init(args: argparse.Namespace) -> int:
    settings = preflight.settings_for(args)
    warehouse = warehouse_from_settings(settings)
    warehouse.init_schema()  # ODBC and SQLite failures are one line (pipeline.failures)
    target = (
        settings.sqlite_path if not settings.sql_connection else f"{warehouse.dialect.name} (SQL_CONNECTION)"
    )
    print(f"SQL schema ready in {target}")
    return 0


def handle_script(args: argparse.Namespace) -> int:
    settings = preflight.settings_for(args)
    text = ddl_script(dialect_for(args.dialect, TableNames(settings.sql_schema, settings.sql_table)))
    if args.out is None:
        print(text, end="")
        return 0
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {exc.strerror}") from exc
    print(f"wrote {args.out}")
    return 0
