"""`python -m pipeline <command>`: one subcommand per module in pipeline/commands/.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``handler=<callable(args) -> int>`` as the parser default.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from settings import SettingsError

# In --help order: the main job first, then each stage, then the tools around them.
COMMANDS = [
    "demo",
    "run",
    "status",
    "audit",
    "repair",
    "report",
    "ingest",
    "spark",
    "reprocess",
    "sync",
    "sql",
    "powerbi",
]


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit code 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Run the weather pipeline locally on embedded stand-ins, or parts of it.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"pipeline.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (UserError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
