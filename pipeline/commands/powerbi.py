"""`python -m pipeline powerbi --server S --database D [--out F]`: a .pbids opening Power BI Desktop."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from pipeline.cli import UserError

# Power BI data source file protocols for the two ODBC targets that Power BI can reach.
PROTOCOLS = {"sqlserver": "tds", "postgresql": "postgresql"}
SERVER = re.compile(r"^[A-Za-z0-9_.\-:,\\]{1,255}$")
DATABASE = re.compile(r"^[A-Za-z0-9_\-. ]{1,128}$")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "powerbi",
        help="Write a .pbids file that opens Power BI Desktop on the SQL database (Import mode)",
        description=(
            "Write a Power BI data source file (.pbids). Opening it in Power BI Desktop starts Get Data on "
            "the server and database, in Import mode; pick the dim_date, dim_location and "
            "fact_weather_window views (see docs/sql-and-powerbi.md)."
        ),
    )
    parser.add_argument("--server", required=True, help="e.g. myserver.database.windows.net")
    parser.add_argument("--database", required=True, help="the database holding the views")
    parser.add_argument("--kind", choices=sorted(PROTOCOLS), default="sqlserver", help="default: sqlserver")
    parser.add_argument("--out", type=Path, default=Path("weather.pbids"), help="default: ./weather.pbids")
    parser.set_defaults(handler=handle, uses=())


def pbids(server: str, database: str, kind: str = "sqlserver") -> dict[str, Any]:
    """The .pbids document for one database, Import mode."""
    if not SERVER.fullmatch(server):
        raise UserError(f"--server {server!r} is not a host name (letters, digits, . - : , \\)")
    if not DATABASE.fullmatch(database):
        raise UserError(f"--database {database!r} is not a database name")
    return {
        "version": "0.1",
        "connections": [
            {
                "details": {"protocol": PROTOCOLS[kind], "address": {"server": server, "database": database}},
                "options": {},
                "mode": "Import",
            }
        ],
    }


def handle(args: argparse.Namespace) -> int:
    document = pbids(args.server, args.database, args.kind)
    out: Path = args.out if args.out.suffix == ".pbids" else args.out.with_suffix(".pbids")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {out}: {exc.strerror}") from exc
    print(f"wrote {out}: open it in Power BI Desktop")
    return 0
