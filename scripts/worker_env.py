"""Create the environment that runs the real Azure Functions Python worker library in the tests.

`make install` runs this. The worker library (``azure-functions-runtime``) needs Python 3.13 or
newer, so the environment is a venv of its own (``.venv-worker``, git-ignored) with the app's
``requirements.txt`` and the worker (``requirements-worker.txt``); the conformance test
(tests/integration/test_worker_conformance.py) drives the app through it in a subprocess.

Without ``--required`` a machine that has no Python 3.13+ gets a one-line note and exit 0 (the
demo does not need the worker); with it (CI) that is an error. Either way the conformance test
then fails, saying how to build the environment.

Usage: python scripts/worker_env.py [--venv .venv-worker] [--python PATH] [--required]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MINIMUM = (3, 13)


def _version(python: str) -> tuple[int, int] | None:
    """The interpreter's (major, minor), or None when it does not run (e.g. a pyenv shim)."""
    try:
        done = subprocess.run(
            [python, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    major, minor = done.stdout.split()
    return int(major), int(minor)


def candidates() -> list[str]:
    """Interpreters to try, in order: on PATH, then pyenv's versions, then the usual prefixes."""
    found = [shutil.which(f"python3.{minor}") for minor in range(20, MINIMUM[1] - 1, -1)]
    pyenv_root = Path(os.path.expanduser("~/.pyenv"))
    if shutil.which("pyenv"):
        done = subprocess.run(["pyenv", "root"], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip():
            pyenv_root = Path(done.stdout.strip())
    found += sorted(glob.glob(str(pyenv_root / "versions" / "3.*" / "bin" / "python3")), reverse=True)
    found += [f"{prefix}/bin/python3.{m}" for prefix in ("/usr/local", "/usr") for m in (14, 13)]
    return [c for c in dict.fromkeys(found) if c and Path(c).exists()]


def find_python(explicit: str | None) -> str | None:
    for python in [explicit] if explicit else candidates():
        version = _version(python)
        if version is not None and version >= MINIMUM:
            return python
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=str(ROOT / ".venv-worker"))
    parser.add_argument("--python", help="a Python >= 3.13 to build it with (default: search)")
    parser.add_argument("--required", action="store_true", help="fail when no Python >= 3.13 is found")
    args = parser.parse_args()
    venv = Path(args.venv)
    python = find_python(args.python)
    if python is None:
        where = args.python or "on PATH, under pyenv or /usr(/local)"
        note = (
            f"no Python >= {MINIMUM[0]}.{MINIMUM[1]} found ({where}): the Functions worker conformance "
            "test needs one (azure-functions-runtime); install it, or pass WORKER_PYTHON=/path/to/python3.13"
        )
        print(f"{'error' if args.required else 'note'}: {note}", file=sys.stderr)
        return 1 if args.required else 0
    started = time.monotonic()
    if not (venv / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-r", str(ROOT / "requirements-worker.txt")], check=True, cwd=ROOT)
    (venv / ".installed").touch()
    print(f"worker environment ready: {venv} ({python}, {time.monotonic() - started:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
