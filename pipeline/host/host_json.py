"""host.json: the Event Hubs extension's batch settings, as the Functions host reads them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.host.errors import HostError
from settings import PROJECT_ROOT

HOST_JSON = PROJECT_ROOT / "host.json"
# The Event Hubs extension's defaults (v5) when host.json leaves a value out, and its longest wait.
DEFAULT_MAX_EVENT_BATCH_SIZE = 100
DEFAULT_MIN_EVENT_BATCH_SIZE = 1
DEFAULT_MAX_WAIT_TIME = 60.0
LONGEST_MAX_WAIT_TIME = 600.0


@dataclass(frozen=True)
class EventHubsOptions:
    """The host.json ``extensions.eventHubs`` values the local host honours."""

    max_event_batch_size: int = DEFAULT_MAX_EVENT_BATCH_SIZE
    min_event_batch_size: int = DEFAULT_MIN_EVENT_BATCH_SIZE
    max_wait_time: float = DEFAULT_MAX_WAIT_TIME  # seconds; only used when min_event_batch_size > 1
    initial_offset: str = "fromStart"

    @property
    def starts_from_end(self) -> bool:
        """Whether a partition without a checkpoint starts after its last event (``fromEnd``)."""
        return self.initial_offset.lower() == "fromend"


def parse_timespan(value: Any, what: str) -> float:
    """``HH:MM:SS`` (or ``D.HH:MM:SS``) as seconds: host.json's and the retry policy's format."""
    text = str(value or "").strip()
    days = 0
    if "." in text.split(":")[0]:
        day_text, text = text.split(".", 1)
        days = int(day_text)
    try:
        hours, minutes, seconds = text.split(":")
        return days * 86400 + int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except ValueError:
        raise HostError(f"{what} must be a timespan like 00:00:05, got {value!r}") from None


def read_host_json(path: Path = HOST_JSON) -> EventHubsOptions:
    """Read host.json's Event Hubs batch settings; fail with one line when they are unusable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HostError(f"{path} is missing; the Functions host needs it") from None
    except ValueError as exc:
        raise HostError(f"{path} is not valid JSON: {exc}") from None
    if document.get("version") != "2.0":
        raise HostError(f'{path.name}: "version" must be "2.0"')
    hubs = document.get("extensions", {}).get("eventHubs", {})
    where = f"{path.name}: extensions.eventHubs"
    size = hubs.get("maxEventBatchSize", DEFAULT_MAX_EVENT_BATCH_SIZE)
    minimum = hubs.get("minEventBatchSize", DEFAULT_MIN_EVENT_BATCH_SIZE)
    for name, value in (("maxEventBatchSize", size), ("minEventBatchSize", minimum)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise HostError(f"{where}.{name} must be a positive whole number")
    if minimum > size:
        raise HostError(f"{where}.minEventBatchSize ({minimum}) must not exceed maxEventBatchSize ({size})")
    wait = DEFAULT_MAX_WAIT_TIME
    if "maxWaitTime" in hubs:
        wait = parse_timespan(hubs["maxWaitTime"], f"{where}.maxWaitTime")
    if not 0 <= wait <= LONGEST_MAX_WAIT_TIME:
        raise HostError(f"{where}.maxWaitTime must be between 00:00:00 and 00:10:00")
    initial = str(hubs.get("initialOffsetOptions", {}).get("type", "fromStart"))
    if initial.lower() not in ("fromstart", "fromend"):
        raise HostError(
            f"{path.name}: initialOffsetOptions.type {initial!r} is not supported locally "
            "(fromStart, fromEnd)"
        )
    return EventHubsOptions(size, minimum, wait, initial)
