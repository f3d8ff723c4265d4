"""`python -m pipeline report`: the HTML report (and PNG chart) over the current local state."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from pipeline.report import write_report
from settings import load_settings


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="Write the HTML report with charts (and a PNG of the main chart) over the current state",
        description=(
            "Read every layer under $PIPELINE_HOME and write reports/report.html (summary, gold "
            "temperature per location, events per minute per stage, quarantine reasons; charts "
            "inline) and reports/gold_temperature.png. Existing report files there are replaced."
        ),
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    settings = load_settings()
    console = Console()
    with console.status("reading the layers and drawing the charts…"):
        files = write_report(settings)
    console.print(f"report: {files.html}\nchart:  {files.png}")
    return 0
