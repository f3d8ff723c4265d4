"""`python -m pipeline audit [--json]`: prove the run whole, layer by layer (exit 0 only if so)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from pipeline import preflight
from pipeline.audit import AuditReport, Check, run_audit
from pipeline.cli import add_home_arguments, make_console
from pipeline.commands.status import USES

DESCRIPTION = """\
Reconcile every layer with the one before it, over the same settings as the rest of the pipeline
(the state folder, or ADLS and the SQL database on Azure):

  hub -> bronze + quarantine    every event of the embedded hub (partition, sequence number,
                                enqueued time) in exactly one of the two; a replayed batch counts
                                once (skipped on Azure: Event Hubs cannot be listed)
  bronze files whole            every bronze file holds the records it was written with: one
                                cut, truncated or with an unreadable header or block is listed
                                (bronze_incomplete, bronze_unreadable) until `pipeline repair`
                                supersedes it; its missing events count as damaged, not lost
  bronze -> silver              every distinct bronze eventId in exactly one of silver (once) and
                                the silver quarantine
  silver -> gold                per window, event_count, the fixed-point sums (averages, total),
                                minima and maxima recomputed from silver as the Spark job does
                                (compared within a relative 1e-12), no window missing or extra
  gold -> SQL                   every gold row equal to its SQL row (doubles within a relative
                                1e-9), none missing or extra
  per device                    deviceSeq gaps and repeats in silver (reported, not failed on)

Events still on their way (not ingested yet, or in bronze files Spark has not read) count as
pending. Exit code 0 only when nothing is lost, doubled, unexpected, pending or in a damaged file
and SQL equals gold.
"""

_STYLE = {"ok": "green", "failed": "bold red", "warning": "yellow", "skipped": "dim"}
# The counts shown in the table's columns, per check (the rest are in --json).
_SHOWN = {
    "hub_bronze": ("hub_events", "bronze_events", "quarantine_events"),
    "bronze_files": ("files", "repaired_files"),
    "bronze_silver": ("bronze_events", "silver_rows", "silver_quarantine_events"),
    "silver_gold": ("silver_events", "windows", "gold_windows"),
    "gold_sql": ("gold_rows", "sql_rows", "equal"),
    "devices": ("devices", "missing_seq", "repeated_seq"),
}
_PROBLEMS = (
    "damaged_files",
    "damaged",
    "lost",
    "doubled",
    "unexpected",
    "pending",
    "sql_mismatches",
    "mismatched_windows",
    "devices_with_gaps",
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="Reconcile every layer with the one before it: nothing lost, nothing doubled, SQL = gold",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object: ok, lost, doubled, sql_mismatches, damaged_files, checks, ...",
    )
    add_home_arguments(parser)
    parser.set_defaults(
        handler=handle, uses=(*USES, "WINDOW_MINUTES", "BRONZE_STREAM", "SILVER_QUARANTINE_TABLE_URI")
    )


def audit_table(report: AuditReport, title: str) -> Table:
    """One row per check: what it compared, what it found, its status."""
    table = Table(title=title)
    for name in ("check", "compared", "problems", "status"):
        table.add_column(name)
    for check in report.checks:
        compared = ", ".join(f"{n.replace('_', ' ')} {check.counts.get(n, 0):,}" for n in _SHOWN[check.name])
        problems = ", ".join(
            f"{n.replace('_', ' ')} {check.counts[n]:,}" for n in _PROBLEMS if check.counts.get(n)
        )
        status = check.status
        table.add_row(
            check.title,
            check.skipped or compared,
            problems or ("" if check.skipped else "none"),
            f"[{_STYLE[status]}]{status}[/]",
        )
    return table


def _print_details(console: Console, checks: list[Check]) -> None:
    for check in checks:
        for note in check.notes:
            console.print(f"{check.title}: {note}", highlight=False)
        for kind, examples in check.examples.items():
            if examples:  # only problems have examples
                shown = ", ".join(json.dumps(e, default=str) for e in examples[:3])
                more = f" (first {len(examples)} in --json)" if len(examples) > 3 else ""
                console.print(f"{check.title}, {kind.replace('_', ' ')}: {shown}{more}", highlight=False)


def handle(args: argparse.Namespace) -> int:
    settings = preflight.settings_for(args)
    if args.json:
        report = run_audit(settings)
        print(json.dumps(report.as_json(), default=str))
        return 0 if report.ok else 1
    err = Console(stderr=True)
    with err.status("auditing…") as status:
        report = run_audit(settings, on_step=lambda text: status.update(f"auditing: {text}…"))
    console = make_console()
    console.print(audit_table(report, f"Audit of {settings.home} ({report.seconds:.1f} s)"))
    _print_details(console, report.checks)
    summary = report.as_json()
    verdict = "whole" if report.ok else "NOT whole"
    if report.damaged:
        console.print(
            f"{len(report.damaged):,} damaged bronze files: run `python -m pipeline repair`", highlight=False
        )
    console.print(
        f"{verdict}: lost {summary['lost']:,}, doubled {summary['doubled']:,}, unexpected "
        f"{summary['unexpected']:,}, pending {summary['pending']:,}, SQL mismatches "
        f"{summary['sql_mismatches']:,}; devices with deviceSeq gaps {summary['devices_with_gaps']:,}",
        highlight=False,
    )
    return 0 if report.ok else 1
