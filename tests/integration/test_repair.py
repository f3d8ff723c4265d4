"""`pipeline repair` without Spark: what it writes, where from, and how it says what it cannot do.

The end-to-end repairs (rebuild and sync included) are in tests/faults/test_damaged_bronze.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contract.lake_layout import batch_name
from functions.bronze import decode_bronze
from functions.lake import LocalLake
from localhub import LocalEventHub
from pipeline.audit import find_damaged_files
from pipeline.host import LocalFunctionsHost
from pipeline.reingest import EventHubsRange
from pipeline.repair import run_repair
from tests.fixtures.cli import run_python
from tests.fixtures.eventhubs import FakeConsumerClient, service_event
from tests.fixtures.fault_harness import Pipeline

pytestmark = pytest.mark.integration


def ingested(tmp_path: Path, **values: str) -> Pipeline:
    pipe = Pipeline.create(tmp_path / "home", **values)
    pipe.send(300)
    LocalFunctionsHost(pipe.settings).run_until_idle()
    return pipe


def bronze_files(pipe: Pipeline) -> list[Path]:
    fmt = pipe.settings.bronze_format
    return sorted((pipe.settings.local_lake_path / "bronze").rglob(f"*.{fmt}"))


def without_ingestion_time(records: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in r.items() if k != "IngestedTimeUtc"} for r in records]


def test_a_repair_read_from_event_hubs_holds_what_the_function_wrote(tmp_path: Path) -> None:
    pipe = ingested(tmp_path)
    victim = bronze_files(pipe)[0]
    written = decode_bronze(victim.read_bytes(), "jsonl")
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 3])  # cut
    name = batch_name(victim.relative_to(pipe.settings.local_lake_path / "bronze").as_posix())
    assert name is not None and name.partition_id is not None
    # Event Hubs (the recording fake of its consumer client) holds the same events as the embedded hub.
    with LocalEventHub(pipe.settings.local_hub_path, partitions=None) as hub:
        events = hub.read(name.partition_id, -1, 10_000)
    client = FakeConsumerClient(
        {
            name.partition_id: [
                service_event(
                    e.sequence_number,
                    e.body,
                    offset=e.offset,
                    enqueued_time=e.enqueued_time,
                    partition_key=e.partition_key,
                    properties=e.properties,
                )
                for e in events
            ]
        }
    )

    report = run_repair(pipe.settings, hub=EventHubsRange(lambda: client, max_wait_time=0.01), rebuild=False)

    [repair] = report.repairs
    assert repair.error is None and repair.written and repair.path is not None
    assert client.calls[0]["starting_position"] == name.first_sequence_number
    repaired = LocalLake(pipe.settings.local_lake_path).read("bronze", repair.path)
    assert without_ingestion_time(decode_bronze(repaired, "jsonl")) == without_ingestion_time(written)
    assert victim.exists()  # kept beside its repair
    assert find_damaged_files(pipe.settings) == []
    again = run_repair(pipe.settings, hub=EventHubsRange(lambda: client, max_wait_time=0.01), rebuild=False)
    assert again.repairs == []


def test_a_repair_of_avro_bronze_writes_avro_that_reads_back_whole(tmp_path: Path) -> None:
    pipe = ingested(tmp_path, BRONZE_FORMAT="avro")
    victim = bronze_files(pipe)[-1]
    written = decode_bronze(victim.read_bytes(), "avro")
    victim.write_bytes(victim.read_bytes()[:100])  # the header cut: nothing readable

    [repair] = run_repair(pipe.settings, rebuild=False).repairs

    assert repair.damaged.reason == "bronze_unreadable" and repair.path is not None
    assert repair.path.endswith(".avro") and "-repair-" in repair.path
    repaired = decode_bronze(LocalLake(pipe.settings.local_lake_path).read("bronze", repair.path), "avro")
    assert without_ingestion_time(repaired) == without_ingestion_time(written)


def test_a_file_whose_events_are_not_in_the_hub_any_more_is_reported_in_one_line_and_kept(
    tmp_path: Path,
) -> None:
    pipe = ingested(tmp_path)
    real = batch_name(bronze_files(pipe)[0].relative_to(pipe.settings.local_lake_path / "bronze").as_posix())
    assert real is not None
    # Damaged, and named for sequence numbers the hub does not hold (as after its retention).
    gone = bronze_files(pipe)[0].with_name(
        f"p{real.partition_id}-{5000:020d}-{5099:020d}-{bronze_files(pipe)[0].name.split('-', 3)[3]}"
    )
    gone.write_bytes(b'{"SequenceNumber": 5000, "Body": "cut he')
    env = pipe.environment()

    listed = run_python(env, "-m", "pipeline", "repair", "--dry-run", timeout=120)
    failed = run_python(env, "-m", "pipeline", "repair", timeout=120)
    as_json = run_python(env, "-m", "pipeline", "repair", "--json", timeout=120)

    assert listed.returncode == 1 and listed.stdout.startswith("damaged: weather/"), listed.stdout
    assert failed.returncode == 1, failed.stderr
    [line] = failed.stdout.strip().splitlines()
    assert line.startswith("cannot repair weather/") and gone.name in line
    assert f"holds 0 of its 100 events (partition {real.partition_id}, 5000..5099)" in line
    assert "Traceback" not in failed.stderr
    report = json.loads(as_json.stdout)
    assert (report["ok"], report["damaged"], report["repaired"], report["failed"]) == (False, 1, 0, 1)
    assert gone.exists() and not list(gone.parent.glob("*-repair-*"))


def test_repair_with_nothing_damaged_says_so_and_changes_nothing(tmp_path: Path) -> None:
    pipe = ingested(tmp_path)
    before = sorted(p.name for p in bronze_files(pipe))

    result = run_python(pipe.environment(), "-m", "pipeline", "repair", timeout=120)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "no damaged bronze files: nothing to repair"
    assert sorted(p.name for p in bronze_files(pipe)) == before


def _without_records_in_file(path: Path) -> list[bytes]:
    """The file's lines as written before bronze records carried RecordsInFile."""
    lines = []
    for line in path.read_bytes().splitlines():
        record = json.loads(line)
        record.pop("RecordsInFile")
        lines.append(json.dumps(record).encode() + b"\n")
    return lines


def test_an_old_file_cut_on_a_line_boundary_is_found_by_the_events_the_hub_holds_for_it(
    tmp_path: Path,
) -> None:
    pipe = ingested(tmp_path)
    victim = bronze_files(pipe)[0]
    lines = _without_records_in_file(victim)
    victim.write_bytes(b"".join(lines[: len(lines) // 2]))  # nothing in it says it is short

    [damaged] = find_damaged_files(pipe.settings)

    assert damaged.file.endswith(victim.name) and damaged.reason == "bronze_incomplete"
    assert (damaged.records_readable, damaged.records_expected) == (len(lines) // 2, len(lines))
    assert "the hub holds for it are not in it" in damaged.problem


def test_a_deleted_quarantine_file_does_not_make_its_bronze_file_look_damaged(tmp_path: Path) -> None:
    pipe = ingested(tmp_path)
    for victim in bronze_files(pipe):  # old files: only the hub can tell what they should hold
        victim.write_bytes(b"".join(_without_records_in_file(victim)))
    [quarantine, *_] = sorted((pipe.settings.local_lake_path / "quarantine").rglob("*.jsonl"))
    quarantine.unlink()

    assert find_damaged_files(pipe.settings) == []
