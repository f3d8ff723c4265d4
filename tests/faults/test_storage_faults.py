"""The lake fails under the ingest Function: Azurite stopped, the lake folder read-only, the disk full.

Each time the Function's retry policy (indefinite) holds the partition, nothing is checkpointed
that was not written, and once the storage is back every event lands exactly once. The local
host's waits run at ``LOCAL_HOST_TIME_SCALE`` of real time, so an outage of half an hour of host
time passes in seconds with the same retry schedule (5 s doubling to 5 min).
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.storage.blob import BlobServiceClient

import functions.ingest as ingest_module
from functions.lake import BlobLake, LocalLake
from localhub import LocalConsumer, LocalEventHub
from pipeline.audit import run_audit
from pipeline.host import LocalFunctionsHost
from settings import Settings
from tests.fixtures.fault_harness import FaultRow, Pipeline, settle_and_check
from tests.fixtures.servers import AzuriteServer

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]

# The retry policy the ingest Function had before it retried indefinitely: 8 retries, 5 s doubling
# to 5 min, then the host checkpointed past the batch (about 15 minutes).
OLD_RETRY_BOUND_SECONDS = sum(min(300, 5 * 2**n) for n in range(8))


def checkpoints(settings: Settings) -> dict[str, int]:
    with LocalEventHub(settings.local_hub_path, partitions=None) as hub:
        return hub.checkpoints(settings.eventhub_consumer_group)


def nothing_checkpointed_unwritten(settings: Settings) -> dict[str, Any]:
    """The audit's view mid-outage: no checkpointed event missing from the lake (lost), the rest
    pending; returns the hub → bronze counts."""
    counts = run_audit(settings).as_json()["checks"]["hub_bronze"]["counts"]
    assert counts["lost"] == counts["damaged"] == counts["doubled"] == 0, counts
    return counts


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class RecordingBlobLake(BlobLake):
    """The product's Blob adapter, noting when each write failed (a recording wrapper, no fake)."""

    def __init__(self, service: Any) -> None:
        super().__init__(service, where="azurite")
        self.failed_at: list[float] = []

    def create(self, container: str, path: str, data: bytes) -> bool:
        try:
            return super().create(container, path, data)
        except Exception:
            self.failed_at.append(time.monotonic())
            raise


