"""`run_audit` on layers the real components wrote: Avro bronze locally, and everything on Azure
storage (Azurite: bronze and quarantine through the Blob adapter, silver and gold as Delta tables
read with the sync Function's storage options, then SQL synced by the real sync Function).

No Spark here: silver and gold are written by the test from the bronze records, computed in plain
Python; the e2e tests run the audit on what the Spark job wrote.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pytest
from azure.storage.blob import BlobServiceClient
from deltalake import write_deltalake

from contract.gold import GOLD_COLUMN_TYPES
from contract.lake_layout import format_of
from functions.bronze import decode_bronze
from functions.lake import lake_from_settings
from pipeline.audit import SILVER_TYPES, run_audit
from pipeline.host import LocalFunctionsHost
from pipeline.sync_runner import sync_once
from tests.fixtures.local_host import make_settings, produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]

_ARROW = {
    "string": pa.string(),
    "timestamp": pa.timestamp("us", "UTC"),
    "long": pa.int64(),
    "double": pa.float64(),
}
GOLD_SCHEMA = pa.schema([(name, _ARROW[kind]) for name, kind in GOLD_COLUMN_TYPES.items()])


def test_avro_bronze_is_audited_and_a_deleted_avro_file_is_exactly_its_events_lost(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, BRONZE_FORMAT="avro")
    sent = produce(settings, 400)
    LocalFunctionsHost(settings).run_until_idle()

    whole = run_audit(settings).as_json()

    hub = whole["checks"]["hub_bronze"]
    assert hub["status"] == "ok"
    assert hub["counts"]["hub_events"] == len(sent) == 400
    valid = {k for k, raw in sent.items() if k.startswith("evt-") and b'"temperature": 400' not in raw}
    # Spark has not run: every valid event is waiting for it, none is lost.
    assert whole["checks"]["bronze_silver"]["counts"]["pending"] == len(valid)
    assert (whole["lost"], whole["ok"]) == (0, False)

    [victim, *_] = sorted((tmp_path / "lake" / "bronze").rglob("*.avro"))
    with victim.open("rb") as handle:
        in_file = sum(1 for _ in fastavro.reader(handle))
    victim.unlink()

    broken = run_audit(settings).as_json()

    assert broken["checks"]["hub_bronze"]["counts"]["lost"] == in_file
    assert broken["lost"] == in_file


def _silver_rows(records: list[tuple[str, dict[str, Any]]]) -> pa.Table:
    rows = []
    for source, record in records:
        event = json.loads(record["Body"])
        rows.append(
            {
                "event_id": event["eventId"],
                "device_id": event["deviceId"],
                "device_seq": event.get("deviceSeq"),
                "location": event["location"],
                "event_time": datetime.fromisoformat(event["eventTime"]).astimezone(UTC),
                "temperature": float(event["temperature"]),
                "humidity": float(event["humidity"]),
                "wind_speed": float(event["windSpeed"]),
                "precipitation": float(event["precipitation"]),
                "source_file": source,
            }
        )
    schema = pa.schema(list(SILVER_TYPES.items()))
    return pa.Table.from_pylist(rows, schema=schema)


def _gold_rows(silver: pa.Table) -> pa.Table:
    """5-minute windows per location, computed in plain Python."""
    windows: dict[tuple[str, datetime], list[dict[str, Any]]] = defaultdict(list)
    for row in silver.to_pylist():
        t = row["event_time"]
        start = t.replace(minute=t.minute - t.minute % 5, second=0, microsecond=0)
        windows[(row["location"], start)].append(row)
    now = datetime.now(UTC)
    rows = []
    for (location, start), events in windows.items():
        n = len(events)
        rows.append(
            {
                "location": location,
                "window_start": start,
                "window_end": start + timedelta(minutes=5),
                "event_count": n,
                "avg_temperature": math.fsum(e["temperature"] for e in events) / n,
                "min_temperature": min(e["temperature"] for e in events),
                "max_temperature": max(e["temperature"] for e in events),
                "avg_humidity": math.fsum(e["humidity"] for e in events) / n,
                "avg_wind_speed": math.fsum(e["wind_speed"] for e in events) / n,
                "max_wind_speed": max(e["wind_speed"] for e in events),
                "total_precipitation": math.fsum(e["precipitation"] for e in events),
                "dominant_wind_direction": "NW",
                "dominant_conditions": "Cloudy",
                "updated_at": now,
            }
        )
    return pa.Table.from_pylist(rows, schema=GOLD_SCHEMA)


def test_audit_on_azure_storage_reads_blob_bronze_and_delta_tables_with_the_settings(
    azurite: Any, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    for container in (f"silver{suffix}", f"gold{suffix}"):
        service.create_container(container)
    settings = make_settings(
        tmp_path,
        LAKE_CONNECTION_STRING=azurite.connection_string,
        BRONZE_CONTAINER=f"bronze{suffix}",
        QUARANTINE_CONTAINER=f"quarantine{suffix}",
        SILVER_TABLE_URI=f"az://silver{suffix}/weather",
        SILVER_QUARANTINE_TABLE_URI=f"az://silver{suffix}/weather_quarantine",
        GOLD_TABLE_URI=f"az://gold{suffix}/weather_summary",
    )
    produce(settings, 400)
    LocalFunctionsHost(settings).run_until_idle()
    lake = lake_from_settings(settings)
    bronze = {
        path: decode_bronze(lake.read(settings.bronze_container, path), format_of(path))
        for path in lake.list(settings.bronze_container)
    }
    account = f"abfss://{settings.bronze_container}@devstoreaccount1.dfs.core.windows.net"
    silver = _silver_rows([(f"{account}/{path}", r) for path, records in bronze.items() for r in records])
    write_deltalake(settings.silver_table_uri, silver, storage_options=azurite.storage_options)
    write_deltalake(
        settings.gold_table_uri,
        _gold_rows(silver),
        storage_options=azurite.storage_options,
        configuration={"delta.enableChangeDataFeed": "true"},
    )
    assert sync_once(settings)["status"] == "synced"

    whole = run_audit(settings).as_json()

    assert not (tmp_path / "lake").exists()  # everything was read from Azure storage
    assert whole["ok"] is True, json.dumps(whole["checks"], indent=1)
    counts = whole["checks"]["bronze_silver"]["counts"]
    assert counts["bronze_events"] == counts["silver_rows"] == silver.num_rows
    assert (
        whole["checks"]["gold_sql"]["counts"]["equal"] == whole["checks"]["silver_gold"]["counts"]["windows"]
    )

    victim = sorted(bronze)[0]
    service.get_blob_client(settings.bronze_container, victim).delete_blob()

    broken = run_audit(settings).as_json()

    assert broken["lost"] == len(bronze[victim])
    assert broken["unexpected"] == len(bronze[victim])  # silver holds them, bronze no longer does


def test_avro_records_are_read_by_field_name(tmp_path: Path) -> None:
    """The audit reads what decode_bronze gives, so Avro's Capture layout (fields after Capture's)
    and JSON lines give the same columns."""
    from pipeline.lake_records import lake_table

    columns = {}
    for fmt in ("jsonl", "avro"):
        home = tmp_path / fmt
        settings = make_settings(home, BRONZE_FORMAT=fmt)
        produce(settings, 40)
        LocalFunctionsHost(settings).run_until_idle()
        records = lake_table(lake_from_settings(settings), "bronze", "weather", ["EventId", "SequenceNumber"])
        columns[fmt] = sorted(
            zip(*(records.table[c].to_pylist() for c in ("EventId", "SequenceNumber")), strict=True)
        )
    assert columns["avro"] == columns["jsonl"]
    assert columns["avro"]
