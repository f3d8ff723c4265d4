"""`pipeline audit` over 1,000,000 events: every layer reconciled, against reading bronze alone.

Builds a real state folder first (untimed): `python -m producer` sends 1,000,000 events (2% bad,
1% duplicates, 1% late; 500 devices over about 33 hours of event time) into the embedded hub,
and `python -m pipeline run --once` ingests them, runs the Spark job and syncs SQL. Then, over the
same files, ``--rounds`` times (the machine is shared and noisy; the best round counts):

* baseline: every bronze file read and parsed with pyarrow's JSON reader alone (no checks);
* the audit: ``pipeline.audit.run_audit`` (hub, bronze, quarantine, silver, gold and SQL read,
  every check run).

Target: the audit within 60 s. Exit 1 when it is missed, or when the audit does not find the run
whole. `python -m bench.bench_audit [--events N] [--rounds R] [--home DIR]` (``--home``: audit an
existing state folder, skipping the setup).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.json as pa_json

from pipeline.audit import run_audit
from pipeline.orchestrate import LOCATION_OVERRIDES
from settings import PROJECT_ROOT, Settings

TARGET_SECONDS = 60.0


def build_state(home: Path, events: int) -> dict[str, float]:
    """Producer and `run --once` into ``home``, as a user runs them; returns their seconds."""
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update({name: "" for name in LOCATION_OVERRIDES})
    env["PIPELINE_HOME"] = str(home)
    start = (datetime.now(UTC) - timedelta(hours=34)).replace(microsecond=0).isoformat()
    steps = {
        "producer": [
            "producer", "--count", str(events), "--seed", "1", "--devices", "500", "--start-time", start,
            "--interval", "60", "--bad-rate", "0.02", "--duplicate-rate", "0.01", "--late-rate", "0.01",
            "--quiet",
        ],
        "run --once": ["pipeline", "run", "--once"],
    }  # fmt: skip
    seconds = {}
    for name, args in steps.items():
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", *args], cwd=PROJECT_ROOT, env=env, check=True, capture_output=True
        )
        seconds[name] = time.monotonic() - started
    return seconds


def read_bronze_with_pyarrow(root: Path) -> int:
    """The baseline: parse every bronze file with pyarrow's JSON reader; returns the records read."""
    rows = 0
    for path in sorted(root.rglob("*.jsonl")):
        if not path.name.startswith(("_", ".")):
            rows += pa_json.read_json(io.BytesIO(path.read_bytes())).num_rows
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to send (default 1,000,000)")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions; the best counts (default 3)")
    parser.add_argument("--home", type=Path, help="audit this existing state folder (no setup)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-audit-") as scratch:
        home = args.home or Path(scratch)
        if args.home is None:
            print(
                f"building the state: {args.events:,} events through producer and run --once ...", flush=True
            )
            for step, secs in build_state(home, args.events).items():
                print(f"  {step}: {secs:.0f} s", flush=True)
        settings = Settings({"PIPELINE_HOME": str(home), **dict.fromkeys(LOCATION_OVERRIDES, "")})
        baseline, audit = [], []
        report = None
        for number in range(1, args.rounds + 1):
            started = time.perf_counter()
            records = read_bronze_with_pyarrow(settings.local_lake_path / "bronze")
            baseline.append(time.perf_counter() - started)
            started = time.perf_counter()
            report = run_audit(settings)
            audit.append(time.perf_counter() - started)
            print(
                f"round {number}/{args.rounds}: baseline {baseline[-1]:.1f} s ({records:,} bronze records), "
                f"audit {audit[-1]:.1f} s; load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    assert report is not None
    summary = report.as_json()
    hub_events = summary["checks"]["hub_bronze"]["counts"].get("hub_events", 0)
    best_base, best_audit = min(baseline), min(audit)
    print(f"best of {args.rounds} rounds, wall-clock seconds (2 shared cores)")
    print(f"baseline, pyarrow JSON over bronze:  {best_base:6.1f} s")
    print(
        f"pipeline audit, every layer:         {best_audit:6.1f} s = {best_audit / best_base:.1f} × baseline,"
        f" "
        f"{hub_events / best_audit:,.0f} hub events/s"
    )
    print(
        f"audit verdict: ok={summary['ok']} lost={summary['lost']} doubled={summary['doubled']} "
        f"sql_mismatches={summary['sql_mismatches']} pending={summary['pending']}"
    )
    checks = [
        (f"audit of {hub_events:,} hub events", best_audit <= TARGET_SECONDS, f"≤ {TARGET_SECONDS:.0f} s"),
        ("the run is whole", bool(summary["ok"]), "ok"),
    ]
    for name, ok, target in checks:
        print(f"  {'ok  ' if ok else 'MISS'} {name}: target {target}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
