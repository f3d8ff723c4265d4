"""Run the local pipeline's stages together: once in order (`run --once`, the demo) or continuously.

The stages are the documented local entry points (docs/architecture.md): the local Functions host
(ingest, and the sync timer in continuous mode), the Spark job, and one sync. They are imported
lazily so `status` and `report` never pay for Spark.

Spark always runs off the main thread: PySpark installs its own SIGINT handler when a session is
created on the main thread, and that handler calls into the JVM from inside a JVM call, so Ctrl-C
ended in a py4j traceback. Off the main thread, Ctrl-C stays ours: the first one stops the job
after its current micro-batch, a second one leaves at once (see :func:`interruptible`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from pipeline import history, lake_records, layers
from pipeline.cli import Interrupted
from settings import Settings

T = TypeVar("T")

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


def new_progress(console: Console | None = None) -> Progress:
    """The progress display used by every long stage."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
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
    # Only a stage that finished shows as done (an interrupted or failed one keeps its bar).
    final = progress.tasks[task].total or 1
    progress.update(task, description=description, completed=final, total=final)


def interruptible(
    work: Callable[[], T],
    stop: threading.Event,
    on_interrupt: Callable[[], None] | None = None,
    name: str = "spark",
) -> tuple[T, bool]:
    """Run ``work`` in a worker thread while the main thread keeps Ctrl-C.

    The first Ctrl-C sets ``stop`` (``work`` is expected to end cleanly soon after) and calls
    ``on_interrupt``; a second one raises KeyboardInterrupt at once, leaving the worker behind.

    Returns:
        What ``work`` returned, and whether Ctrl-C asked it to stop.

    Raises:
        Interrupted: ``work`` failed after Ctrl-C (a cancelled Spark job): the interrupt, not the
            failure, is what the user needs to hear about.
    """
    box: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name=name, daemon=True).start()
    interrupted = False
    # Wait on an Event, not Thread.join: a KeyboardInterrupt inside join() makes Python 3.11 mark
    # the still-running thread as finished (the bpo-45274 clean-up releases its state lock).
    while not done.is_set():
        try:
            done.wait(0.25)
        except KeyboardInterrupt:
            if interrupted:
                raise
            interrupted = True
            stop.set()
            if on_interrupt is not None:
                on_interrupt()
    if "error" in box:
        if interrupted:
            raise Interrupted(f"{name} stopped part-way; nothing is lost: run it again") from box["error"]
        raise box["error"]
    return box["result"], interrupted


def run_once(
    settings: Settings,
    progress: Progress | None = None,
    on_stopping: Callable[[str], None] | None = None,
) -> OnceResult:
    """Ingest until idle, run the Spark job with ``availableNow``, then sync once — in that order.

    Ctrl-C stops cleanly in any stage (nothing is lost: a batch that did not finish is replayed
    next time, and its replay is a no-op where it already landed); ``on_stopping`` is told while
    Spark finishes its current micro-batch.

    Raises:
        Interrupted: Ctrl-C stopped the run; the message says where.
    """
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
    stop = threading.Event()
    with _tracked(progress, "ingest (local Functions host)", ingest_progress, ingest_waits):
        # Off the main thread too: Ctrl-C stops the host after its current attempt (or wait).
        result.ingest, interrupted = interruptible(lambda: host.run_until_idle(stop), stop, name="ingest")
        if interrupted:
            raise Interrupted(
                "ingest stopped after its current batch; the rest wait in the hub, not checkpointed: "
                "run again to continue"
            )
    result.seconds["ingest"] = time.monotonic() - started

    started = time.monotonic()
    with _tracked(progress, "Spark bronze → silver → gold (availableNow)"):
        spark, interrupted = interruptible(
            lambda: run_spark(settings, available_now=True, stop=stop),
            stop,
            on_interrupt=lambda: on_stopping and on_stopping(STOPPING_SPARK),
        )
        if interrupted:
            raise Interrupted(
                "Spark stopped after its current micro-batch and the sync did not run: run again to "
                "continue from the checkpoint"
            )
    result.spark = spark or {}
    result.seconds["spark"] = time.monotonic() - started

    started = time.monotonic()
    try:
        with _tracked(progress, "sync gold → SQL"):
            result.sync = sync_once(settings) or {}
    except KeyboardInterrupt:
        raise Interrupted("during the sync, before it committed; SQL is unchanged: run again") from None
    result.seconds["sync"] = time.monotonic() - started
    return result


STOPPING_SPARK = "stopping after Spark's current micro-batch (Ctrl-C again quits at once; nothing is lost)"


# --- continuous mode ------------------------------------------------------------------------------


@dataclass
class Lag:
    """One sample of the pipeline's progress: the live status line, and a line of ``lag.jsonl``."""

    at: float
    hub: int
    ingest_lag: int
    spark_pending_files: int
    gold_version: int | None
    watermark: int | None
    at_utc: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def sync_lag_versions(self) -> int | None:
        """Gold Delta versions not yet in SQL (None before gold exists)."""
        if self.gold_version is None:
            return None
        return max(0, self.gold_version - (-1 if self.watermark is None else self.watermark))

    def rate(self, previous: Lag | None) -> float:
        """Events per second into the hub since ``previous``."""
        if previous is None or self.at <= previous.at:
            return 0.0
        return (self.hub - previous.hub) / (self.at - previous.at)

    def line(self, previous: Lag | None) -> str:
        versions = self.sync_lag_versions
        sync = "no gold" if versions is None else f"{versions} version{'' if versions == 1 else 's'}"
        return (
            f"in {self.rate(previous):,.0f} ev/s · hub {self.hub:,} · lag: ingest {self.ingest_lag:,} ev, "
            f"Spark {self.spark_pending_files:,} file{'' if self.spark_pending_files == 1 else 's'}, "
            f"sync {sync}"
        )

    def record(self, previous: Lag | None) -> dict[str, Any]:
        """The sample as one line of ``lag.jsonl`` (see :mod:`pipeline.history`)."""
        fields = asdict(self)
        del fields["at"]  # monotonic seconds: meaningless outside this process
        return {
            **fields,
            "at_utc": self.at_utc.isoformat(),
            "events_per_second": round(self.rate(previous), 1),
            "sync_lag_versions": self.sync_lag_versions,
        }


def sample_lag(settings: Settings) -> Lag:
    """Measure each stage's lag cheaply enough to do every couple of seconds."""
    hub, backlog = layers.hub_counts(settings)
    silver = layers.delta_table(settings.silver_table_uri)
    # Bronze files written after silver's last commit are what the Spark job has not seen yet.
    last_commit = 0.0
    if silver is not None:
        commits = silver.history(1)
        if commits:
            last_commit = float(commits[0].get("timestamp", 0)) / 1000
    pending = sum(
        1
        for p in lake_records.lake_files(settings, settings.bronze_container)
        if p.stat().st_mtime > last_commit
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

    Every ``interval`` seconds the lag of each stage is sampled, appended to
    ``$PIPELINE_HOME/lag.jsonl`` (the report charts it) and shown through ``on_line``.

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
    lag_file = settings.home / history.LAG_FILE
    try:
        while not stop.wait(interval):
            try:
                current = sample_lag(settings)
            except Exception:  # a table mid-commit can fail to read; skip this sample
                continue
            history.append(lag_file, current.record(previous))
            if on_line is not None:
                on_line(current.line(previous))
            previous = current
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return failures
