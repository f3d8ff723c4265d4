"""Bronze files for the Spark job's tests and benchmark, without running the ingest Function.

The bytes come from the Function's own encoder (:func:`functions.bronze.encode_bronze`), so
Spark is tested on exactly what production writes; only the records are made up here.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from functions.bronze import encode_bronze, file_name
from functions.ingest_core import BronzeRecord


def utc_text(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds, as the bronze envelope spells times."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def weather_body(
    location: str,
    event_time: datetime,
    *,
    event_id: str | None = None,
    temperature: float = 20.0,
    humidity: float = 50.0,
    wind_speed: float = 5.0,
    wind_direction: str = "N",
    precipitation: float = 0.0,
    conditions: str = "Clear",
    device_seq: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    """A valid contract v1 body (extra keyword arguments become unknown fields)."""
    return {
        "eventId": event_id or str(uuid.uuid4()),
        "deviceId": f"dev-{location.lower()}",
        "location": location,
        "eventTime": utc_text(event_time),
        "temperature": temperature,
        "humidity": humidity,
        "windSpeed": wind_speed,
        "windDirection": wind_direction,
        "precipitation": precipitation,
        "conditions": conditions,
        "deviceSeq": device_seq,
        "schemaVersion": 1,
        **extra,
    }


def envelope(
    body: Mapping[str, Any] | bytes,
    *,
    partition_id: str,
    sequence_number: int,
    enqueued_time: datetime,
    ingested_time: datetime | None = None,
) -> dict[str, Any]:
    """One bronze record; ``Body`` holds the exact bytes (JSON-encoded when given a dict)."""
    raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    event_id = body.get("eventId") if isinstance(body, Mapping) else None
    return {
        "SequenceNumber": sequence_number,
        "Offset": str(sequence_number * 512),
        "EnqueuedTimeUtc": utc_text(enqueued_time),
        "SystemProperties": {},
        "Properties": {"source": "test"},
        "Body": raw,
        "PartitionId": partition_id,
        "PartitionKey": None,
        "EventId": event_id or "",
        "IngestedTimeUtc": utc_text(ingested_time or enqueued_time + timedelta(seconds=1)),
    }


def bronze_dir(bronze_root: Path, stream: str, first_enqueued: datetime) -> Path:
    """``<bronze>/<stream>/ingest_date=YYYY-MM-DD/hour=HH``."""
    at = first_enqueued.astimezone(UTC)
    return bronze_root / stream / f"ingest_date={at:%Y-%m-%d}" / f"hour={at:%H}"


def write_bronze_file(
    bronze_root: Path, stream: str, records: Iterable[Mapping[str, Any]], fmt: str = "jsonl"
) -> Path:
    """Write one partition batch as a bronze file: temp file starting with ``_``, then a hard link.

    Args:
        bronze_root: The bronze container folder.
        stream: The stream folder name.
        records: Envelopes from :func:`envelope`, all of one partition, in sequence order.
        fmt: ``jsonl``, ``jsonl.gz`` or ``avro``.

    Returns:
        The final path.
    """
    rows = list(records)
    first, last = rows[0], rows[-1]
    enqueued = datetime.fromisoformat(first["EnqueuedTimeUtc"].replace("Z", "+00:00"))
    folder = bronze_dir(bronze_root, stream, enqueued)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"p{first['PartitionId']}-{first['SequenceNumber']:020d}-{last['SequenceNumber']:020d}"
    final = folder / file_name(stem, fmt)
    temp = folder / f"_{final.name}.{uuid.uuid4().hex}.tmp"
    temp.write_bytes(encode_bronze(cast("list[BronzeRecord]", rows), fmt, stem))  # the Function's encoder
    try:
        os.link(temp, final)
    finally:
        temp.unlink()
    return final
