"""`python -m pipeline status [--json]`: how many events or rows each layer holds right now."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from pipeline import preflight
from pipeline.cli import add_home_arguments, make_console
from pipeline.layers import LayerCounts, count_layers
from pipeline.statelock import holder


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="Counts per layer (hub, bronze, quarantine, silver, gold, SQL) and the sync watermark",
        description=(
            "Count what each layer under $PIPELINE_HOME holds: events in the embedded hub, bronze and "
            "quarantine records (with quarantine reasons), silver and gold rows, SQL rows and the sync "
            "watermark, and who is writing the folder now. Layers that do not exist yet count as zero."
        ),
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object (keys hub, bronze, quarantine, ...)"
    )
    add_home_arguments(parser)
    parser.set_defaults(handler=handle, uses=USES)


USES = (*preflight.STATE, *preflight.HUB, *preflight.SQL, "SILVER_TABLE_URI", "GOLD_TABLE_URI")


def status_table(counts: LayerCounts, title: str = "Pipeline status") -> Table:
    """A rich table of the layer counts, one row per layer."""
    table = Table(title=title)
    table.add_column("layer")
    table.add_column("count", justify="right")
    table.add_column("detail")
    table.add_row("hub (embedded Event Hub)", f"{counts.hub:,}", f"{counts.hub_backlog:,} not yet ingested")
    table.add_row("bronze records", f"{counts.bronze:,}", f"{counts.bronze_files:,} files")
    reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(counts.quarantine_reasons.items()))
    table.add_row("quarantine records", f"{counts.quarantine:,}", reasons)
    table.add_row("silver rows", f"{counts.silver:,}", "")
    if counts.silver_quarantine:
        table.add_row("silver quarantine rows", f"{counts.silver_quarantine:,}", "rejected by the Spark job")
    version = "no table yet" if counts.gold_version is None else f"Delta version {counts.gold_version}"
    table.add_row("gold rows", f"{counts.gold:,}", version)
    spark = counts.spark
    table.add_row(
        "Spark job writes",
        f"{spark.commits:,}",
        f"silver +{spark.silver_inserted:,}, duplicates skipped {spark.duplicates_skipped:,}, "
        f"quarantined {spark.quarantined:,}, gold windows merged {spark.gold_windows_merged:,} "
        "(Delta operation metrics)",
    )
    table.add_row(
        "SQL rows",
        "?" if counts.sql is None else f"{counts.sql:,}",
        "unreachable" if counts.sql_error else "",
    )
    synced = (
        "unknown"
        if counts.sql_error
        else "never synced"
        if counts.watermark is None
        else f"gold version {counts.watermark}, synced {counts.watermark_synced_at or '?'}"
    )
    table.add_row("sync watermark", "" if counts.watermark is None else str(counts.watermark), synced)
    return table


def handle(args: argparse.Namespace) -> int:
    settings = preflight.settings_for(args)
    counts = count_layers(settings)
    if args.json:
        print(json.dumps(counts.as_json()))
        return 0
    console = make_console()
    console.print(status_table(counts, title=f"Pipeline status ({settings.home})"))
    if counts.sql_error:
        console.print(counts.sql_error, markup=False, highlight=False)
    writer = holder(settings.home) if settings.home.is_dir() else None
    if writer is not None:
        console.print(
            f"being written by `{writer.get('command', '?')}` (pid {writer.get('pid', '?')}, "
            f"since {writer.get('since', '?')})",
            markup=False,
        )
    return 0
