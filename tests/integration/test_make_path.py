"""`make install` lets the venv's python run the project's modules from any folder (`make path`).

Checked on a throwaway venv: the shared one must not get a .pth pointing at one worktree.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from settings import PROJECT_ROOT

pytestmark = pytest.mark.integration


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_path_lets_the_venv_run_the_project_from_any_folder(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    made = subprocess.run(
        ["make", "--no-print-directory", "-C", str(PROJECT_ROOT), "path", f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    (pth,) = venv.glob("lib/python*/site-packages/weather-pipeline.pth")
    assert pth.read_text() == f"{PROJECT_ROOT}\n"

    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    python = str(venv / "bin" / "python")
    imported = subprocess.run(
        [python, "-c", "import settings, pipeline, producer; print(settings.PROJECT_ROOT)"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert imported.stdout.strip() == str(PROJECT_ROOT), imported.stderr
    # `python -m` finds a module through the .pth too (bench's entry point needs no third-party package).
    bench = subprocess.run(
        [python, "-m", "bench", "--help"], cwd=elsewhere, capture_output=True, text=True, timeout=60
    )
    assert bench.returncode == 0, bench.stderr
    assert "usage: python -m bench" in bench.stdout
