"""Sequence numbers that start again are new events, not replays: the two user scenarios, by CLI.

1. The embedded hub's file is deleted (as an Event Hubs hub is deleted and recreated): its
   sequence numbers start again at 0, and a new event with number 0 must still reach silver.
2. A second event hub (``EVENTHUB_NAME=weather2``) writes to the same lake: its event 0 too.
3. An exact replay (the consumer group's checkpoint moved back) still writes nothing.

After each, `pipeline audit` proves the state whole. Events are the test's own bodies, sent with
`python -m producer --from-file`.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from localhub import LocalEventHub
from pipeline.orchestrate import LOCATION_OVERRIDES
from tests.fixtures.cli import run_python

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.spark, pytest.mark.integration]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update({name: "" for name in LOCATION_OVERRIDES})
    env.update(PIPELINE_HOME=str(home), **extra)
    return env


def _ok(env: dict[str, str], *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    result = run_python(env, "-m", *args, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


def _event(n: int) -> dict[str, Any]:
    return {
        "eventId": str(uuid.uuid4()),
        "deviceId": "station-0001",
        "location": "Oslo",
        "eventTime": (datetime.now(UTC) - timedelta(minutes=10)).isoformat(timespec="milliseconds")[:-6]
        + "Z",
        "temperature": 1.5 + n % 20,
        "humidity": 80.0,
        "windSpeed": 3.5,
        "windDirection": "N",
        "precipitation": 0.0,
        "conditions": "Clear",
    }


def _send(env: dict[str, str], home: Path, events: list[dict[str, Any]]) -> None:
    path = home / f"send-{uuid.uuid4().hex[:8]}.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    _ok(env, "producer", "--target", "local", "--from-file", str(path), "--quiet")


def _silver_ids(home: Path) -> set[str]:
    table = DeltaTable(str(home / "lake" / "silver" / "weather")).to_pyarrow_table(columns=["event_id"])
    return set(table.column("event_id").to_pylist())


def _lake(home: Path) -> dict[str, bytes]:
    root = home / "lake"
    return {
        str(p.relative_to(root)): p.read_bytes()
        for container in ("bronze", "quarantine")
        for p in (root / container).rglob("*")
        if p.is_file()
    }


def _audit(env: dict[str, str]) -> dict[str, Any]:
    result = run_python(env, "-m", "pipeline", "audit", "--json", timeout=120)
    report: dict[str, Any] = json.loads(result.stdout)
    assert result.returncode == 0, json.dumps(report, indent=1)[-3000:]
    return report


def test_new_events_with_reused_sequence_numbers_land_and_a_replay_still_writes_nothing(
    tmp_path: Path,
) -> None:
    home = tmp_path
    env = _env(home)
    first = [_event(n) for n in range(20)]
    _send(env, home, first)
    _ok(env, "pipeline", "run", "--once")
    assert _silver_ids(home) == {e["eventId"] for e in first}

    # 1. The hub is recreated: its sequence numbers start again at 0.
    for suffix in ("", "-wal", "-shm"):
        (home / f"hub.db{suffix}").unlink(missing_ok=True)
    after_recreate = _event(100)
    _send(env, home, [after_recreate])
    _ok(env, "pipeline", "run", "--once")

    assert after_recreate["eventId"] in _silver_ids(home)
    report = _audit(env)
    hub = report["checks"]["hub_bronze"]["counts"]
    assert (hub["hub_events"], hub["lost"], hub["doubled"]) == (1, 0, 0)
    # Files named for this hub hold 21 events: the new one, and 20 from before it was recreated.
    assert (hub["bronze_events"], hub["not_in_hub"]) == (21, 20)

    # 2. A second hub writes into the same lake; its sequence numbers start at 0 too.
    env2 = _env(home, EVENTHUB_NAME="weather2")
    second_hub = _event(200)
    _send(env2, home, [second_hub])
    _ok(env2, "pipeline", "run", "--once")

    assert _silver_ids(home) == {e["eventId"] for e in [*first, after_recreate, second_hub]}
    report = _audit(env2)
    assert report["checks"]["hub_bronze"]["counts"]["hub_events"] == 1
    assert report["checks"]["bronze_silver"]["counts"]["bronze_events"] == 22

    # 3. An exact replay: the ingest group's checkpoints go back to the start.
    before = _lake(home)
    with LocalEventHub(home / "hub.db", "weather2", partitions=None) as hub2:
        for partition in hub2.partition_ids:
            hub2.set_checkpoint("ingest", partition, -1, "-1")
    replay = json.loads(_ok(env2, "pipeline", "ingest", "--until-idle", "--json").stdout)

    assert replay["events"] == 1 and replay["failed_invocations"] == 0 and replay["retries"] == 0
    assert _lake(home) == before  # no file written, none changed
    assert not [name for name in before if "-conflict-" in name]
