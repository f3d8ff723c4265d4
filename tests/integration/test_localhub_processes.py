"""The embedded hub across processes: producers and consumers at once, resuming from checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from localhub import LocalConsumer, LocalEventHub, partition_for_key
from settings import PROJECT_ROOT

pytestmark = pytest.mark.integration

# A consumer process: reads every partition for a group, checkpointing after each batch, until it
# has seen `want` events (or `stop_after`, to leave work for the next process), then prints what
# it saw as JSON lines of [partition, sequence number, eventId].
CONSUMER = r"""
import json, sys, time
from localhub import LocalConsumer, LocalEventHub
path, want, stop_after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hub = LocalEventHub(path, "weather", 4)
consumer = LocalConsumer(hub, "ingest")
seen = 0
deadline = time.monotonic() + 120
while seen < min(want, stop_after) and time.monotonic() < deadline:
    idle = True
    for pid in hub.partition_ids:
        batch = consumer.receive_batch(pid, max_batch_size=min(300, stop_after - seen))
        if not batch:
            continue
        idle = False
        for event in batch:
            print(json.dumps([pid, event.sequence_number, json.loads(event.body)["eventId"]]))
        consumer.checkpoint(pid, batch[-1].sequence_number, batch[-1].offset)
        seen += len(batch)
        if seen >= stop_after:
            break
    if idle:
        time.sleep(0.02)
"""


def env_for(home: Path) -> dict[str, str]:
    return {**os.environ, "PIPELINE_HOME": str(home), "PYTHONPATH": str(PROJECT_ROOT)}


def producer_cmd(hub: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "producer", "--quiet", "--hub-path", str(hub), *args]


def consumer_cmd(hub: Path, want: int, stop_after: int | None = None) -> list[str]:
    return [sys.executable, "-c", CONSUMER, str(hub), str(want), str(stop_after or want)]


def seen_lines(stdout: str) -> list[tuple[str, int, str]]:
    return [tuple(json.loads(line)) for line in stdout.splitlines() if line.strip()]


def test_a_producer_and_a_consumer_process_at_once_see_every_event_once_in_order(tmp_path: Path) -> None:
    hub_path = tmp_path / "hub.db"
    LocalEventHub(hub_path, "weather", 4).close()
    consumer = subprocess.Popen(
        consumer_cmd(hub_path, 6000),
        cwd=PROJECT_ROOT,
        env=env_for(tmp_path),
        stdout=subprocess.PIPE,
        text=True,
    )
    # Paced, so the consumer is reading while the producer is still writing.
    produced = subprocess.run(
        producer_cmd(hub_path, "--count", "6000", "--rate", "4000", "--seed", "2"),
        cwd=PROJECT_ROOT,
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert produced.returncode == 0, produced.stderr
    out, _ = consumer.communicate(timeout=120)
    assert consumer.returncode == 0
    seen = seen_lines(out)
    assert len(seen) == 6000
    assert len({event_id for _p, _s, event_id in seen}) == 6000
    for pid in ("0", "1", "2", "3"):
        sequence = [s for p, s, _id in seen if p == pid]
        assert sequence == list(range(len(sequence)))
    with LocalEventHub(hub_path) as hub:
        assert LocalConsumer(hub, "ingest").backlog() == {"0": 0, "1": 0, "2": 0, "3": 0}


def test_a_second_consumer_process_resumes_where_the_first_checkpointed(tmp_path: Path) -> None:
    hub_path = tmp_path / "hub.db"
    produced = subprocess.run(
        producer_cmd(hub_path, "--count", "3000", "--seed", "4"),
        cwd=PROJECT_ROOT,
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert produced.returncode == 0, produced.stderr
    first = subprocess.run(
        consumer_cmd(hub_path, 3000, stop_after=1000),
        cwd=PROJECT_ROOT,
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    second = subprocess.run(
        consumer_cmd(hub_path, 2000),
        cwd=PROJECT_ROOT,
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    a, b = seen_lines(first.stdout), seen_lines(second.stdout)
    assert len(a) == 1000
    assert len(b) == 2000
    assert not {x[2] for x in a} & {x[2] for x in b}
    for pid in ("0", "1", "2", "3"):
        sequence = [s for p, s, _id in a + b if p == pid]
        assert sequence == list(range(len(sequence)))


def test_two_producer_processes_at_once_never_share_a_sequence_number(tmp_path: Path) -> None:
    hub_path = tmp_path / "hub.db"
    LocalEventHub(hub_path, "weather", 4).close()
    procs = [
        subprocess.Popen(
            producer_cmd(hub_path, "--count", "4000", "--seed", str(seed), "--rate", "5000"),
            cwd=PROJECT_ROOT,
            env=env_for(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (1, 2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    with LocalEventHub(hub_path) as hub:
        assert hub.count() == 8000
        ids = []
        for pid in hub.partition_ids:
            events = hub.read(pid, -1, 10**6)
            assert [e.sequence_number for e in events] == list(range(len(events)))
            offsets = [int(e.offset) for e in events]
            assert offsets == [sum(len(x.body) for x in events[:i]) for i in range(len(events))]
            ids += [json.loads(e.body)["eventId"] for e in events]
        assert len(set(ids)) == 8000


def test_partitioning_is_the_same_in_a_process_with_another_hash_seed() -> None:
    keys = [f"station-{i}" for i in range(200)] + ["Zürich", ""]
    script = (
        "import json, sys; from localhub import partition_for_key; "
        "print(json.dumps([partition_for_key(k, 4) for k in json.load(sys.stdin)]))"
    )
    other = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(keys),
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(PROJECT_ROOT)},
        timeout=60,
        check=True,
    )
    assert json.loads(other.stdout) == [partition_for_key(k, 4) for k in keys]
    assert len(set(json.loads(other.stdout))) == 4
