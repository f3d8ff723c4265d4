"""SIGKILL of a stage in the middle of its work, then a restart: nothing lost, nothing doubled.

The kill is placed, not timed: the ingest host is killed while a batch's bronze file is written
and its quarantine file cannot be (the quarantine folder is blocked, so the Function retries), and
the Spark job once its micro-batch has committed silver and before the micro-batch is committed
to the checkpoint. (The sync killed inside its transaction is in test_sql_faults.py.)
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from contract.lake_layout import batch_name
from localhub import LocalEventHub
from settings import PROJECT_ROOT
from tests.fixtures.fault_harness import FaultRow, Pipeline, settle_and_check

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]


def test_ingest_killed_mid_batch_then_restarted_lands_every_event_once(
    tmp_path: Path, spark: Any, fault: FaultRow
) -> None:
    fault.name = "SIGKILL: ingest mid-batch (bronze written, quarantine not), restart"
    pipe = Pipeline.create(tmp_path / "home")
    pipe.send(300, bad_per_kind=3)
    blocker = pipe.settings.local_lake_path / pipe.settings.quarantine_container
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder: every quarantine write fails")
    host = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ingest", "--until-idle"],
        cwd=PROJECT_ROOT,
        env=pipe.environment(LOCAL_HOST_TIME_SCALE="0.01"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert host.stderr is not None
    log = ""
    for line in host.stderr:  # the host logs each failed attempt
        log += line
        if "waiting for storage" in line:
            break
    host.send_signal(signal.SIGKILL)
    host.wait(30)
    with LocalEventHub(pipe.settings.local_hub_path, partitions=None) as hub:
        done = hub.checkpoints(pipe.settings.eventhub_consumer_group)
    container = pipe.settings.local_lake_path / "bronze"
    bronze = [batch_name(p.relative_to(container).as_posix()) for p in container.rglob("*.jsonl")]
    unfinished = [
        n for n in bronze if n is not None and done.get(n.partition_id or "", -1) < n.first_sequence_number
    ]

    assert "waiting for storage" in log, log[-2000:]
    assert host.returncode == -signal.SIGKILL
    assert unfinished, "the kill should leave a batch whose bronze file is written but not checkpointed"
    blocker.unlink()
    summary = pipe.ingest()
    assert summary.failed_invocations == 0
    pipe.spark()
    pipe.sync()
    report = settle_and_check(pipe, fault)
    assert report["checks"]["hub_bronze"]["counts"]["replayed_copies"] == 0  # the replay wrote nothing twice


def test_spark_killed_mid_micro_batch_then_restarted_doubles_nothing(
    tmp_path: Path, spark: Any, fault: FaultRow
) -> None:
    fault.name = "SIGKILL: Spark mid-micro-batch (silver committed, batch not), restart"
    pipe = Pipeline.create(tmp_path / "home")
    pipe.send(400)
    pipe.ingest()
    silver_commit = Path(pipe.settings.silver_table_uri) / "_delta_log" / f"{1:020d}.json"
    batch_committed = Path(pipe.settings.checkpoint_location) / "commits" / "0"
    log = tmp_path / "spark.log"
    with log.open("wb") as out:
        job = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "spark", "--available-now"],
            cwd=PROJECT_ROOT,
            env=pipe.environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 300
    while not silver_commit.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    job.send_signal(signal.SIGKILL)
    job.wait(30)
    killed_mid_batch = silver_commit.exists() and not batch_committed.exists()

    assert job.returncode == -signal.SIGKILL, log.read_text()[-3000:]
    assert killed_mid_batch, "the kill should fall after silver's commit and before the micro-batch's"
    totals = pipe.spark()  # from the checkpoint: micro-batch 0 again, its silver write skipped
    assert totals["batches"] >= 1 and totals["replayed_writes_skipped"] >= 1
    pipe.sync()
    settle_and_check(pipe, fault)
