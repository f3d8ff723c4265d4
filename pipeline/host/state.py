"""What the host has done and is doing: the counts, the status line, a retry it waits for."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline.host.retry import RetryWait


@dataclass
class IngestSummary:
    """What :meth:`LocalFunctionsHost.run_until_idle` did.

    ``valid``, ``quarantined`` and ``quarantined_by_reason`` count what the invocations landed in
    the lake (:mod:`pipeline.host.landed`).
    """

    invocations: int = 0
    events: int = 0
    retries: int = 0
    failed_invocations: int = 0
    events_by_partition: Counter[str] = field(default_factory=Counter)
    valid: int = 0
    quarantined: int = 0
    quarantined_by_reason: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "invocations": self.invocations,
            "events": self.events,
            "retries": self.retries,
            "failed_invocations": self.failed_invocations,
            "events_by_partition": dict(sorted(self.events_by_partition.items())),
            "valid": self.valid,
            "quarantined": self.quarantined,
            "quarantined_by_reason": dict(self.quarantined_by_reason.most_common()),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class HostState:
    """The host's running state, shared by its Event Hubs pump, its timers and its status line."""

    summary: IngestSummary = field(default_factory=IngestSummary)
    timer_runs: Counter[str] = field(default_factory=Counter)
    last_error: str | None = None
    waiting: RetryWait | None = None  # an Event Hubs invocation that waits for its next retry

    def status(self, backlog: Mapping[str, int]) -> HostStatus:
        waiting = self.waiting.describe(time.monotonic()) if self.waiting is not None else None
        return HostStatus(self.summary, backlog, dict(self.timer_runs), self.last_error, waiting)


@dataclass(frozen=True)
class HostStatus:
    """One sample for a live status line."""

    summary: IngestSummary
    backlog: Mapping[str, int]
    timer_runs: Mapping[str, int]
    last_error: str | None = None
    waiting: str | None = None  # RetryWait.describe() while an invocation waits for a retry

    def line(self) -> str:
        s = self.summary
        text = (
            f"{s.events:,} events in {s.invocations:,} batches ({s.events_per_second:,.0f} ev/s) · "
            f"valid {s.valid:,} · quarantined {s.quarantined:,} · backlog {sum(self.backlog.values()):,}"
        )
        if self.timer_runs:
            text += " · timers " + ", ".join(f"{n} ×{c}" for n, c in sorted(self.timer_runs.items()))
        if s.retries or s.failed_invocations:
            text += f" · retries {s.retries} · failed batches {s.failed_invocations}"
        if self.waiting:
            text += f" · {self.waiting}"
        return text
