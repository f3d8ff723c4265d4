"""Ctrl-C while Spark starts: `run --once` and `spark` stop cleanly, in one line, like continuous `run`.

A terminal's Ctrl-C reaches the whole foreground process group, so each test starts the CLI in its
own group and sends SIGINT to all of it, while Spark starts: a few seconds after the SparkContext
made its block manager folder (in SPARK_LOCAL_DIRS), when the session and the query are still being
set up. There, PySpark's own SIGINT handler used to call into the JVM from inside a JVM call and
end in a py4j traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.statelock import holder
from settings import PROJECT_ROOT
from tests.fixtures.cli import cli_env, pipeline, run_python

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]

# What the JVM itself prints on start-up (not ours to silence).
JVM_BANNER = (
    "WARNING: Using incubator modules",
    "Setting default log level to",
    "To adjust logging level use",
)


def _interrupt_while_spark_starts(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    spark_dirs = home.parent / "spark-local"
    spark_dirs.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        cwd=PROJECT_ROOT,
        env={**cli_env(home), "SPARK_LOCAL_DIRS": str(spark_dirs)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(spark_dirs.glob("blockmgr-*")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "Spark never started"
            time.sleep(0.05)
        time.sleep(3.0)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _assert_one_interrupted_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 130, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "py4j" not in result.stderr.lower()
    # Besides the JVM's banner and the stages' progress bars: the notice, then the one line.
    ours = [
        line
        for line in result.stderr.splitlines()
        if line.strip() and not line.startswith(JVM_BANNER) and "━" not in line
    ]
    notice = "stopping after Spark's current micro-batch (Ctrl-C again quits at once; nothing is lost)"
    assert ours[:-1] in ([], [notice])
    assert notice in result.stdout + result.stderr
    assert ours[-1].startswith("interrupted: ")
    return ours[-1]


def _hub_with_events(home: Path, count: int) -> None:
    produced = run_python(cli_env(home), "-m", "producer", "--count", str(count), "--quiet", timeout=120)
    assert produced.returncode == 0, produced.stderr


def test_ctrl_c_while_spark_starts_in_run_once_stops_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _hub_with_events(home, 500)
    result = _interrupt_while_spark_starts(home, "run", "--once")
    line = _assert_one_interrupted_line(result)
    assert line == (
        "interrupted: Spark stopped after its current micro-batch and the sync did not run: "
        "run again to continue from the checkpoint"
    )
    assert holder(home) is None  # the writer lock went with the process
    status = pipeline(cli_env(home), "status", "--json")
    assert '"bronze": 500' in status.stdout  # ingest had finished before Spark started


def test_ctrl_c_while_spark_starts_in_the_spark_command_stops_cleanly(tmp_path: Path) -> None:
    result = _interrupt_while_spark_starts(tmp_path / "home", "spark", "--available-now")
    line = _assert_one_interrupted_line(result)
    assert line == "interrupted: the Spark job stopped after its current micro-batch: run again to continue"
    assert "stopped: 0 micro-batches" in result.stdout
