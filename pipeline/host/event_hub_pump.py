"""Event Hubs: the embedded hub's events delivered to the app's Event Hubs functions, as the host does.

Per partition, for the binding's consumer group, batches of up to host.json's
``maxEventBatchSize`` (a partition below ``minEventBatchSize`` waits up to ``maxWaitTime`` for
more, as the extension does), delivered as the worker would build them
(:mod:`pipeline.host.trigger_payload`). The function's retry policy applies (``-1``: until it
succeeds) and holds the partition while it retries; the checkpoint is written after each
invocation, also when a bounded policy gave up (the real host does the same), never while it is
still retrying. Unlike Azure, where each partition has its own processor, partitions take turns
here: one that waits holds the others. After each invocation that succeeded, what it landed in
the lake is counted (:mod:`pipeline.host.landed`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any, Literal

from localhub import LocalConsumer, LocalEventHub, ReceivedEvent
from pipeline.host.errors import HostError
from pipeline.host.host_json import EventHubsOptions
from pipeline.host.indexing import FunctionSpec
from pipeline.host.landed import LandedReader
from pipeline.host.retry import RetryWait, invoke_with_retries, is_storage_error
from pipeline.host.state import HostState
from pipeline.host.trigger_payload import build_event_batch
from settings import Settings

log = logging.getLogger("pipeline.host")


class EventHubPump:
    """Delivers the embedded hub's events to the Event Hubs functions, one partition batch at a time.

    Args:
        settings: Where the embedded hub and the lake are.
        functions: The app's Event Hubs functions.
        options: host.json's batch settings.
        state: Where the counts, the last error and a retry's wait are kept.
        time_scale: Multiplies every wait (retries, ``maxWaitTime``).
    """

    def __init__(
        self,
        settings: Settings,
        functions: Sequence[FunctionSpec],
        options: EventHubsOptions,
        state: HostState,
        time_scale: float = 1.0,
    ) -> None:
        self.settings = settings
        self.functions = list(functions)
        self.options = options
        self.state = state
        self.time_scale = time_scale
        self.landed = LandedReader(settings)
        self._consumers: dict[str, tuple[LocalConsumer, dict[str, int]]] = {}
        self._consumers_lock = threading.Lock()
        # (function, partition) -> when a partition with fewer than minEventBatchSize events was
        # first held back (time.monotonic()); it is delivered anyway maxWaitTime later.
        self._held_since: dict[tuple[str, str], float] = {}

    def _consumer(self, spec: FunctionSpec) -> tuple[LocalConsumer, dict[str, int]]:
        """The function's consumer, and where partitions without a checkpoint start (``fromEnd``)."""
        with self._consumers_lock:
            cached = self._consumers.get(spec.name)
            if cached is None:
                try:
                    hub = LocalEventHub(
                        self.settings.local_hub_path,
                        name=str(spec.binding["eventHubName"]),
                        partitions=self.settings.local_hub_partitions,
                    )
                except ValueError as exc:
                    raise HostError(str(exc)) from None
                consumer = LocalConsumer(hub, str(spec.binding.get("consumerGroup") or "$Default"))
                start_after: dict[str, int] = {}
                if self.options.starts_from_end:
                    for partition in consumer.partition_ids:
                        if consumer.get_checkpoint(partition) is None:
                            start_after[partition] = consumer.last_sequence_number(partition)
                cached = self._consumers[spec.name] = (consumer, start_after)
            return cached

    def backlog(self) -> dict[str, int]:
        """Events not yet checkpointed, per partition, summed over the Event Hubs functions."""
        total: Counter[str] = Counter()
        for spec in self.functions:
            consumer, _ = self._consumer(spec)
            total.update(consumer.backlog())
        return dict(total)

    def pump(self, stop: threading.Event) -> tuple[int, float | None]:
        """One pass over every Event Hubs function's partitions (see :meth:`_pump_function`)."""
        delivered, due = 0, None
        for spec in self.functions:
            events, held = self._pump_function(spec, stop)
            delivered += events
            if held is not None:
                due = held if due is None else min(due, held)
        return delivered, due

    def _pump_function(self, spec: FunctionSpec, stop: threading.Event) -> tuple[int, float | None]:
        """Deliver at most one batch per partition.

        As the Event Hubs extension does for a many-cardinality function, a partition with fewer
        than host.json's ``minEventBatchSize`` events waits for more, up to ``maxWaitTime`` from
        when it was first held (or from its last invocation), then gets what is there.

        Returns:
            Events delivered, and seconds until the first held partition is due (None: none held).
        """
        consumer, start_after = self._consumer(spec)
        backlog = consumer.backlog()
        delivered, due = 0, None
        for partition in consumer.partition_ids:
            after = None
            if partition in start_after and consumer.get_checkpoint(partition) is None:
                after = start_after[partition]
            available = backlog.get(partition, 0)
            if after is not None:
                available = max(0, consumer.last_sequence_number(partition) - after)
            key = (spec.name, partition)
            if not available:
                self._held_since.pop(key, None)
                continue
            if spec.many and available < self.options.min_event_batch_size:
                held = time.monotonic() - self._held_since.setdefault(key, time.monotonic())
                remaining = self.options.max_wait_time * self.time_scale - held
                if remaining > 0:
                    due = remaining if due is None else min(due, remaining)
                    continue
            received = consumer.receive_batch(
                partition, self.options.max_event_batch_size, after_sequence_number=after
            )
            if not received:
                continue
            if not self._deliver(spec, consumer, received, stop):
                return delivered, None  # stopped while waiting to retry: nothing checkpointed
            self._held_since.pop(key, None)  # the extension's wait starts again after an invocation
            delivered += len(received)
        return delivered, due

    def _deliver(
        self,
        spec: FunctionSpec,
        consumer: LocalConsumer,
        received: list[ReceivedEvent],
        stop: threading.Event,
    ) -> bool:
        """Invoke for one partition batch and checkpoint it; False when ``stop`` came first."""
        partition = received[0].partition_id
        events = build_event_batch(received, str(spec.binding["eventHubName"]), consumer.consumer_group)
        # Cardinality one: the host invokes once per event.
        arguments: list[Any] = [events] if spec.many else list(events)
        outcomes = [self._invoke(spec, argument, stop, partition) for argument in arguments]
        if "stopped" in outcomes:
            return False
        # The real host checkpoints once the invocation is done, whatever its outcome (a retry
        # policy that gives up included); a policy that is still retrying holds the checkpoint.
        last = received[-1]
        consumer.checkpoint(partition, last.sequence_number, last.offset)
        summary = self.state.summary
        summary.invocations += 1
        summary.events += len(received)
        summary.events_by_partition[partition] += len(received)
        # What each invocation that succeeded landed: the whole batch, or (cardinality one) an event.
        batches = [received] if spec.many else [[event] for event in received]
        for batch, outcome in zip(batches, outcomes, strict=True):
            if outcome == "ok":
                self._count_landed(spec, batch, partition)
        return True

    def _invoke(
        self, spec: FunctionSpec, argument: Any, stop: threading.Event, partition: str | None
    ) -> Literal["ok", "gave_up", "stopped"]:
        """Invoke with the function's retry policy, saying what it waits for while it does."""

        def wait_for_retry(attempts: int, wait: float, exc: Exception) -> None:
            error = f"{type(exc).__name__}: {exc}"
            self.state.last_error = f"{spec.name}: {error}"
            now = time.monotonic()
            previous = self.state.waiting
            since = previous.failing_since if previous is not None and attempts > 1 else now
            self.state.waiting = RetryWait(
                spec.name, partition, since, attempts, now + wait, error, is_storage_error(exc)
            )
            log.warning("%s", self.state.waiting.describe(now))
            self.state.summary.retries += 1

        attempts = invoke_with_retries(
            lambda: spec.call(argument), spec.retry, stop, self.time_scale, on_retry=wait_for_retry
        )
        if attempts.outcome == "gave_up":
            exc = attempts.error
            self.state.last_error = f"{spec.name}: {type(exc).__name__}: {exc}"
            log.error("function %s failed after %d attempts: %s", spec.name, attempts.tries, exc)
            self.state.summary.failed_invocations += 1
        if attempts.outcome != "stopped":
            self.state.waiting = None
        return attempts.outcome

    def _count_landed(self, spec: FunctionSpec, received: list[ReceivedEvent], partition: str) -> None:
        try:
            landed = self.landed.read(received)
        except Exception as exc:
            if not is_storage_error(exc):
                raise
            # Counting is the host's own business: the batch landed and is checkpointed.
            log.warning("could not count what %s landed for partition %s: %s", spec.name, partition, exc)
            return
        summary = self.state.summary
        summary.valid += landed.valid
        summary.quarantined += landed.quarantined
        summary.quarantined_by_reason.update(landed.reasons)
