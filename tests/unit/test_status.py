"""`pipeline status`: layer counts read from a state folder built by hand in the documented layout."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from localhub import LocalConsumer, LocalEventHub
from pipeline import layers
from pipeline.commands import status
from settings import Settings

T0 = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)


def _settings(home: Path) -> Settings:
    return Settings(values={"PIPELINE_HOME": str(home)})


def _jsonl(path: Path, records: list[dict[str, object]], gz: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    path.write_bytes(gzip.compress(data) if gz else data)


def _bronze(event_id: str) -> dict[str, object]:
    return {"EventId": event_id, "EnqueuedTimeUtc": "2026-11-22T07:00:01.000Z", "Body": "{}"}


def _quarantine(reasons: list[str]) -> dict[str, object]:
    return {"EventId": None, "Reasons": reasons, "Body": "x", "BodyEncoding": "utf8"}


def build_home(home: Path) -> None:
    """A state folder with a known number of things in every layer."""
    # Hub: 7 events, the ingest group has checkpointed the first 3 of partition 0.
    with LocalEventHub(home / "hub.db", "weather", 4) as hub:
        hub.append("0", [(b"a", None)] * 5)
        hub.append("1", [(b"b", None)] * 2)
        LocalConsumer(hub, "ingest").checkpoint("0", 2, "2")
    part = home / "lake" / "bronze" / "weather" / "ingest_date=2026-11-22" / "hour=07"
    _jsonl(part / "p0-00000000000000000000-00000000000000000002.jsonl", [_bronze(f"e{i}") for i in range(3)])
    _jsonl(
        part / "p1-00000000000000000000-00000000000000000001.jsonl.gz",
        [_bronze("e3"), _bronze("e3")],
        gz=True,
    )
    # A writer's temp file (not linked into place yet) must not count.
    _jsonl(part / "_tmp-p2.jsonl", [_bronze("zz")])
    qpart = home / "lake" / "quarantine" / "weather" / "ingest_date=2026-11-22" / "hour=07"
    _jsonl(
        qpart / "p0-00000000000000000003-00000000000000000004.jsonl",
        [_quarantine(["json"]), _quarantine(["range:humidity", "missing:temperature"])],
    )
    silver = pa.table(
        {
            "event_id": ["e0", "e1", "e2", "e3"],
            "enqueued_time": pa.array([T0] * 4, pa.timestamp("us", "UTC")),
            "processed_at": pa.array(
                [T0 + timedelta(seconds=s) for s in (10, 10, 20, 40)], pa.timestamp("us", "UTC")
            ),
        }
    )
    write_deltalake(str(home / "lake" / "silver" / "weather"), silver)
    write_deltalake(str(home / "lake" / "silver" / "weather_quarantine"), pa.table({"event_id": ["q"]}))
    gold = pa.table(
        {
            "location": ["Oslo", "Lima"],
            "window_start": pa.array([T0, T0], pa.timestamp("us", "UTC")),
            "avg_temperature": [1.5, 20.0],
        }
    )
    write_deltalake(str(home / "lake" / "gold" / "weather_summary"), gold)
    write_deltalake(str(home / "lake" / "gold" / "weather_summary"), gold.slice(0, 1), mode="append")
    with sqlite3.connect(home / "warehouse.db") as con:
        con.execute("CREATE TABLE weather_summary (location TEXT, window_start TEXT, synced_at TEXT)")
        con.executemany(
            "INSERT INTO weather_summary VALUES (?, ?, ?)", [("Oslo", "t", "s"), ("Lima", "t", "s")]
        )
        con.execute(
            "CREATE TABLE sync_watermark (table_name TEXT PRIMARY KEY, delta_version INT, synced_at TEXT)"
        )
        con.execute("INSERT INTO sync_watermark VALUES ('weather_summary', 1, '2026-11-22T07:01:00+00:00')")
        con.execute("CREATE TABLE sync_runs (run_id INT, finished_at TEXT, max_source_updated_at TEXT)")
        # Run 1 covers processed_at up to +15 s; run 2 covers up to +40 s.
        con.execute("INSERT INTO sync_runs VALUES (1, '2026-11-22 07:00:30', '2026-11-22 07:00:15')")
        con.execute("INSERT INTO sync_runs VALUES (2, '2026-11-22T07:01:00Z', '2026-11-22T07:00:40Z')")


def test_fresh_home_counts_zero_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "never-used"
    counts = layers.count_layers(_settings(home)).as_json()
    assert counts == {
        "hub": 0, "bronze": 0, "quarantine": 0, "quarantine_reasons": {}, "silver": 0, "gold": 0,
        "sql": 0, "watermark": None, "silver_quarantine": 0, "hub_backlog": 0, "bronze_files": 0,
        "gold_version": None, "watermark_synced_at": None,
        "spark": {
            "commits": 0, "silver_inserted": 0, "silver_updated": 0, "silver_deleted": 0,
            "duplicates_skipped": 0, "quarantined": 0, "gold_inserted": 0, "gold_updated": 0,
            "gold_deleted": 0, "gold_windows_merged": 0,
        },
        "sql_error": None,
    }  # fmt: skip
    assert not home.exists()


def test_status_counts_every_layer_of_a_hand_built_home(tmp_path: Path) -> None:
    build_home(tmp_path)
    counts = layers.count_layers(_settings(tmp_path))
    assert (counts.hub, counts.hub_backlog) == (7, 4)
    assert (counts.bronze, counts.bronze_files) == (5, 2)
    assert counts.quarantine == 2
    assert counts.quarantine_reasons == {"json": 1, "range:humidity": 1, "missing:temperature": 1}
    assert (counts.silver, counts.silver_quarantine) == (4, 1)
    assert (counts.gold, counts.gold_version) == (3, 1)
    assert counts.sql == 2
    assert counts.watermark == 1
    assert counts.watermark_synced_at == "2026-11-22T07:01:00+00:00"


def test_status_json_prints_one_object_with_the_documented_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    build_home(tmp_path)
    monkeypatch.setenv("PIPELINE_HOME", str(tmp_path))
    parser = argparse.ArgumentParser()
    status.register(parser.add_subparsers())
    args = parser.parse_args(["status", "--json"])
    assert args.handler(args) == 0
    printed = json.loads(capsys.readouterr().out)
    documented = ["hub", "bronze", "quarantine", "quarantine_reasons", "silver", "gold", "sql", "watermark"]
    assert list(printed)[: len(documented)] == documented
    assert [printed[k] for k in ("hub", "bronze", "quarantine", "silver", "gold", "sql", "watermark")] == [
        7, 5, 2, 4, 3, 2, 1,
    ]  # fmt: skip


def test_freshness_takes_the_first_sync_covering_each_events_processing(tmp_path: Path) -> None:
    build_home(tmp_path)
    # e0, e1 (processed +10 s) and e2 (+20 s)... e0/e1 covered by run 1 (finished +30 s);
    # e2 (+20 s) and e3 (+40 s) only by run 2 (finished +60 s). All enqueued at T0.
    assert sorted(layers.freshness_seconds(_settings(tmp_path))) == [30.0, 30.0, 60.0, 60.0]


def test_events_processed_after_the_last_sync_are_not_yet_fresh(tmp_path: Path) -> None:
    build_home(tmp_path)
    with sqlite3.connect(tmp_path / "warehouse.db") as con:
        con.execute("DELETE FROM sync_runs WHERE run_id = 2")
    assert sorted(layers.freshness_seconds(_settings(tmp_path))) == [30.0, 30.0]


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 50, None),
        ([5.0], 95, 5.0),
        ([4.0, 1.0, 3.0, 2.0], 50, 2.0),
        ([float(i) for i in range(1, 21)], 95, 19.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float | None) -> None:
    assert layers.percentile(values, q) == expected


def test_status_line_reports_rate_and_lag_per_stage(tmp_path: Path) -> None:
    from pipeline.orchestrate import sample_lag

    build_home(tmp_path)
    first = sample_lag(_settings(tmp_path))
    assert (first.hub, first.ingest_lag, first.gold_version, first.watermark) == (7, 4, 1, 1)
    line = first.line(None)
    assert "lag: ingest 4 ev, Spark 0 files, sync 0 versions" in line

    # A bronze file written after silver's last commit is one the Spark job has not seen yet.
    newer = tmp_path / "lake" / "bronze" / "weather" / "ingest_date=2026-11-22" / "hour=08" / "p0-3-3.jsonl"
    _jsonl(newer, [_bronze("e9")])
    os.utime(newer, (time.time() + 5, time.time() + 5))
    assert sample_lag(_settings(tmp_path)).spark_pending_files == 1


def test_avro_bronze_files_are_counted_by_record(tmp_path: Path) -> None:
    import fastavro

    schema = fastavro.parse_schema(
        {"type": "record", "name": "Bronze", "fields": [{"name": "EventId", "type": "string"}]}
    )
    part = tmp_path / "lake" / "bronze" / "weather" / "ingest_date=2026-11-22" / "hour=07"
    part.mkdir(parents=True)
    with (part / "p0-0-2.avro").open("wb") as fh:
        fastavro.writer(fh, schema, [{"EventId": f"e{i}"} for i in range(3)])
    counts = layers.count_layers(_settings(tmp_path))
    assert (counts.bronze, counts.bronze_files) == (3, 1)
    assert [r["EventId"] for r in layers.iter_records(part / "p0-0-2.avro")] == ["e0", "e1", "e2"]


def _envelope(partition: str, number: int, event_id: str) -> dict[str, object]:
    return {
        "PartitionId": partition,
        "SequenceNumber": number,
        "EnqueuedTimeUtc": f"2026-11-22T07:00:{number:02d}.000Z",
        "EventId": event_id,
        "Body": "{}",
    }


def test_a_replayed_batch_written_twice_with_other_boundaries_is_counted_once(tmp_path: Path) -> None:
    part = tmp_path / "lake" / "bronze" / "weather" / "ingest_date=2026-11-22" / "hour=07"
    _jsonl(part / "p0-first.jsonl", [_envelope("0", n, f"e{n}") for n in range(0, 4)])
    # The replay's batch started at the same event and ran further: events 0-3 are in both files.
    _jsonl(part / "p0-replay.jsonl", [_envelope("0", n, f"e{n}") for n in range(0, 6)])
    # The same event id sent twice is two hub events (two sequence numbers): both count.
    _jsonl(part / "p1-resend.jsonl", [_envelope("1", 0, "e0"), _envelope("1", 1, "e0")])

    counts = layers.count_layers(_settings(tmp_path))

    assert (counts.bronze, counts.bronze_files) == (8, 3)


def test_damaged_bronze_files_are_counted_by_what_can_be_read_of_them(tmp_path: Path) -> None:
    import fastavro

    part = tmp_path / "lake" / "bronze" / "weather" / "ingest_date=2026-11-22" / "hour=07"
    whole = b"".join(json.dumps(_envelope("0", n, f"e{n}")).encode() + b"\n" for n in range(5))
    part.mkdir(parents=True)
    (part / "p0-cut.jsonl").write_bytes(whole[: len(whole) - 20])  # cut inside the last line
    schema = fastavro.parse_schema(
        {"type": "record", "name": "Bronze", "fields": [{"name": "EventId", "type": "string"}]}
    )
    with (part / "p1-header.avro").open("wb") as fh:
        fastavro.writer(fh, schema, [{"EventId": "a"}], codec="deflate")
    damaged = bytearray((part / "p1-header.avro").read_bytes())
    damaged[8:24] = b"\xff" * 16  # inside the header's metadata: nothing can be read
    (part / "p1-header.avro").write_bytes(bytes(damaged))
    other = b"".join(json.dumps(_envelope("2", n, f"g{n}")).encode() + b"\n" for n in range(5))
    (part / "p2-gz.jsonl.gz").write_bytes(gzip.compress(other)[:-30])  # a cut gzip stream

    counts = layers.count_layers(_settings(tmp_path))

    assert counts.bronze_files == 3
    # 4 whole lines of the cut file, none of the Avro file, what inflates before the gzip cut.
    readable_gz = sum(1 for r in layers.iter_records(part / "p2-gz.jsonl.gz"))
    assert 0 < readable_gz <= 5
    assert counts.bronze == 4 + 0 + readable_gz
    assert list(layers.iter_records(part / "p1-header.avro")) == []
