"""The registered ingest Function, called with EventHubEvent lists the way the worker builds them."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from functions.bronze import decode_bronze, decode_jsonl
from functions.ingest import handle_batch
from functions.ingest_core import IngestConfig
from functions.lake import LakeStorage, LocalLake
from functions.landing import BatchNameConflict
from settings import Settings
from tests.fixtures.event_batches import ENQUEUED, good_body, worker_batch

# What file names end with: the first enqueued time, and the embedded hub "weather"'s tag.
NAME_TAIL = "20261122T074320500Z-" + hashlib.sha256(b"/weather").hexdigest()[:8]


@pytest.fixture()
def ingest_function() -> Any:
    """The ingest function as function_app.py registers it."""
    import function_app
    from pipeline.host.indexing import app_functions

    [function] = [f for f in app_functions(function_app.app) if f.get_function_name() == "ingest"]
    return function


@pytest.fixture()
def lake_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    lake = tmp_path / "lake"
    monkeypatch.setenv("PIPELINE_HOME", str(tmp_path))
    monkeypatch.setenv("LOCAL_LAKE_PATH", str(lake))
    monkeypatch.setenv("LAKE_CONNECTION_STRING", "")
    monkeypatch.setenv("LAKE_ACCOUNT_URL", "")
    monkeypatch.setenv("BRONZE_FORMAT", "jsonl")
    return lake


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_binding_is_a_many_cardinality_event_hub_trigger_on_app_settings(ingest_function: Any) -> None:
    [binding] = json.loads(ingest_function.get_function_json())["bindings"]

    assert binding["type"] == "eventHubTrigger"
    assert binding["cardinality"] == "MANY"
    assert binding["dataType"] == "BINARY"
    assert binding["eventHubName"] == "%EVENTHUB_NAME%"
    assert binding["consumerGroup"] == "%EVENTHUB_CONSUMER_GROUP%"
    assert binding["connection"] == "EVENTHUB_CONNECTION"


def test_retry_policy_retries_indefinitely_with_exponential_backoff_from_5_s_to_5_min(
    ingest_function: Any,
) -> None:
    retry = ingest_function.get_settings_dict("retry_policy")

    assert retry == {
        "setting_name": "retry_policy",
        "strategy": "exponential_backoff",
        "max_retry_count": "-1",  # until the storage is back: no checkpoint past an unwritten batch
        "minimum_interval": "00:00:05",
        "maximum_interval": "00:05:00",
    }


def test_function_writes_valid_events_to_bronze_and_bad_ones_to_quarantine(
    ingest_function: Any, lake_env: Path
) -> None:
    bodies = [good_body("a"), b"\x00\xffjunk", good_body("b", windDirection="UP"), good_body("c")]
    events = worker_batch(
        bodies, first_seq=10, partition="3", properties=[{"source": "sim", "n": 1}, {}, {}, {}]
    )

    ingest_function.get_user_function()(events)

    folder = "weather/ingest_date=2026-11-22/hour=07"
    name = f"p3-00000000000000000010-00000000000000000013-{NAME_TAIL}.jsonl"
    assert sorted(files(lake_env)) == [f"bronze/{folder}/{name}", f"quarantine/{folder}/{name}"]
    bronze = decode_bronze((lake_env / "bronze" / folder / name).read_bytes(), "jsonl")
    assert [(r["EventId"], r["SequenceNumber"], r["Body"]) for r in bronze] == [
        ("a", 10, bodies[0]),
        ("c", 13, bodies[3]),
    ]
    assert bronze[0]["Properties"] == {"source": "sim", "n": "1"}
    assert bronze[0]["Offset"] == "5120"
    assert bronze[0]["PartitionId"] == "3"
    assert bronze[0]["EnqueuedTimeUtc"] == "2026-11-22T07:43:20.500Z"
    # Promoted ones (and their x-opt- annotations) are not repeated in SystemProperties.
    assert bronze[0]["SystemProperties"] == {"iothub-connection-device-id": "device-0"}
    quarantine = decode_jsonl((lake_env / "quarantine" / folder / name).read_bytes())
    assert [(r["SequenceNumber"], r["Reasons"], r["BodyEncoding"]) for r in quarantine] == [
        (11, ["utf8"], "base64"),
        (12, ["enum:windDirection"], "utf8"),
    ]


def test_batch_without_partition_context_still_gets_names_that_cannot_collide(
    ingest_function: Any, lake_env: Path
) -> None:
    ingest_function.get_user_function()(worker_batch([good_body("p0-a")], partition=None))
    ingest_function.get_user_function()(worker_batch([good_body("p1-a")], partition=None))

    bronze = [p for p in files(lake_env) if p.startswith("bronze/")]
    assert len(bronze) == 2
    ids = sorted(r["EventId"] for p in bronze for r in decode_bronze(files(lake_env)[p], "jsonl"))
    assert ids == ["p0-a", "p1-a"]


@pytest.mark.parametrize("fmt", ["jsonl.gz", "avro"])
def test_bronze_format_setting_picks_the_encoding(
    ingest_function: Any, lake_env: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    monkeypatch.setenv("BRONZE_FORMAT", fmt)

    ingest_function.get_user_function()(worker_batch([good_body("x"), b"bad"]))

    [bronze] = [p for p in files(lake_env) if p.startswith("bronze/")]
    [quarantine] = [p for p in files(lake_env) if p.startswith("quarantine/")]
    assert bronze.endswith("." + fmt)
    assert quarantine.endswith(".jsonl")
    assert [r["EventId"] for r in decode_bronze(files(lake_env)[bronze], fmt)] == ["x"]


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "avro"])
def test_replayed_batch_leaves_bronze_unchanged(tmp_path: Path, fmt: str) -> None:
    lake = LocalLake(tmp_path)
    bodies = [good_body("r1"), b"{}", good_body("r2")]
    config = IngestConfig(bronze_format=fmt)
    first = handle_batch(worker_batch(bodies), lake, config, clock=lambda: ENQUEUED)
    before = files(tmp_path)

    again = handle_batch(worker_batch(bodies), lake, config, clock=lambda: ENQUEUED + timedelta(hours=1))

    assert files(tmp_path) == before
    assert first.written == {"bronze": True, "quarantine": True}
    assert again.written == {"bronze": False, "quarantine": False}
    assert again.conflicts == {}


def test_a_name_holding_other_events_fails_the_batch_loudly_and_loses_nothing(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    handle_batch(worker_batch([good_body("old")]), lake, IngestConfig())  # e.g. a hub with the same identity
    before = files(tmp_path)
    [taken] = before

    with pytest.raises(BatchNameConflict, match="nothing is lost"):
        handle_batch(worker_batch([good_body("new")]), lake, IngestConfig())

    after = files(tmp_path)
    assert after[taken] == before[taken]  # the other batch's file is left as it was
    [second] = set(after) - set(before)
    assert second.startswith(taken.removesuffix(".jsonl") + "-conflict-")
    assert [r["EventId"] for r in decode_bronze(after[second], "jsonl")] == ["new"]
    # A replay of that batch finds it under its second name: a no-op that succeeds.
    again = handle_batch(worker_batch([good_body("new")]), lake, IngestConfig())
    assert files(tmp_path) == after
    assert again.written == {"bronze": False}
    assert again.conflicts == {"bronze": taken.removeprefix("bronze/")}


def test_the_hub_named_in_the_settings_is_in_the_file_names(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    for name in ("weather", "weather2"):
        config = IngestConfig.from_settings(Settings({"EVENTHUB_NAME": name}))
        handle_batch(worker_batch([good_body(name)]), lake, config)

    assert len(files(tmp_path)) == 2
    assert any(p.endswith(hashlib.sha256(b"/weather2").hexdigest()[:8] + ".jsonl") for p in files(tmp_path))


class _BrokenLake(LakeStorage):
    def create(self, container: str, path: str, data: bytes) -> bool:
        raise OSError("storage unreachable")

    def list(self, container: str, prefix: str = "") -> list[str]:
        return []

    def read(self, container: str, path: str) -> bytes:
        raise FileNotFoundError(path)

    def describe(self) -> str:
        return "broken"


def test_storage_failure_fails_the_invocation_but_bad_events_do_not() -> None:
    with pytest.raises(OSError, match="unreachable"):
        handle_batch(worker_batch([good_body("a")]), _BrokenLake(), IngestConfig())


def test_batch_of_only_bad_events_succeeds_and_writes_only_quarantine(tmp_path: Path) -> None:
    report = handle_batch(worker_batch([b"x", b"[]"]), LocalLake(tmp_path), IngestConfig())

    assert (report.valid, report.quarantined) == (0, 2)
    assert list(files(tmp_path)) == [
        "quarantine/weather/ingest_date=2026-11-22/hour=07/"
        f"p0-00000000000000000000-00000000000000000001-{NAME_TAIL}.jsonl"
    ]


def test_each_batch_logs_one_structured_line_with_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="functions.ingest")

    started = time.perf_counter()
    handle_batch(worker_batch([good_body("a"), b"nope", b"[1]"]), LocalLake(tmp_path), IngestConfig())
    took_ms = (time.perf_counter() - started) * 1000

    [record] = [r for r in caplog.records if r.name == "functions.ingest"]
    logged = json.loads(record.getMessage().split(" ", 1)[1])
    assert logged["valid"] == 1
    assert logged["quarantined"] == 2
    assert logged["quarantined_by_reason"] == {"json": 1, "not_object": 1}
    assert logged["bytes"] == len(good_body("a")) + len(b"nope") + len(b"[1]")
    assert 0 < logged["duration_ms"] <= took_ms  # milliseconds, of this call
    assert record.custom_dimensions == logged  # type: ignore[attr-defined]
