"""`python -m pipeline ingest` as a user runs it: a subprocess on a state folder."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.cli import run_python
from tests.fixtures.local_host import make_settings, produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def run_cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {
        **os.environ,
        "PIPELINE_HOME": str(home),
        "LOCAL_LAKE_PATH": "",
        "LAKE_CONNECTION_STRING": "",
        "LAKE_ACCOUNT_URL": "",
        "BRONZE_FORMAT": "jsonl",
        **env,
    }
    return run_python(environ, "-m", "pipeline", "ingest", *args, timeout=180)


def test_ingest_until_idle_prints_a_summary_of_every_event(tmp_path: Path) -> None:
    sent = produce(make_settings(tmp_path), 400)

    done = run_cli(tmp_path, "--until-idle", "--json")

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    bad = sum(1 for key, raw in sent.items() if key.startswith("bad-") or b'"temperature": 400' in raw)
    assert summary["events"] == 400
    assert (summary["valid"], summary["quarantined"]) == (400 - bad, bad)
    assert any((tmp_path / "lake" / "bronze").rglob("*.jsonl"))


def test_bad_setting_is_one_line_error_before_any_batch(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "--until-idle", BRONZE_FORMAT="parquet")

    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: BRONZE_FORMAT must be jsonl, jsonl.gz or avro, got 'parquet'"
    ]
