"""`python -m pipeline report`: the HTML report (and PNG chart) over the current local state."""

from __future__ import annotations

import argparse
from typing import Any

from pipeline import preflight
from pipeline.cli import add_home_arguments, make_console
from pipeline.commands import status
from pipeline.report_page import write_report


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="Write the HTML report with charts (and a PNG of the main chart) over the current state",
        description=(
            "Read every layer under $PIPELINE_HOME (or --home) and write reports/report.html there: "
            "health checks, the summary of `status`, freshness over time and its distribution, the lag "
            "of each stage over time (lag.jsonl, from continuous `run`), the event flow per stage, "
            "quarantine reasons with an example record each, duplicates and late events, the sync "
            "history, gold temperatures, and the settings and commands that wrote the folder (secrets "
            "masked); charts inline, one file. Also reports/gold_temperature.png. Existing report "
            "files there are replaced."
        ),
    )
    add_home_arguments(parser)
    parser.set_defaults(handler=handle, uses=status.USES)


def handle(args: argparse.Namespace) -> int:
    settings = preflight.settings_for(args)
    console = make_console()
    with console.status("reading the layers and drawing the charts…"):
        files = write_report(settings)
    console.print(f"report: {files.html}\nchart:  {files.png}")
    return 0
