"""Events delivered again: the whole hub replayed from the start, and two ingest hosts on one group."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from localhub import LocalConsumer, LocalEventHub
from pipeline.host import LocalFunctionsHost
from settings import PROJECT_ROOT
from tests.fixtures.fault_harness import FaultRow, Pipeline, settle_and_check

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]


def snapshot(pipe: Pipeline) -> dict[str, Any]:
    """Everything a stage could change: lake files (bytes), Delta versions, SQL tables."""
    lake = pipe.settings.local_lake_path
    files = {
        str(p.relative_to(lake)): p.read_bytes() for p in sorted((lake / "bronze").rglob("*")) if p.is_file()
    }
    files |= {
        str(p.relative_to(lake)): p.read_bytes()
        for p in sorted((lake / "quarantine").rglob("*"))
        if p.is_file()
    }
    settings = pipe.settings
    versions = {
        uri: DeltaTable(uri).version()
        for uri in (settings.silver_table_uri, settings.silver_quarantine_table_uri, settings.gold_table_uri)
    }
    with sqlite3.connect(settings.sqlite_path) as con:
        sql = {
            table: sorted(map(repr, con.execute(f"SELECT * FROM {table}").fetchall()))
            for table in ("weather_summary", "sync_watermark", "sync_runs")
        }
    return {"files": files, "versions": versions, "sql": sql}


def backlog(pipe: Pipeline) -> int:
    with LocalEventHub(pipe.settings.local_hub_path, partitions=None) as hub:
        return sum(LocalConsumer(hub, pipe.settings.eventhub_consumer_group).backlog().values())


def test_the_whole_hub_replayed_from_the_start_changes_no_layer(
    tmp_path: Path, spark: Any, fault: FaultRow
) -> None:
    fault.name = "whole hub replayed from the start (checkpoints reset)"
    pipe = Pipeline.create(tmp_path / "home")
    pipe.send(400)
    pipe.run_once()
    before = snapshot(pipe)
    # The ingest group's checkpoints are gone (as when its checkpoint store is wiped): the host
    # starts every partition again from its first event.
    with sqlite3.connect(pipe.settings.local_hub_path) as hub:
        deleted = hub.execute(
            "DELETE FROM checkpoints WHERE consumer_group = ?", (pipe.settings.eventhub_consumer_group,)
        ).rowcount
    assert deleted == 4 and backlog(pipe) == pipe.corpus.bodies_sent

    replayed = pipe.ingest()
    spark_totals = pipe.spark()
    synced = pipe.sync()

    assert replayed.events == pipe.corpus.bodies_sent and replayed.failed_invocations == 0
    assert backlog(pipe) == 0
    assert spark_totals["batches"] == 0  # no new bronze file for the stream
    assert synced["status"] == "up_to_date"
    assert snapshot(pipe) == before
    settle_and_check(pipe, fault)


def test_two_ingest_hosts_at_once_on_one_consumer_group_double_nothing(
    tmp_path: Path, spark: Any, fault: FaultRow
) -> None:
    fault.name = "two ingest hosts at once on one consumer group"
    pipe = Pipeline.create(tmp_path / "home")
    pipe.send(150)  # there before the hosts start: both take the same first batches
    # One host is `pipeline ingest` (holding the folder's writer lock), the other the same local
    # host in this process, as a second Functions instance would run beside it.
    log = tmp_path / "host.log"
    with log.open("wb") as out:
        cli_host = subprocess.Popen(
            [sys.executable, "-m", "pipeline", "ingest"],
            cwd=PROJECT_ROOT,
            env=pipe.environment(LOCAL_HOST_TIME_SCALE="0.01"),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    stop = threading.Event()
    in_process = LocalFunctionsHost(pipe.with_values(LOCAL_HOST_TIME_SCALE="0.01"))
    serving = threading.Thread(target=in_process.serve, args=(stop,))
    serving.start()
    try:
        for _ in range(3):  # more while both run: their batches need not line up any more
            time.sleep(1.0)
            pipe.send(100)
        deadline = time.monotonic() + 120
        while backlog(pipe) and time.monotonic() < deadline:
            assert cli_host.poll() is None, log.read_text()[-2000:]
            time.sleep(0.2)
        assert backlog(pipe) == 0
    finally:
        stop.set()
        if cli_host.poll() is None:
            cli_host.send_signal(signal.SIGINT)
        code = cli_host.wait(60)
        serving.join(60)
    assert code == 0, log.read_text()[-2000:]
    assert in_process.summary.events > 0  # both hosts took batches

    pipe.spark()
    pipe.sync()

    report = settle_and_check(pipe, fault)
    assert report["checks"]["hub_bronze"]["counts"]["hub_events"] == pipe.corpus.bodies_sent
