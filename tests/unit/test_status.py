"""`pipeline status`: layer counts read from a state folder built by hand in the documented layout."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from pipeline import lake_records, layers
from tests.fixtures.state_home import home_settings, write_jsonl


def test_fresh_home_counts_zero_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "never-used"
    counts = layers.count_layers(home_settings(home)).as_json()
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


def test_avro_bronze_files_are_counted_by_record(tmp_path: Path) -> None:
    import fastavro

    schema = fastavro.parse_schema(
        {"type": "record", "name": "Bronze", "fields": [{"name": "EventId", "type": "string"}]}
    )
    part = tmp_path / "lake" / "bronze" / "weather" / "ingest_date=2026-11-22" / "hour=07"
    part.mkdir(parents=True)
    with (part / "p0-0-2.avro").open("wb") as fh:
        fastavro.writer(fh, schema, [{"EventId": f"e{i}"} for i in range(3)])
    counts = layers.count_layers(home_settings(tmp_path))
    assert (counts.bronze, counts.bronze_files) == (3, 1)
    assert [r["EventId"] for r in lake_records.iter_records(part / "p0-0-2.avro")] == ["e0", "e1", "e2"]


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
    write_jsonl(part / "p0-first.jsonl", [_envelope("0", n, f"e{n}") for n in range(0, 4)])
    # The replay's batch started at the same event and ran further: events 0-3 are in both files.
    write_jsonl(part / "p0-replay.jsonl", [_envelope("0", n, f"e{n}") for n in range(0, 6)])
    # The same event id sent twice is two hub events (two sequence numbers): both count.
    write_jsonl(part / "p1-resend.jsonl", [_envelope("1", 0, "e0"), _envelope("1", 1, "e0")])

    counts = layers.count_layers(home_settings(tmp_path))

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

    counts = layers.count_layers(home_settings(tmp_path))

    assert counts.bronze_files == 3
    # 4 whole lines of the cut file, none of the Avro file, what inflates before the gzip cut.
    readable_gz = sum(1 for r in lake_records.iter_records(part / "p2-gz.jsonl.gz"))
    assert 0 < readable_gz <= 5
    assert counts.bronze == 4 + 0 + readable_gz
    assert list(lake_records.iter_records(part / "p1-header.avro")) == []
