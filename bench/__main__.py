"""`make bench`: run every bench/bench_*.py in its own process (so memory figures are its own).

Each script prints its figures next to a baseline measured in the same run, and its targets.
Pass names to run a subset: `python -m bench producer ingest`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if s.stem.removeprefix("bench_") in argv]
    failed = []
    for script in scripts:
        print(f"\n=== {script.stem.removeprefix('bench_')} ===", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", f"bench.{script.stem}"], cwd=HERE.parent)
        print(f"({script.stem} took {time.monotonic() - started:.0f}s)", flush=True)
        if result.returncode != 0:
            failed.append(script.stem)
    if failed:
        print(f"\nbenchmarks that missed a target or failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
