"""`python -m pipeline demo`: the main job, end to end, in a fresh state folder."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from pipeline.orchestrate import LOCATION_OVERRIDES
from tests.fixtures.cli import run_python

pytestmark = [pytest.mark.e2e]


def _demo(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_python(env, "-m", "pipeline", "demo", *args, timeout=400)


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update({name: "" for name in LOCATION_OVERRIDES})
    env.update(PIPELINE_HOME=str(home), COLUMNS="160")
    return env


def test_demo_without_java_says_so_in_one_sentence_and_fails(tmp_path: Path) -> None:
    env = _env(tmp_path)
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    env["PATH"] = str(empty_bin)  # no java, no node
    result = _demo(env)
    assert result.returncode == 1
    assert result.stderr.startswith("error: Java 17 is needed")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin"]  # nothing created


def test_demo_refuses_a_state_folder_that_holds_something(tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "precious.txt").write_text("keep me")
    result = _demo(_env(tmp_path), "--home", str(taken))
    assert result.returncode == 1
    assert "not empty" in result.stderr
    assert (taken / "precious.txt").read_text() == "keep me"
    assert sorted(p.name for p in taken.iterdir()) == ["precious.txt"]


@pytest.mark.slow
@pytest.mark.spark
@pytest.mark.integration
def test_demo_runs_every_stage_in_a_new_folder_and_writes_the_report(tmp_path: Path) -> None:
    existing = tmp_path / "demo-older"
    existing.mkdir()
    (existing / "keep.txt").write_text("x")
    result = _demo(_env(tmp_path), "--events", "1500")
    assert result.returncode == 0, result.stderr[-3000:]
    (home,) = [p for p in tmp_path.iterdir() if p.name.startswith("demo-") and p != existing]
    assert (existing / "keep.txt").read_text() == "x"
    for row in ("produced", "quarantined (ingest)", "duplicates skipped by the Spark job", "silver rows",
                "gold windows", "SQL rows", "freshness p50", "freshness p95"):  # fmt: skip
        assert row in result.stdout
    assert str(home / "reports" / "report.html") in result.stdout
    assert (home / "reports" / "gold_temperature.png").stat().st_size > 0
    status = run_python(_env(home), "-m", "pipeline", "status", "--json", timeout=120)
    counts = json.loads(status.stdout)
    assert counts["hub"] == 1500
    assert counts["bronze"] + counts["quarantine"] == 1500  # every produced event landed somewhere
    assert counts["quarantine"] > 0
    assert 0 < counts["silver"] <= counts["bronze"]
    # The Spark job's own figures (Delta's operation metrics) add up to what the tables hold.
    spark = counts["spark"]
    assert spark["silver_inserted"] == counts["silver"]
    assert (
        spark["silver_inserted"] + spark["duplicates_skipped"] + counts["silver_quarantine"]
        == counts["bronze"]
    )
    assert spark["gold_inserted"] == counts["gold"]
    assert counts["gold"] == counts["sql"] > 0


def test_run_without_java_says_so_in_one_sentence_and_fails(tmp_path: Path) -> None:
    env = _env(tmp_path)
    (tmp_path / "bin").mkdir()
    env["PATH"] = str(tmp_path / "bin")
    result = run_python(env, "-m", "pipeline", "run", "--once", timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: Java 17 is needed for local Spark: install a JDK 17 and put `java` on PATH"
    )
