"""One writer per state folder, checked with real processes: the second fails at once, naming the first."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.statelock import LOCK_NAME, holder
from settings import PROJECT_ROOT
from tests.fixtures.cli import cli_env, one_error_line, pipeline

pytestmark = pytest.mark.integration


def _start_holder(home: Path) -> subprocess.Popen[str]:
    """`python -m pipeline ingest` (continuous, no Spark): a writer that holds the lock until stopped."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ingest"],
        cwd=PROJECT_ROOT,
        env=cli_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while holder(home) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"the holder never took the lock (exit {proc.returncode}):\n{out}\n{err}")
        time.sleep(0.1)
    return proc


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path: Path) -> None:
    first = _start_holder(tmp_path)
    try:
        started = time.monotonic()
        for command in (["run", "--once"], ["sync"], ["spark", "--available-now"]):
            line = one_error_line(pipeline(cli_env(tmp_path), *command))
            assert line.startswith(
                f"error: {tmp_path} is in use by `python -m pipeline ingest` (pid {first.pid}, since "
            )
            assert line.endswith("wait for it to finish or stop it (Ctrl-C), or use another PIPELINE_HOME")
        assert time.monotonic() - started < 60  # no waiting for the lock: three CLI start-ups
        # Readers are not writers: status works meanwhile and says who is writing.
        status = pipeline(cli_env(tmp_path), "status")
        assert status.returncode == 0, status.stderr
        assert f"being written by `python -m pipeline ingest` (pid {first.pid}" in status.stdout
        assert first.poll() is None  # the holder was not disturbed
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 0
    assert holder(tmp_path) is None  # released on a clean stop
    assert (tmp_path / LOCK_NAME).read_text() == ""


def test_the_lock_of_a_killed_holder_is_taken_over(tmp_path: Path) -> None:
    first = _start_holder(tmp_path)
    first.kill()  # SIGKILL: no clean-up code runs, the lock file still names it
    first.communicate(timeout=30)
    assert str(first.pid) in (tmp_path / LOCK_NAME).read_text()
    result = pipeline(cli_env(tmp_path), "sync")
    assert result.returncode == 0, result.stderr
    assert "sync: gold table does not exist yet" in result.stdout
