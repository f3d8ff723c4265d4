"""Ingest Function throughput: decode + validate + envelope + encode + write, single process.

Feeds 1,000,000 events (2% bad) through the Function's handler (`functions.ingest.handle_batch`)
in batches of host.json's ``maxEventBatchSize``, as real `EventHubEvent` lists with the trigger
metadata the host supplies, writing to a local lake folder. The baseline, measured in the same
run over the same bodies, is `orjson.loads` alone. Then the RSS growth of one 10,000-event batch.

Exit 1 when a target is missed. `python -m bench.bench_ingest [--events N]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psutil
from azure.functions import EventHubEvent, meta
from azure.functions.eventhub import EventHubTriggerConverter

from functions.ingest import IngestConfig, handle_batch
from functions.lake import LocalLake

ROOT = Path(__file__).resolve().parents[1]
TARGET_JSONL_RATE = 200_000
TARGET_JSONL_RATIO = 0.25
TARGET_AVRO_RATE = 100_000
TARGET_RSS_MB = 100
DIRECTIONS = ["N", "NE", "E", "SE", "S", "SW", "W", "NW"]
BAD_BODIES = [
    b"not json",
    b'{"eventId": "x"}',
    b"\xff\xfe\x00",
    b"[1, 2, 3]",
    b'{"eventId": "bad-temp", "deviceId": "d", "location": "Oslo", "eventTime": "2026-11-22T07:00:00Z",'
    b' "temperature": 999, "humidity": 50, "windSpeed": 3, "windDirection": "N", "precipitation": 0,'
    b' "conditions": "Clear"}',
]


class _CollectionBytes:
    """The worker's `collection_bytes` payload shape (a protobuf repeated bytes field)."""

    def __init__(self, data: list[bytes]) -> None:
        self.bytes = data


def make_bodies(count: int, bad_share: float, start: datetime) -> list[bytes]:
    rng = random.Random(7)
    bodies = []
    for i in range(count):
        if rng.random() < bad_share:
            bodies.append(BAD_BODIES[i % len(BAD_BODIES)])
            continue
        event = {
            "eventId": str(uuid.UUID(int=rng.getrandbits(128))),
            "deviceId": f"station-{i % 500:04d}",
            "location": ["Oslo", "Lisbon", "Nairobi", "Lima"][i % 4],
            "eventTime": (start + timedelta(milliseconds=i)).isoformat().replace("+00:00", "Z"),
            "temperature": round(rng.uniform(-20, 35), 2),
            "humidity": round(rng.uniform(10, 100), 1),
            "windSpeed": round(rng.uniform(0, 30), 2),
            "windDirection": DIRECTIONS[i % 8],
            "precipitation": round(rng.uniform(0, 5), 2),
            "conditions": "Partly cloudy",
            "deviceSeq": i,
            "schemaVersion": 1,
        }
        bodies.append(orjson.dumps(event))
    return bodies


def trigger_batch(
    bodies: list[bytes], first_seq: int, start: datetime, partition: str
) -> list[EventHubEvent]:
    """Build a batch the way the Python worker does for a many-cardinality trigger."""
    system, properties, offset = [], [], first_seq * 300
    for index, body in enumerate(bodies):
        when = start + timedelta(milliseconds=first_seq + index)
        system.append(
            {
                "SequenceNumber": first_seq + index,
                "Offset": str(offset),
                "EnqueuedTimeUtc": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                "PartitionKey": None,
            }
        )
        properties.append({"source": "bench"})
        offset += len(body)
    metadata = {
        "SystemPropertiesArray": meta.Datum(json.dumps(system), "json"),
        "PropertiesArray": meta.Datum(json.dumps(properties), "json"),
        "PartitionContext": meta.Datum(
            json.dumps({"PartitionId": partition, "ConsumerGroupName": "ingest", "EventHubPath": "weather"}),
            "json",
        ),
    }
    result = EventHubTriggerConverter.decode(
        meta.Datum(_CollectionBytes(bodies), "collection_bytes"), trigger_metadata=metadata
    )
    return list(result) if isinstance(result, list) else [result]


def timed(work: Callable[[], None]) -> float:
    gc.collect()
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def run_handler(bodies: list[bytes], batch_size: int, fmt: str, lake_root: Path, start: datetime) -> float:
    """Seconds the handler spends on all batches (building the trigger batches is the host's work)."""
    lake = LocalLake(lake_root)
    config = IngestConfig(bronze_format=fmt)
    total = 0.0
    for first in range(0, len(bodies), batch_size):
        events = trigger_batch(bodies[first : first + batch_size], first, start, "0")
        began = time.perf_counter()
        handle_batch(events, lake, config)
        total += time.perf_counter() - began
    return total


def rss_growth_mb(batch_size: int, start: datetime, lake_root: Path) -> float:
    bodies = make_bodies(batch_size, 0.02, start)
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    events = trigger_batch(bodies, 10_000_000, start, "1")
    handle_batch(events, LocalLake(lake_root), IngestConfig(bronze_format="jsonl"))
    after = process.memory_info().rss
    return (after - before) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events per format (default 1,000,000)")
    args = parser.parse_args(argv)
    host = json.loads((ROOT / "host.json").read_text())
    batch_size = int(host["extensions"]["eventHubs"]["maxEventBatchSize"])
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    workdir = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        growth = rss_growth_mb(10_000, start, workdir / "rss")
        print(f"generating {args.events:,} bodies (2% bad), batches of {batch_size:,} ...", flush=True)
        bodies = make_bodies(args.events, 0.02, start)
        loads = orjson.loads

        def baseline() -> None:
            for body in bodies:
                try:  # noqa: SIM105 - the baseline must not pay for a context manager per body
                    loads(body)
                except orjson.JSONDecodeError:
                    pass

        base_rate = args.events / timed(baseline)
        rates = {}
        for fmt in ("jsonl", "jsonl.gz", "avro"):
            seconds = run_handler(bodies, batch_size, fmt, workdir / fmt, start)
            rates[fmt] = args.events / seconds
            shutil.rmtree(workdir / fmt, ignore_errors=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    checks = [
        ("JSON lines", rates["jsonl"] >= TARGET_JSONL_RATE, f"≥ {TARGET_JSONL_RATE:,} ev/s"),
        (
            "JSON lines / baseline",
            rates["jsonl"] >= TARGET_JSONL_RATIO * base_rate,
            f"≥ {TARGET_JSONL_RATIO} × baseline",
        ),
        ("Avro", rates["avro"] >= TARGET_AVRO_RATE, f"≥ {TARGET_AVRO_RATE:,} ev/s"),
        ("RSS growth, 10,000-event batch", growth < TARGET_RSS_MB, f"< {TARGET_RSS_MB} MB"),
    ]
    print(f"baseline orjson.loads:        {base_rate:>12,.0f} ev/s")
    for fmt in ("jsonl", "jsonl.gz", "avro"):
        print(
            f"handler → local, {fmt:<9}:   {rates[fmt]:>12,.0f} ev/s  "
            f"({rates[fmt] / base_rate:.2f} × baseline)"
        )
    print(f"RSS growth, 10,000-event batch: {growth:.1f} MB")
    missed = [name for name, ok, _ in checks if not ok]
    for name, ok, target in checks:
        print(f"  {'ok  ' if ok else 'MISS'} {name}: target {target}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
