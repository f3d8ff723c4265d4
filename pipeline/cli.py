"""`python -m pipeline <command>`: one subcommand per module in pipeline/commands/.

Each command module defines ``register(subparsers)``, which adds its parser and sets as parser
defaults ``handler=<callable(args) -> int>``, ``uses=<the settings it reads>`` (checked before it
starts, see :mod:`pipeline.preflight`), ``java=True`` when it starts Spark, and ``writes=True``
when it writes to the state folder (it then holds the folder's writer lock, see
:mod:`pipeline.statelock`). Failures a user
can cause end in one line and a non-zero exit (:mod:`pipeline.failures`); ``--debug`` or
``PIPELINE_DEBUG=1`` also shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text

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
DEBUG_OPTION = "--debug"
# Redirected output is for copying and grepping: lines never wrap, tables may be this wide.
REDIRECTED_WIDTH = 160


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit code 1."""


class Interrupted(Exception):
    """Ctrl-C ended a command early but cleanly; the message says what stopped where (exit 130)."""


def make_console(stderr: bool = False) -> Console:
    """A console for people on a terminal, and for copy-paste when the output is redirected."""
    console = Console(stderr=stderr)
    if not console.is_terminal:
        # Rich wraps at 80 columns off a terminal, breaking paths in two; never wrap lines there.
        console = Console(stderr=stderr, soft_wrap=True, width=REDIRECTED_WIDTH)
    return console


@contextmanager
def live_line(console: Console, initial: str, transient: bool = False) -> Iterator[Callable[[str], None]]:
    """A status line redrawn in place on a terminal; off a terminal (a log file) it prints nothing."""
    if not console.is_terminal:
        yield lambda text: None
        return
    with Live(Text(initial), console=console, refresh_per_second=4, transient=transient) as live:
        yield lambda text: live.update(Text(text))


def add_home_arguments(parser: argparse.ArgumentParser) -> None:
    """``--home`` / ``--last-demo``: read another state folder than $PIPELINE_HOME (read-only commands)."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--home", type=Path, metavar="FOLDER", help="the state folder to read (default: $PIPELINE_HOME)"
    )
    where.add_argument(
        "--last-demo",
        action="store_true",
        help="the newest demo-* folder under $PIPELINE_HOME, with the demo's embedded settings",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description="Run the weather pipeline locally on embedded stand-ins, or parts of it.",
        epilog="Each command has --help. A failure prints one line; --debug (anywhere on the line) "
        "or PIPELINE_DEBUG=1 also prints its traceback.",
    )
    parser.add_argument(
        DEBUG_OPTION, action="store_true", help="on a failure, also print the traceback (or PIPELINE_DEBUG=1)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"pipeline.commands.{name}")
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pipeline.failures import run_command
    from settings import debug_requested

    arguments = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted anywhere on the line (`pipeline status --debug`), not only before the command.
    debug = DEBUG_OPTION in arguments
    arguments = [a for a in arguments if a != DEBUG_OPTION]
    args = build_parser().parse_args(arguments)
    args.debug = debug or debug_requested()
    return run_command(args, command_line=" ".join(["python -m pipeline", *arguments]))
