"""The local host's waits: host.json's minimum batch and maxWaitTime, and a storage outage of any length.

The host's waits run at LOCAL_HOST_TIME_SCALE of real time (make_settings: 1/1000, or as given):
an outage of "30 minutes" below lasts a fraction of a second, with the same retry schedule.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import typing
from collections.abc import Callable
from pathlib import Path

import azure.functions as func
import pytest

import functions.ingest as ingest_module
from contract.lake_layout import parse_path
from functions.lake import LakeStorage, LocalLake
from localhub import LocalConsumer, LocalEventHub
from pipeline.host import LocalFunctionsHost
from settings import PROJECT_ROOT, Settings
from tests.fixtures.local_host import assert_each_event_landed_once, make_settings, produce

pytestmark = pytest.mark.integration

# The old policy: 8 retries, 5 s doubling to 5 min, then the host checkpointed past the batch.
OLD_RETRY_BOUND_SECONDS = sum(min(300, 5 * 2**n) for n in range(8))  # 915 s, about 15 minutes


def consumer_for(settings: Settings) -> LocalConsumer:
    hub = LocalEventHub(settings.local_hub_path, settings.eventhub_name)
    return LocalConsumer(hub, settings.eventhub_consumer_group)


class OutageLake(LakeStorage):
    """A lake that is down until ``restored()`` says otherwise; it records what each failed write saw.

    On every failed ``create`` it notes the batch's partition and first sequence number (from the
    file name) and that partition's checkpoint at that moment, so a test can tell whether the host
    ever checkpointed past a batch that was not written.
    """

    def __init__(
        self, inner: LakeStorage, restored: Callable[[], bool], checkpoint: Callable[[str], int]
    ) -> None:
        self.inner, self.restored, self.checkpoint = inner, restored, checkpoint
        self.failures: list[tuple[str, int, int]] = []  # (partition, first sequence number, checkpoint)
        self.failed_at: list[float] = []

    def create(self, container: str, path: str, data: bytes) -> bool:
        if not self.restored():
            parsed = parse_path(path)
            assert parsed is not None and parsed.name.partition_id is not None, path
            partition = str(int(parsed.name.partition_id))
            self.failures.append((partition, parsed.name.first_sequence_number, self.checkpoint(partition)))
            self.failed_at.append(time.monotonic())
            raise ConnectionError("storage account unreachable")
        return self.inner.create(container, path, data)

    def list(self, container: str, prefix: str = "") -> list[str]:
        return self.inner.list(container, prefix)

    def read(self, container: str, path: str) -> bytes:
        return self.inner.read(container, path)

    def describe(self) -> str:
        return "outage " + self.inner.describe()


def outage_lake(settings: Settings, seconds: float) -> OutageLake:
    """A lake down for ``seconds`` of real time from its first write."""
    consumer = consumer_for(settings)
    first_write: list[float] = []

    def restored() -> bool:
        first_write[:] = first_write or [time.monotonic()]
        return time.monotonic() - first_write[0] >= seconds

    def checkpoint(partition: str) -> int:
        found = consumer.get_checkpoint(partition)
        return -1 if found is None else found[0]

    return OutageLake(LocalLake(settings.local_lake_path), restored, checkpoint)


def test_an_outage_longer_than_the_old_retry_bound_loses_nothing_and_doubles_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scale = 0.0005
    settings = make_settings(tmp_path, LOCAL_HOST_TIME_SCALE=str(scale))
    sent = produce(settings, 400)
    outage = 2.5 * OLD_RETRY_BOUND_SECONDS  # about 38 minutes, in host time
    lake = outage_lake(settings, outage * scale)
    monkeypatch.setattr(ingest_module, "_lake_for", lambda *_: lake)
    started = time.monotonic()

    summary = LocalFunctionsHost(settings).run_until_idle()

    assert (time.monotonic() - started) / scale >= outage
    first_batch = [f for f in lake.failures if f[:2] == lake.failures[0][:2]]
    assert len(first_batch) > 9  # more attempts than the old policy's 1 + 8 (13 at these waits)
    assert (lake.failed_at[-1] - lake.failed_at[0]) / scale > OLD_RETRY_BOUND_SECONDS
    assert summary.failed_invocations == 0
    # While a batch was failing its partition's checkpoint never reached it.
    assert all(checkpoint < first for _, first, checkpoint in lake.failures)
    assert_each_event_landed_once(sent, LocalLake(settings.local_lake_path))
    assert sum(consumer_for(settings).backlog().values()) == 0


def test_stopping_while_storage_is_down_checkpoints_nothing_and_a_later_run_lands_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)
    sent = produce(settings, 200)
    down = outage_lake(settings, 3600)
    monkeypatch.setattr(ingest_module, "_lake_for", lambda *_: down)
    host, stop = LocalFunctionsHost(settings), threading.Event()
    runner = threading.Thread(target=host.run_until_idle, args=(stop,))
    runner.start()
    deadline = time.monotonic() + 10
    while len(down.failures) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    line = host.status().line()

    stop.set()
    runner.join(5)

    assert not runner.is_alive()
    assert re.search(
        r"waiting for storage: ingest partition \d failing for \d+s, \d+ attempts, next in", line
    )
    assert "ConnectionError: storage account unreachable" in line
    assert sum(consumer_for(settings).backlog().values()) == 200  # nothing checkpointed
    assert LocalLake(settings.local_lake_path).list("bronze") == []
    monkeypatch.setattr(ingest_module, "_lake_for", lambda *_: LocalLake(settings.local_lake_path))
    LocalFunctionsHost(settings).run_until_idle()
    assert_each_event_landed_once(sent, LocalLake(settings.local_lake_path))


def test_a_real_lake_folder_that_cannot_be_created_is_waited_for_until_it_can(tmp_path: Path) -> None:
    # A regular file where the lake folder should be: every write fails with an OSError (the
    # real LocalLake, the real ingest Function), until the file goes away.
    blocker = tmp_path / "lake"
    blocker.write_text("not a folder")
    settings = make_settings(tmp_path, LOCAL_LAKE_PATH=str(blocker))
    sent = produce(settings, 120)
    host = LocalFunctionsHost(settings)
    seen: list[str] = []

    def restore_once_it_waits() -> None:
        deadline = time.monotonic() + 10
        while host.waiting is None and time.monotonic() < deadline:
            time.sleep(0.005)
        seen.append(host.status().line())
        blocker.unlink()

    restorer = threading.Thread(target=restore_once_it_waits)
    restorer.start()
    summary = host.run_until_idle()
    restorer.join()

    assert "waiting for storage: ingest partition" in seen[0]
    assert summary.retries >= 1 and summary.failed_invocations == 0
    assert host.waiting is None
    assert_each_event_landed_once(sent, LocalLake(blocker))


def test_ingest_until_idle_waits_for_storage_and_ctrl_c_stops_it_with_nothing_checkpointed(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "lake"
    blocker.write_text("not a folder")
    environment = {
        "PIPELINE_HOME": str(tmp_path),
        "LOCAL_LAKE_PATH": str(blocker),
        "LOCAL_HOST_TIME_SCALE": "0.01",
    }
    settings = make_settings(tmp_path, **environment)
    produce(settings, 80)
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "ingest", "--until-idle"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **environment},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    waited = ""
    for line in process.stderr:  # the host's log: one line per failed attempt
        waited += line
        if "waiting for storage" in line:
            break
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)

    assert "waiting for storage: ingest partition" in waited
    assert process.returncode == 130, stderr
    assert "stopped after 0 events; the rest stay in the hub, not checkpointed" in stdout
    assert sum(consumer_for(settings).backlog().values()) == 80


# --- host.json: the minimum batch and maxWaitTime -----------------------------------------------------


def batch_app(sizes: list[int]) -> func.FunctionApp:
    """An Event Hubs function that records the size of each batch it gets."""
    app = func.FunctionApp()

    @app.event_hub_message_trigger(
        arg_name="events",
        event_hub_name="%EVENTHUB_NAME%",
        consumer_group="%EVENTHUB_CONSUMER_GROUP%",
        connection="EVENTHUB_CONNECTION",
        cardinality="many",
    )
    def record(events: typing.List[func.EventHubEvent]) -> None:  # noqa: UP006
        sizes.append(len(events))

    return app


def host_json(tmp_path: Path, minimum: int, wait: str, maximum: int = 100) -> Path:
    path = tmp_path / "host.json"
    hubs = {"maxEventBatchSize": maximum, "minEventBatchSize": minimum, "maxWaitTime": wait}
    path.write_text(json.dumps({"version": "2.0", "extensions": {"eventHubs": hubs}}))
    return path


def produce_to_one_partition(settings: Settings, count: int) -> None:
    from azure.eventhub import EventData

    from localhub import LocalProducerClient

    producer = LocalProducerClient(LocalEventHub(settings.local_hub_path, settings.eventhub_name, 4))
    batch = producer.create_batch(partition_key="oslo")
    for n in range(count):
        batch.add(EventData(b'{"n": %d}' % n))
    producer.send_batch(batch)
    producer.close()


def test_a_partition_below_the_minimum_batch_waits_max_wait_time_then_gets_what_is_there(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, LOCAL_HOST_TIME_SCALE="0.1")  # maxWaitTime 5 s -> 0.5 s
    sizes: list[int] = []
    host = LocalFunctionsHost(settings, batch_app(sizes), host_json=host_json(tmp_path, 10, "00:00:05"))
    produce_to_one_partition(settings, 25)

    started = time.monotonic()
    host.run_until_idle()
    full_batch_took = time.monotonic() - started
    produce_to_one_partition(settings, 3)
    started = time.monotonic()
    host.run_until_idle()
    partial_batch_took = time.monotonic() - started

    assert sizes == [25, 3]
    assert full_batch_took < 0.4  # at least the minimum was there: no wait
    assert 0.5 <= partial_batch_took < 2.0


def test_events_arriving_during_the_wait_join_the_held_batch(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, LOCAL_HOST_TIME_SCALE="0.1")
    sizes: list[int] = []
    host = LocalFunctionsHost(settings, batch_app(sizes), host_json=host_json(tmp_path, 10, "00:00:10"))
    produce_to_one_partition(settings, 4)
    stop = threading.Event()
    server = threading.Thread(target=host.serve, args=(stop,))
    server.start()
    try:
        time.sleep(0.3)  # held: 4 < 10, and the 1 s wait is not over
        held_sizes = list(sizes)
        produce_to_one_partition(settings, 7)  # 11 >= 10: delivered at once
        deadline = time.monotonic() + 5
        while not sizes and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        server.join(10)

    assert held_sizes == []
    assert sizes == [11]


def test_a_minimum_batch_does_not_hold_a_function_of_cardinality_one(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, LOCAL_HOST_TIME_SCALE="1")
    calls: list[bytes] = []
    app = func.FunctionApp()

    @app.event_hub_message_trigger(
        arg_name="event",
        event_hub_name="%EVENTHUB_NAME%",
        consumer_group="%EVENTHUB_CONSUMER_GROUP%",
        connection="EVENTHUB_CONNECTION",
        cardinality="one",
    )
    def one(event: func.EventHubEvent) -> None:
        calls.append(event.get_body())

    host = LocalFunctionsHost(settings, app, host_json=host_json(tmp_path, 50, "00:01:00"))
    produce_to_one_partition(settings, 3)
    started = time.monotonic()

    host.run_until_idle()

    assert len(calls) == 3
    assert time.monotonic() - started < 5


# --- the sync timer after a failed firing -----------------------------------------------------------


def sql_watermark(settings: Settings) -> int:
    import sqlite3

    connection = sqlite3.connect(settings.sqlite_path)
    try:
        [(version,)] = connection.execute("SELECT delta_version FROM sync_watermark").fetchall()
    finally:
        connection.close()
    return int(version)


def test_a_failed_sync_firing_leaves_the_watermark_and_the_next_firing_catches_up(tmp_path: Path) -> None:
    from tests.fixtures.gold import Gold, expected, sqlite_rows, window

    settings = make_settings(tmp_path)
    gold = Gold(Path(settings.gold_table_uri))
    gold.write([window("Oslo", 0, 1.5)])  # version 0
    host = LocalFunctionsHost(settings)
    host.fire_timer("sync_gold_to_sql")
    gold.merge([window("Oslo", 0, 2.5), window("Lima", 5, 21.0)])  # version 1
    commit = Path(settings.gold_table_uri) / "_delta_log" / f"{1:020d}.json"
    saved = commit.read_bytes()
    commit.write_bytes(b"{ not a delta commit")  # gold unreadable: the firing fails

    with pytest.raises(Exception, match=r"(?i)json|delta|parse"):
        host.fire_timer("sync_gold_to_sql")
    after_failure = (sql_watermark(settings), sqlite_rows(settings))
    commit.write_bytes(saved)
    gold.merge([window("Rome", 10, 14.0)])  # version 2, while SQL is behind
    host.fire_timer("sync_gold_to_sql")

    assert after_failure == (0, {expected(window("Oslo", 0, 1.5))})
    assert sql_watermark(settings) == 2
    final = [window("Oslo", 0, 2.5), window("Lima", 5, 21.0), window("Rome", 10, 14.0)]
    assert sqlite_rows(settings) == {expected(row) for row in final}
