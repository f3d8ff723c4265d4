"""The bundle's artifact: ``pip wheel`` builds the Databricks wheel from contract/ and spark/ alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from settings import PROJECT_ROOT as ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_the_bundle_artifact_build_makes_a_wheel_with_the_job_code_and_entry_points(tmp_path: Path) -> None:
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("contract", "spark"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "dist"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(source), "-q"]
    subprocess.run(command, check=True, cwd=tmp_path, capture_output=True, timeout=300)
    (wheel,) = out.glob("weather_pipeline-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert {
        "spark/job.py",
        "spark/reprocess.py",
        "spark/transforms.py",
        "spark/delta_tables.py",
        "spark/bronze_source.py",
        "contract/event.v1.schema.json",
        "contract/bronze.avsc",
    } <= names
    # Only what runs on Databricks: no local session, test helpers or other top-level modules.
    assert {n.split("/")[0] for n in names if not n.startswith("weather_pipeline-")} == {"contract", "spark"}
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for name, target in scripts.items():
        assert f"{name} = {target}" in entry_points
