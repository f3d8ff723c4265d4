"""`make bench`: run every bench/bench_*.py in its own process (so memory figures are its own).

Each script prints its figures next to a baseline measured in the same run, and its targets.
Pass names to run a subset: `python -m bench producer ingest`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    """The benchmark names: bench/bench_<name>.py."""
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def parse_args(argv: list[str]) -> argparse.Namespace:
    names = available()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the benchmarks, each in its own process, and compare each figure with a "
        "baseline measured in the same run and with its target. Exit code 1 when a target is missed.",
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run (default: all): {', '.join(names)}"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.names if name not in names]
    if unknown:
        parser.error(f"no benchmark named {', '.join(map(repr, unknown))}: choose from {', '.join(names)}")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    names = args.names or available()
    failed = []
    for name in names:
        print(f"\n=== {name} ===", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", f"bench.bench_{name}"], cwd=HERE.parent)
        print(f"(bench_{name} took {time.monotonic() - started:.0f}s)", flush=True)
        if result.returncode != 0:
            failed.append(f"bench_{name}")
    if failed:
        print(f"\nbenchmarks that missed a target or failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
