"""Run the local pipeline's stages together: once in order (`run --once`, the demo) or continuously.

The stages are the documented local entry points (docs/architecture.md): the local Functions host
(ingest, and the sync timer in continuous mode), the Spark job, and one sync. They are imported
lazily so `status` and `report` never pay for Spark.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from pipeline import layers
from settings import Settings

# Settings that would point a run away from the embedded defaults under its own home.
LOCATION_OVERRIDES = (
    "EVENTHUB_CONNECTION",
    "EVENTHUB_CONNECTION__fullyQualifiedNamespace",
    "LAKE_ACCOUNT_URL",
    "LAKE_CONNECTION_STRING",
    "LOCAL_LAKE_PATH",
    "SILVER_TABLE_URI",
    "SILVER_QUARANTINE_TABLE_URI",
    "GOLD_TABLE_URI",
    "CHECKPOINT_LOCATION",
    "SQL_CONNECTION",
)


@dataclass
class OnceResult:
    """What each stage of one `run --once` reported, and how long it took (seconds)."""

    ingest: Any = None
    spark: dict[str, Any] = field(default_factory=dict)
    sync: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def new_progress() -> Progress:
    """The progress display used by every long stage."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=False,
    )


@contextmanager
def _tracked(
    progress: Progress | None,
    description: str,
    poll: Callable[[], tuple[int, int]] | None = None,
    note: Callable[[], str | None] | None = None,
) -> Iterator[None]:
    """Show a progress task while the body runs.

    Every half second ``poll`` gives (done, total), and ``note`` what the stage waits for, if
    anything (shown after the description).
    """
    if progress is None:
        yield
        return
    task = progress.add_task(description, total=None)
    stop = threading.Event()

    def update() -> None:
        try:
            done, total = poll() if poll else (0, 0)
        except Exception:  # a layer mid-write can fail to read; the next poll will do
            return
        if total:
            progress.update(task, completed=done, total=total)
        waiting = note() if note else None
        progress.update(task, description=f"{description} · {waiting}" if waiting else description)

    def poller() -> None:
        while not stop.wait(0.5):
            update()

    update()  # the total is known up front when there is a poll

    thread = threading.Thread(target=poller, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        final = progress.tasks[task].total or 1
        progress.update(task, description=description, completed=final, total=final)


def run_once(settings: Settings, progress: Progress | None = None) -> OnceResult:
    """Ingest until idle, run the Spark job with ``availableNow``, then sync once — in that order."""
    from pipeline.host import LocalFunctionsHost
    from pipeline.spark_runner import run_spark
    from pipeline.sync_runner import sync_once

    result = OnceResult()

    def ingest_progress() -> tuple[int, int]:
        total, backlog = layers.hub_counts(settings)
        return total - backlog, total

    host = LocalFunctionsHost(settings)

    def ingest_waits() -> str | None:  # e.g. for storage: the run waits until it is back (or Ctrl-C)
        waiting = host.waiting
        return waiting.describe(time.monotonic()) if waiting is not None else None

    started = time.monotonic()
    with _tracked(progress, "ingest (local Functions host)", ingest_progress, ingest_waits):
        result.ingest = host.run_until_idle()
    result.seconds["ingest"] = time.monotonic() - started

    started = time.monotonic()
    with _tracked(progress, "Spark bronze → silver → gold (availableNow)"):
        result.spark = run_spark(settings, available_now=True) or {}
    result.seconds["spark"] = time.monotonic() - started

    started = time.monotonic()
    with _tracked(progress, "sync gold → SQL"):
        result.sync = sync_once(settings) or {}
    result.seconds["sync"] = time.monotonic() - started
    return result


# --- continuous mode ------------------------------------------------------------------------------


@dataclass
class Lag:
    """One sample of the pipeline's progress for the live status line."""

    at: float
    hub: int
    ingest_lag: int
    spark_pending_files: int
    gold_version: int | None
    watermark: int | None

    def line(self, previous: Lag | None) -> str:
        rate = 0.0
        if previous is not None and self.at > previous.at:
            rate = (self.hub - previous.hub) / (self.at - previous.at)
        if self.gold_version is None:
            sync = "no gold"
        else:
            synced = -1 if self.watermark is None else self.watermark
            sync = f"{max(0, self.gold_version - synced)} versions"
        return (
            f"in {rate:,.0f} ev/s · hub {self.hub:,} · lag: ingest {self.ingest_lag:,} ev, "
            f"Spark {self.spark_pending_files:,} files, sync {sync}"
        )


def sample_lag(settings: Settings) -> Lag:
    """Measure each stage's lag cheaply enough to do every couple of seconds."""
    hub, backlog = layers.hub_counts(settings)
    silver = layers.delta_table(settings.silver_table_uri)
    # Bronze files written after silver's last commit are what the Spark job has not seen yet.
    last_commit = 0.0
    if silver is not None:
        history = silver.history(1)
        if history:
            last_commit = float(history[0].get("timestamp", 0)) / 1000
    pending = sum(
        1 for p in layers.lake_files(settings, settings.bronze_container) if p.stat().st_mtime > last_commit
    )
    gold = layers.delta_table(settings.gold_table_uri)
    with layers.SqlReader(settings) as reader:
        mark, _ = layers.watermark(settings, reader)
    return Lag(
        at=time.monotonic(),
        hub=hub,
        ingest_lag=backlog,
        spark_pending_files=pending,
        gold_version=None if gold is None else int(gold.version()),
        watermark=mark,
    )


def run_continuous(
    settings: Settings,
    stop: threading.Event,
    on_line: Callable[[str], None] | None = None,
    interval: float = 2.0,
) -> dict[str, BaseException]:
    """Serve the host (ingest and timers) and the Spark job together until ``stop`` is set.

    Returns the exception each stage died with, if any; a stage that dies stops the others so the
    run never keeps going half-alive.
    """
    from pipeline.host import LocalFunctionsHost
    from pipeline.spark_runner import run_spark

    failures: dict[str, BaseException] = {}
    host = LocalFunctionsHost(settings)

    def guarded(name: str, work: Callable[[], object]) -> Callable[[], None]:
        def target() -> None:
            try:
                work()
            except BaseException as exc:
                failures[name] = exc
                stop.set()

        return target

    threads = [
        threading.Thread(target=guarded("host", lambda: host.serve(stop)), name="host", daemon=True),
        threading.Thread(
            target=guarded("spark", lambda: run_spark(settings, available_now=False, stop=stop)),
            name="spark",
            daemon=True,
        ),
    ]
    for thread in threads:
        thread.start()
    previous: Lag | None = None
    try:
        while not stop.wait(interval):
            if on_line is None:
                continue
            try:
                current = sample_lag(settings)
            except Exception:  # a table mid-commit can fail to read; skip this sample
                continue
            on_line(current.line(previous))
            previous = current
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return failures
