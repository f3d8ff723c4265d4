"""Producer → embedded hub → local Functions host → the ingest Function → the local lake."""

from __future__ import annotations

import itertools
import threading
import time
import typing
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

import functions.ingest as ingest_module
from functions.bronze import decode_bronze
from functions.lake import LakeStorage, LocalLake
from localhub import LocalConsumer, LocalEventHub
from pipeline.host import LocalFunctionsHost
from tests.fixtures.local_host import assert_each_event_landed_once, lake_files, make_settings, produce

pytestmark = pytest.mark.integration


def test_every_produced_event_lands_once_in_bronze_or_quarantine(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    sent = produce(settings, 2000)

    summary = LocalFunctionsHost(settings).run_until_idle()

    lake = LocalLake(settings.local_lake_path)
    assert_each_event_landed_once(sent, lake)
    assert summary.events == 2000
    assert summary.valid + summary.quarantined == 2000
    assert summary.failed_invocations == 0
    hub = LocalEventHub(settings.local_hub_path, settings.eventhub_name)
    assert LocalConsumer(hub, settings.eventhub_consumer_group).backlog() == {p: 0 for p in hub.partition_ids}
    record = decode_bronze(next(iter(lake_files(lake, "bronze").values())), "jsonl")[0]
    assert record["Properties"]["producer"] == "test"
    assert record["PartitionKey"] in {"oslo", "lima", "pune", "quito"}


def test_redelivered_batches_leave_bronze_byte_identical(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    produce(settings, 800)
    LocalFunctionsHost(settings).run_until_idle()
    lake = LocalLake(settings.local_lake_path)
    before = {c: lake_files(lake, c) for c in ("bronze", "quarantine")}
    # Forget the checkpoints: the host delivers every batch again, with the same boundaries.
    hub = LocalEventHub(settings.local_hub_path, settings.eventhub_name)
    for partition in hub.partition_ids:
        hub.set_checkpoint(settings.eventhub_consumer_group, partition, -1, "-1")

    again = LocalFunctionsHost(settings).run_until_idle()

    assert again.events == 800
    assert {c: lake_files(lake, c) for c in ("bronze", "quarantine")} == before


class FlakyLake(LakeStorage):
    """A storage boundary that fails the chosen ``create`` calls (counted from 1)."""

    def __init__(self, inner: LakeStorage, fail_calls: set[int] | None = None, always: bool = False) -> None:
        self.inner, self.fail_calls, self.always, self.calls = inner, fail_calls or set(), always, 0

    def create(self, container: str, path: str, data: bytes) -> bool:
        self.calls += 1
        if self.always or self.calls in self.fail_calls:
            raise ConnectionError(f"storage unavailable (call {self.calls})")
        return self.inner.create(container, path, data)

    def list(self, container: str, prefix: str = "") -> list[str]:
        return self.inner.list(container, prefix)

    def read(self, container: str, path: str) -> bytes:
        return self.inner.read(container, path)

    def describe(self) -> str:
        return "flaky " + self.inner.describe()


def test_storage_failing_mid_batch_is_retried_to_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(tmp_path)
    sent = produce(settings, 400)
    # Call 2 is the first batch's quarantine file: its bronze file is already written then.
    flaky = FlakyLake(LocalLake(settings.local_lake_path), fail_calls={2, 5})
    monkeypatch.setattr(ingest_module, "_lake_for", lambda *_: flaky)
    host = LocalFunctionsHost(settings)

    summary = host.run_until_idle()

    assert summary.retries == 2
    assert summary.failed_invocations == 0
    assert host.waiting is None
    assert_each_event_landed_once(sent, LocalLake(settings.local_lake_path))


def failing_app(calls: list[float], max_retry_count: str) -> func.FunctionApp:
    """An Event Hubs function that always fails, with a retry policy of ``max_retry_count``."""
    app = func.FunctionApp()

    @app.function_name("always_fails")
    @app.retry(
        strategy="exponential_backoff",
        max_retry_count=max_retry_count,
        minimum_interval="00:00:05",
        maximum_interval="00:05:00",
    )
    @app.event_hub_message_trigger(
        arg_name="events",
        event_hub_name="%EVENTHUB_NAME%",
        consumer_group="%EVENTHUB_CONSUMER_GROUP%",
        connection="EVENTHUB_CONNECTION",
        cardinality="many",
    )
    def always_fails(events: typing.List[func.EventHubEvent]) -> None:  # noqa: UP006
        calls.append(time.monotonic())
        raise ConnectionError("storage unavailable")

    return app


def test_batch_failing_past_a_bounded_policy_is_checkpointed_like_the_real_host(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    produce(settings, 40)
    calls: list[float] = []

    summary = LocalFunctionsHost(settings, failing_app(calls, "3")).run_until_idle()

    assert summary.failed_invocations == summary.invocations == len(summary.events_by_partition) > 1
    assert len(calls) == 4 * summary.invocations  # the first attempt and 3 retries, each batch
    # 5 s, 10 s, 20 s at 1/1000: the waits between the first batch's attempts, in order.
    gaps = [later - earlier for earlier, later in itertools.pairwise(calls[:4])]
    assert all(gap >= wait for gap, wait in zip(gaps, (0.005, 0.010, 0.020), strict=True)), gaps
    hub = LocalEventHub(settings.local_hub_path, settings.eventhub_name)
    assert sum(LocalConsumer(hub, settings.eventhub_consumer_group).backlog().values()) == 0


@pytest.mark.parametrize("fmt", ["jsonl.gz", "avro"])
def test_host_writes_and_reads_back_each_bronze_format(tmp_path: Path, fmt: str) -> None:
    settings = make_settings(tmp_path, BRONZE_FORMAT=fmt)
    sent = produce(settings, 200)

    LocalFunctionsHost(settings).run_until_idle()

    lake = LocalLake(settings.local_lake_path)
    assert all(path.endswith("." + fmt) for path in lake.list("bronze"))
    assert_each_event_landed_once(sent, lake)


def timer_app(calls: list[Any], schedule: str = "%SYNC_SCHEDULE%") -> func.FunctionApp:
    app = func.FunctionApp()
    app.register_functions(ingest_module.bp)

    @app.timer_trigger(arg_name="timer", schedule=schedule)
    def tick(timer: func.TimerRequest) -> str:
        calls.append(timer)
        return "ticked"

    return app


def test_fire_timer_invokes_the_timer_function_with_a_real_timer_request(tmp_path: Path) -> None:
    calls: list[Any] = []
    host = LocalFunctionsHost(make_settings(tmp_path), timer_app(calls))

    assert host.fire_timer() == "ticked"
    assert host.fire_timer("tick", past_due=True) == "ticked"

    assert [type(c).__name__ for c in calls] == ["TimerRequest", "TimerRequest"]
    assert [c.past_due for c in calls] == [False, True]


@pytest.mark.slow
def test_serve_ingests_as_events_arrive_and_fires_timers_on_schedule(tmp_path: Path) -> None:
    calls: list[Any] = []
    settings = make_settings(tmp_path, SYNC_SCHEDULE="* * * * * *")  # every second
    LocalEventHub(settings.local_hub_path, settings.eventhub_name, 4).close()  # created before serving
    host = LocalFunctionsHost(settings, timer_app(calls))
    stop = threading.Event()
    statuses: list[str] = []
    server = threading.Thread(
        target=host.serve, args=(stop,), kwargs={"on_status": lambda s: statuses.append(s.line())}
    )
    server.start()
    try:
        sent = produce(settings, 100)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (host.summary.events < 100 or len(calls) < 2):
            time.sleep(0.1)
    finally:
        stop.set()
        server.join(10)

    assert not server.is_alive()
    assert host.summary.events == 100
    assert len(calls) >= 2
    assert statuses and "events" in statuses[-1]
    assert_each_event_landed_once(sent, LocalLake(settings.local_lake_path))


def test_second_run_until_idle_finds_nothing_new_then_only_the_new_events(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    produce(settings, 80)
    host = LocalFunctionsHost(settings)
    assert host.run_until_idle().events == 80

    assert host.run_until_idle().events == 0
    produce(settings, 40)
    assert host.run_until_idle().events == 40
