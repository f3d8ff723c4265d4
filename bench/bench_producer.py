"""Producer -> embedded hub: 1,000,000 events, events/s and RSS growth, next to same-run baselines.

Baselines, measured in the same run on the same machine:
* raw SQLite: the same kind of rows (bodies from the generator, pre-built) inserted with
  ``executemany`` into a bare table in the same WAL mode - the storage floor;
* generator only: building the event bodies without sending them.

Targets (issue 2): >= 50,000 events/s sustained for 1,000,000 events, RSS growth < 100 MB.
Exit code 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

from localhub import LocalEventHub, LocalProducerClient
from producer.cli import parse_args, run
from producer.generate import EventGenerator, Plan

TARGET_EVENTS_PER_SECOND = 50_000
TARGET_RSS_GROWTH_MB = 100
START = datetime(2026, 11, 1, tzinfo=UTC)


class PeakRss:
    """Samples this process's RSS in a background thread; ``peak`` is the highest seen."""

    def __init__(self, interval: float = 0.05) -> None:
        self.process = psutil.Process()
        self.interval = interval
        self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def producer_to_hub(events: int, folder: Path) -> tuple[float, float, float]:
    """Run the real producer path (generator, batching, LocalProducerClient).

    Returns:
        Events per wall-clock second, events per second of this process's CPU time (what one
        free core would give), and RSS growth in MB.
    """
    args = parse_args(["--count", str(events), "--seed", "1", "--start-time", START.isoformat(), "--quiet"])
    client = LocalProducerClient.from_path(folder / "hub.db", "weather", 4)
    baseline_rss = psutil.Process().memory_info().rss
    cpu_started = time.process_time()
    with PeakRss() as rss:
        summary = run(args, client)
    cpu = time.process_time() - cpu_started
    client.close()
    with LocalEventHub(folder / "hub.db") as hub:
        stored = hub.count()
    if stored != events or summary.sent != events:
        raise SystemExit(f"lost events: asked {events}, sent {summary.sent}, hub holds {stored}")
    return summary.sent / summary.elapsed, summary.sent / cpu, (rss.peak - baseline_rss) / 1e6


def raw_sqlite(events: int, folder: Path) -> float:
    """The storage floor: pre-built rows, executemany, one transaction per 3,000 rows."""
    generator = EventGenerator(Plan(seed=2, start_time=START))
    bodies = [next(generator).body for _ in range(min(events, 100_000))]
    conn = sqlite3.connect(folder / "raw.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, offset INTEGER, enqueued_ms INTEGER,"
        " partition_key TEXT, properties TEXT, body BLOB)"
    )
    chunk = 3000
    rows = [
        [(i + j, 0, 0, "dev", None, bodies[(i + j) % len(bodies)]) for j in range(chunk)]
        for i in range(0, len(bodies), chunk)
    ]
    started = time.perf_counter()
    written = 0
    while written < events:
        for block in rows:
            block = [(written + j, *row[1:]) for j, row in enumerate(block)]
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)", block)
            conn.execute("COMMIT")
            written += len(block)
            if written >= events:
                break
    elapsed = time.perf_counter() - started
    conn.close()
    return written / elapsed


def generator_only(events: int) -> float:
    generator = EventGenerator(Plan(seed=3, start_time=START))
    started = time.perf_counter()
    for _ in range(events):
        next(generator)
    return events / (time.perf_counter() - started)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.bench_producer", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--events", type=int, default=1_000_000, help="events to send (default 1,000,000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-producer-") as tmp:
        folder = Path(tmp)
        rate, cpu_rate, growth = producer_to_hub(args.events, folder)
        floor = raw_sqlite(args.events, folder)
        gen = generator_only(min(args.events, 300_000))
    load = psutil.getloadavg()[0]
    cores = psutil.cpu_count()
    print(f"producer -> embedded hub, {args.events:,} events (load average {load:.1f} on {cores} cores)")
    print(f"  {'measure':<38}{'figure':>14}   target")
    print(f"  {'producer -> hub throughput':<38}{rate:>10,.0f} ev/s   >= {TARGET_EVENTS_PER_SECOND:,} ev/s")
    print(f"  {'  (per CPU-second of the process)':<38}{cpu_rate:>10,.0f} ev/s   (what a free core gives)")
    print(f"  {'RSS growth while sending':<38}{growth:>11.1f} MB   < {TARGET_RSS_GROWTH_MB} MB")
    print(f"  {'baseline: raw sqlite executemany':<38}{floor:>10,.0f} ev/s")
    print(f"  {'baseline: generator only (no send)':<38}{gen:>10,.0f} ev/s")
    missed = []
    if rate < TARGET_EVENTS_PER_SECOND:
        missed.append(f"throughput {rate:,.0f} < {TARGET_EVENTS_PER_SECOND:,} ev/s")
    if growth >= TARGET_RSS_GROWTH_MB:
        missed.append(f"RSS growth {growth:.1f} >= {TARGET_RSS_GROWTH_MB} MB")
    if missed:
        print("MISSED: " + "; ".join(missed))
        return 1
    print("all targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
