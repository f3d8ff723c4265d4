"""`python -m pipeline demo`: the whole pipeline on embedded defaults in a fresh state folder."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from pipeline import history, orchestrate, preflight, report, report_page
from pipeline.cli import Interrupted, UserError, make_console
from pipeline.commands.run import USES as RUN_USES
from pipeline.statelock import state_lock
from settings import PROJECT_ROOT, Settings, load_settings

CHAOS = {"--bad-rate": "0.02", "--duplicate-rate": "0.01", "--late-rate": "0.01"}
# The demo runs on embedded defaults under its own folder: the settings that would point it
# elsewhere are blanked (orchestrate.LOCATION_OVERRIDES), the rest are checked before it starts.
USES = tuple(name for name in RUN_USES if name not in orchestrate.LOCATION_OVERRIDES)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {text!r}")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="Produce 20,000 events with chaos and run them through every stage in a fresh state folder",
        description=(
            "Create a new state folder (demo-<UTC timestamp> under $PIPELINE_HOME, or --home), send "
            "events with 2% bad, 1% duplicates and 1% late into the embedded hub, then ingest until "
            "idle, run the Spark job with availableNow and sync once into SQLite. Ends with a summary "
            "and an HTML report. Nothing existing is deleted or overwritten. Look at it again later "
            "with `python -m pipeline status --last-demo` (or report --last-demo)."
        ),
    )
    parser.add_argument("--events", type=_positive, default=20_000, help="events to produce (default 20000)")
    parser.add_argument("--seed", type=int, default=42, help="producer seed (same seed, same events)")
    parser.add_argument(
        "--home",
        type=Path,
        metavar="FOLDER",
        help="state folder to use instead of a new one; must not exist or be empty",
    )
    parser.set_defaults(handler=handle, uses=USES, java=True)


def check_prerequisites() -> None:
    """Raise UserError with the first missing prerequisite (Java 17, ...) in one sentence."""
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "check_prereqs.py")], capture_output=True, text=True
    )
    if result.returncode != 0:
        problems = [line.removeprefix("error: ") for line in result.stderr.splitlines() if line.strip()]
        raise UserError(problems[0] if problems else "a prerequisite is missing (run `make prereqs`)")


def fresh_home(base: Path, chosen: Path | None) -> Path:
    """A new, empty state folder: never one that already holds something."""
    if chosen is not None:
        home = chosen.expanduser().resolve()
        if home.exists() and (not home.is_dir() or any(home.iterdir())):
            raise UserError(f"{home} already exists and is not empty; the demo only runs in a fresh folder")
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        home = base / f"demo-{stamp}"
        suffix = 1
        while home.exists():
            suffix += 1
            home = base / f"demo-{stamp}-{suffix}"
    home.mkdir(parents=True, exist_ok=True)
    return home


def use_embedded_defaults(home: Path) -> Settings:
    """Point this process (and the stages it runs, which read app settings) at ``home`` only.

    The stages read their settings as the Functions host gives them, from the environment, so the
    demo sets PIPELINE_HOME there and blanks every setting that would send data elsewhere (a real
    Event Hub, ADLS, SQL Server): an empty value means the embedded default.
    """
    os.environ["PIPELINE_HOME"] = str(home)
    for name in orchestrate.LOCATION_OVERRIDES:
        os.environ[name] = ""
    return load_settings()


def produce(settings: Settings, events: int, seed: int) -> None:
    """Send the demo's events into the embedded hub with the producer CLI (it shows its own bar)."""
    command = [sys.executable, "-m", "producer", "--target", "local", "--count", str(events)]
    command += [arg for pair in CHAOS.items() for arg in pair] + ["--seed", str(seed)]
    result = subprocess.run(command, cwd=PROJECT_ROOT, env=dict(os.environ))
    if result.returncode == 130:
        raise Interrupted("the producer stopped before sending every event; nothing else ran")
    if result.returncode != 0:
        raise UserError(f"the producer exited with {result.returncode} (command: {' '.join(command[1:])})")


def summary_table(data: report.ReportData) -> Table:
    table = Table(title="Demo summary")
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = report.summary_rows(data)
    table.add_row("produced", rows[0][1])
    for name, value in rows[1:]:
        table.add_row(name, value)
    return table


def handle(args: argparse.Namespace) -> int:
    base = preflight.settings_for(args).home  # every setting the run uses was checked (USES)
    check_prerequisites()
    console = make_console()
    home = fresh_home(base, args.home)
    console.print(f"[bold]state folder:[/] {home} (new; nothing else is touched)", highlight=False)
    settings = use_embedded_defaults(home)
    with state_lock(home, "python -m pipeline demo"):
        history.record_run(settings, f"python -m pipeline demo --events {args.events} --seed {args.seed}")
        try:
            console.rule(f"producer: {args.events:,} events, 2% bad, 1% duplicates, 1% late")
            produce(settings, args.events, args.seed)

            console.rule("pipeline: ingest → Spark → sync")
            with orchestrate.new_progress(console) as progress:
                result = orchestrate.run_once(settings, progress=progress, on_stopping=progress.console.print)
            console.print(", ".join(f"{stage} {secs:.1f}s" for stage, secs in result.seconds.items()))
        except (KeyboardInterrupt, Interrupted):
            raise Interrupted(
                f"the demo stopped part-way; {home} keeps what it did (`status --home {home}`); "
                "`make demo` starts a new one"
            ) from None

        with console.status("counting every layer and drawing the report…"):
            data = report.collect(settings)
            files = report_page.write_report(settings, data)
    console.print(summary_table(data))
    console.print(f"report: {files.html}\nchart:  {files.png}", highlight=False)
    console.print(
        f"look again later with: .venv/bin/python -m pipeline status --home {home}  (or --last-demo)",
        highlight=False,
    )
    return 0