def test_azurite_stopped_longer_than_the_old_retry_bound_during_ingest_loses_nothing(
    tmp_path: Path,
    azurite_on_disk: AzuriteServer,
    spark: Any,
    fault: FaultRow,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fault.name = "storage outage: Azurite stopped > old 15-min bound, restarted"
    scale = 0.002  # 915 s of host time: 1.8 s
    connection = azurite_on_disk.azurite.connection_string
    pipe = Pipeline.create(
        tmp_path / "home", LAKE_CONNECTION_STRING=connection, LOCAL_HOST_TIME_SCALE=str(scale)
    )
    # The SDK's own retries (15 s and more per call) would hide a short outage inside one attempt:
    # the client fails fast here, so the outage reaches the Function's retry policy.
    lake = RecordingBlobLake(BlobServiceClient.from_connection_string(connection, retry_total=0))
    monkeypatch.setattr(ingest_module, "_lake_for", lambda *_: lake)
    pipe.send(200)
    pipe.ingest()  # the first wave lands; its blobs must survive the outage
    pipe.send(200)
    azurite_on_disk.stop()
    host = LocalFunctionsHost(pipe.settings)
    ingesting = threading.Thread(target=host.run_until_idle)
    ingesting.start()
    try:
        wait_until(lambda: bool(lake.failed_at), 30, "the first failed write")
        outage = 1.2 * OLD_RETRY_BOUND_SECONDS * scale
        wait_until(lambda: time.monotonic() - lake.failed_at[0] >= outage, 60, "the outage to last")
        waiting = host.status().line()
        stalled = checkpoints(pipe.settings)
    finally:
        azurite_on_disk.start()
        ingesting.join(120)

    assert not ingesting.is_alive()
    assert "waiting for storage: ingest partition" in waiting
    assert (lake.failed_at[-1] - lake.failed_at[0]) / scale > OLD_RETRY_BOUND_SECONDS
    assert len(lake.failed_at) > 9  # more attempts than the old policy's 1 + 8
    assert host.summary.failed_invocations == 0
    assert checkpoints(pipe.settings) != stalled  # the waiting partitions went on once it was back
    # Bronze is in Azurite; the local Spark job reads the local lake folder (Databricks reads ADLS):
    # copy the containers across, then audit with Azurite as the lake.
    local = LocalLake(pipe.settings.local_lake_path)
    for container in ("bronze", "quarantine"):
        for path in lake.list(container):
            local.create(container, path, lake.read(container, path))
    on_disk = pipe.with_values(LAKE_CONNECTION_STRING="")
    pipe.spark(on_disk)
    pipe.sync(on_disk)
    settle_and_check(pipe, fault)


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[bool]:
    """A tmpfs of ``size`` mounted on ``folder`` for the block (False when mounting is not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True
    )
    try:
        yield mounted.returncode == 0
    finally:
        if mounted.returncode == 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True, capture_output=True)


class FailingLake(LocalLake):
    """Where the machine cannot mount: the local lake failing every write with ``error`` while
    ``failing`` is set (what the folder does when read-only or full)."""

    def __init__(self, root: Path, error: int) -> None:
        super().__init__(root)
        self.error = error
        self.failing = threading.Event()

    def create(self, container: str, path: str, data: bytes) -> bool:
        if self.failing.is_set():
            raise OSError(self.error, os.strerror(self.error), str(self.root / container / path))
        return super().create(container, path, data)


def test_a_lake_folder_made_read_only_during_ingest_is_waited_out(
    tmp_path: Path, spark: Any, fault: FaultRow, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault.name = "storage outage: lake folder read-only, then writable"
    lake_folder = tmp_path / "lake-disk"
    with tmpfs(lake_folder, "64m") as mounted:
        pipe = Pipeline.create(tmp_path / "home", LOCAL_LAKE_PATH=str(lake_folder))
        stand_in = FailingLake(lake_folder, errno.EROFS)
        if not mounted:
            fault.name += " (no mount here: a lake adapter failing with EROFS)"
            monkeypatch.setattr(ingest_module, "_lake_for", lambda *_: stand_in)
        pipe.send(200)
        pipe.ingest()
        pipe.send(200)
        if mounted:
            remount(lake_folder, "ro")
        else:
            stand_in.failing.set()
        host = LocalFunctionsHost(pipe.settings)
        ingesting = threading.Thread(target=host.run_until_idle)
        ingesting.start()
        try:
            wait_until(lambda: host.summary.retries >= 5, 30, "five failed attempts")
            waiting = host.status().line()
            mid_outage = nothing_checkpointed_unwritten(pipe.settings)
        finally:
            if mounted:
                remount(lake_folder, "rw")
            stand_in.failing.clear()
            ingesting.join(60)

        assert not ingesting.is_alive()
        assert "waiting for storage" in waiting and ("Read-only file system" in waiting), waiting
        assert mid_outage["pending"] > 0
        assert host.summary.failed_invocations == 0
        pipe.spark()
        pipe.sync()
        settle_and_check(pipe, fault)


def test_a_full_disk_makes_ingest_wait_and_checkpoint_nothing_it_did_not_write(
    tmp_path: Path, spark: Any, fault: FaultRow, monkeypatch: pytest.MonkeyPatch
) -> None:
    fault.name = "lake disk full (2 MB tmpfs), then space freed"
    lake_folder = tmp_path / "lake-disk"
    with tmpfs(lake_folder, "2m") as mounted:
        pipe = Pipeline.create(tmp_path / "home", LOCAL_LAKE_PATH=str(lake_folder))
        stand_in = FailingLake(lake_folder, errno.ENOSPC)
        filler = lake_folder / "filler"
        if mounted:
            # Leave room for a few small files, not for a partition's batch.
            free = os.statvfs(lake_folder).f_bavail * os.statvfs(lake_folder).f_frsize
            filler.write_bytes(b"\0" * (free - 24 * 1024))
        else:
            fault.name += " (no mount here: a lake adapter failing with ENOSPC)"
            monkeypatch.setattr(ingest_module, "_lake_for", lambda *_: stand_in)
            stand_in.failing.set()
        pipe.send(400)
        host = LocalFunctionsHost(pipe.settings)
        ingesting = threading.Thread(target=host.run_until_idle)
        ingesting.start()
        try:
            wait_until(lambda: host.summary.retries >= 5, 30, "five failed attempts")
            waiting = host.status().line()
            mid_outage = nothing_checkpointed_unwritten(pipe.settings)
            # A write that failed left no file behind, not even a part of one.
            partial = [p.name for p in lake_folder.rglob("_*")]
        finally:
            filler.unlink(missing_ok=True)
            stand_in.failing.clear()
            ingesting.join(60)

        assert not ingesting.is_alive()
        assert "waiting for storage" in waiting and "No space left on device" in waiting, waiting
        assert mid_outage["pending"] > 0 and partial == []
        assert host.summary.failed_invocations == 0
        assert (
            sum(LocalConsumer(LocalEventHub(pipe.settings.local_hub_path), "ingest").backlog().values()) == 0
        )
        pipe.spark()
        pipe.sync()
        settle_and_check(pipe, fault)
