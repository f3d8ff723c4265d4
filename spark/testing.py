"""Bronze files written exactly per docs/architecture.md "Bronze records", for tests and benchmarks.

The ingest Function is the production writer; this helper lets the Spark job's tests and
benchmark build bronze without running it, in all three formats.
"""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro

AVRO_SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "EventData",
        "namespace": "weather.bronze",
        "fields": [
            {"name": "SequenceNumber", "type": "long"},
            {"name": "Offset", "type": "string"},
            {"name": "EnqueuedTimeUtc", "type": "string"},
            {"name": "SystemProperties", "type": {"type": "map", "values": "string"}},
            {"name": "Properties", "type": {"type": "map", "values": "string"}},
            {"name": "Body", "type": "bytes"},
            {"name": "PartitionId", "type": "string"},
            {"name": "PartitionKey", "type": ["null", "string"]},
            {"name": "EventId", "type": "string"},
            {"name": "IngestedTimeUtc", "type": "string"},
        ],
    }
)


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
    name = f"p{first['PartitionId']}-{first['SequenceNumber']:020d}-{last['SequenceNumber']:020d}.{fmt}"
    final = folder / name
    temp = folder / f"_{name}.{uuid.uuid4().hex}.tmp"
    if fmt == "avro":
        with temp.open("wb") as out:
            fastavro.writer(out, AVRO_SCHEMA, rows, codec="deflate")
    else:
        lines = "".join(_json_line(row) + "\n" for row in rows).encode()
        temp.write_bytes(gzip.compress(lines) if fmt == "jsonl.gz" else lines)
    try:
        os.link(temp, final)
    finally:
        temp.unlink()
    return final


def _json_line(record: Mapping[str, Any]) -> str:
    row = dict(record)
    row["Body"] = row["Body"].decode("utf-8")
    return json.dumps(row, separators=(",", ":"))
