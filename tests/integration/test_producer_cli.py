"""`python -m producer` as users run it: help, errors, the default hub, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from localhub import LocalEventHub
from settings import PROJECT_ROOT
from tests.fixtures.cli import run_python

pytestmark = pytest.mark.integration


def run_producer(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_python({**os.environ, "PIPELINE_HOME": str(home), **env}, "-m", "producer", *args, timeout=120)


def test_help_describes_every_option(tmp_path: Path) -> None:
    result = run_producer(tmp_path, "--help")
    assert result.returncode == 0
    for option in (
        "--count",
        "--duration",
        "--rate",
        "--seed",
        "--start-time",
        "--bad-rate",
        "--duplicate-rate",
    ):
        assert option in result.stdout
    for option in ("--late-rate", "--max-lateness", "--from-file", "--target"):
        assert option in result.stdout


def test_bad_argument_is_one_clear_line_and_exit_code_2(tmp_path: Path) -> None:
    result = run_producer(tmp_path, "--late-rate", "two")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "python -m producer: error: argument --late-rate: expected a number between 0 and 1, got 'two'"
    )
    assert "Traceback" not in result.stderr


def test_eventhub_target_without_settings_says_which_to_set(tmp_path: Path) -> None:
    result = run_producer(
        tmp_path,
        "--target",
        "eventhub",
        EVENTHUB_CONNECTION="",
        EVENTHUB_CONNECTION__fullyQualifiedNamespace="",
    )
    assert result.returncode == 2
    assert "EVENTHUB_CONNECTION" in result.stderr
    assert "Traceback" not in result.stderr


def test_default_target_is_the_embedded_hub_under_the_state_folder(tmp_path: Path) -> None:
    result = run_producer(
        tmp_path, "--count", "1500", "--bad-rate", "0.1", "--quiet", LOCAL_HUB_PARTITIONS="3"
    )
    assert result.returncode == 0, result.stderr
    assert "1,500 events" in result.stdout
    with LocalEventHub(tmp_path / "hub.db") as hub:
        assert hub.partition_ids == ["0", "1", "2"]
        assert hub.count() == 1500


def _holds_events(path: Path, at_least: int) -> bool:
    if not path.exists():
        return False
    with LocalEventHub(path) as hub:
        return hub.count() >= at_least


def test_ctrl_c_flushes_and_reports_what_was_sent(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "producer", "--duration", "60", "--rate", "400", "--quiet"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "PIPELINE_HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Interrupt only once it is really sending (start-up time varies with the machine's load).
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _holds_events(tmp_path / "hub.db", 200):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in out
    with LocalEventHub(tmp_path / "hub.db") as hub:
        count = hub.count()
    assert count >= 200
    assert f"{count:,} events" in out
