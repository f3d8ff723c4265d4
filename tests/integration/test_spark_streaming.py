"""The streaming job and reprocessing on a temp lake: bronze files -> availableNow -> Delta tables.

Expected gold is computed here in plain Python from the events themselves (the oracle), never by
the code under test.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError
from pyspark.errors import StreamingQueryException

from contract.gold import GOLD_VALUE_COLUMNS
from spark.bronze_source import FileSource
from spark.delta_tables import DeltaTables
from spark.job import JobOptions, run_stream
from spark.lake import LakeConfig
from spark.reprocess import reprocess_range
from spark.watchdog import StalledQueryError
from tests.fixtures.bronze_files import envelope, lake_at, weather_body, write_bronze_file

pytestmark = [pytest.mark.spark, pytest.mark.integration, pytest.mark.slow]

DAY = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
WINDOW = 5
LOCATIONS = ["Bergen", "Oslo", "Tromsø"]
WINDS = ["N", "NE", "S", "SW"]
CONDITIONS = ["Clear", "Cloudy", "Rain"]
GOLD_VALUES = list(GOLD_VALUE_COLUMNS)


def events(n: int, start: datetime, seed: int, prefix: str) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        weather_body(
            rng.choice(LOCATIONS),
            start + timedelta(seconds=rng.randrange(0, 1800)),
            event_id=f"{prefix}-{i}",
            temperature=round(rng.uniform(-10, 25), 1),
            humidity=round(rng.uniform(20, 100), 1),
            wind_speed=round(rng.uniform(0, 30), 2),
            wind_direction=rng.choice(WINDS),
            precipitation=round(rng.uniform(0, 3), 1),
            conditions=rng.choice(CONDITIONS),
        )
        for i in range(n)
    ]


def write(lake: LakeConfig, bodies: list[Any], partition: str, first_seq: int, enqueued: datetime) -> int:
    """Write bodies as one bronze file of one partition; returns the next sequence number."""
    records = [
        envelope(body, partition_id=partition, sequence_number=first_seq + i, enqueued_time=enqueued)
        for i, body in enumerate(bodies)
    ]
    write_bronze_file(Path(lake.bronze_path).parent, "weather", records, lake.bronze_format)
    return first_seq + len(bodies)


def stream(spark: Any, lake: LakeConfig, stall_timeout_seconds: float = 0, **kwargs: Any) -> dict[str, Any]:
    options = JobOptions(
        lake=lake,
        window_minutes=WINDOW,
        bronze_source="files",
        stall_timeout_seconds=stall_timeout_seconds,
        stall_restarts=1,
    )
    return run_stream(spark, options, **kwargs)


def reprocess(spark: Any, lake: LakeConfig, start: date, end: date) -> dict[str, Any]:
    return reprocess_range(FileSource(spark, lake), DeltaTables(spark, lake, WINDOW), start, end)


def oracle_gold(bodies: list[dict[str, Any]]) -> dict[tuple[str, datetime], dict[str, Any]]:
    """Gold computed directly from the distinct events."""
    unique = {b["eventId"]: b for b in bodies}.values()
    groups: dict[tuple[str, datetime], list[dict[str, Any]]] = defaultdict(list)
    for body in unique:
        at = datetime.fromisoformat(body["eventTime"].replace("Z", "+00:00"))
        start = at.replace(minute=at.minute - at.minute % WINDOW, second=0, microsecond=0)
        groups[(body["location"], start)].append(body)

    def dominant(values: list[str]) -> str:
        counts = Counter(values)
        return min(counts, key=lambda v: (-counts[v], v))

    out = {}
    for (location, start), rows in groups.items():
        n = len(rows)
        out[(location, start)] = {
            "window_end": start + timedelta(minutes=WINDOW),
            "event_count": n,
            "avg_temperature": pytest.approx(sum(r["temperature"] for r in rows) / n),
            "min_temperature": min(r["temperature"] for r in rows),
            "max_temperature": max(r["temperature"] for r in rows),
            "avg_humidity": pytest.approx(sum(r["humidity"] for r in rows) / n),
            "avg_wind_speed": pytest.approx(sum(r["windSpeed"] for r in rows) / n),
            "max_wind_speed": max(r["windSpeed"] for r in rows),
            "total_precipitation": pytest.approx(sum(r["precipitation"] for r in rows)),
            "dominant_wind_direction": dominant([r["windDirection"] for r in rows]),
            "dominant_conditions": dominant([r["conditions"] for r in rows]),
        }
    return out


def gold(lake: LakeConfig, with_updated_at: bool = False) -> dict[tuple[str, datetime], dict[str, Any]]:
    rows = DeltaTable(lake.gold_table).to_pyarrow_table().to_pylist()
    keep = GOLD_VALUES + (["updated_at"] if with_updated_at else [])
    return {(r["location"], r["window_start"]): {k: r[k] for k in keep} for r in rows}


def silver_ids(lake: LakeConfig) -> list[str]:
    return sorted(DeltaTable(lake.silver_table).to_pyarrow_table(columns=["event_id"]).column(0).to_pylist())


def silver_count(lake: LakeConfig) -> int:
    """Rows in silver, or 0 while the job has not created the table yet."""
    try:
        return len(silver_ids(lake))
    except TableNotFoundError:
        return 0


def versions(lake: LakeConfig) -> tuple[int, int, int]:
    return tuple(DeltaTable(t).version() for t in (lake.silver_table, lake.quarantine_table, lake.gold_table))  # type: ignore[return-value]


@pytest.mark.parametrize("fmt", ["jsonl", "avro"])
def test_bronze_files_reach_delta_once_and_later_files_are_picked_up_incrementally(
    spark: Any, tmp_path: Path, fmt: str
) -> None:
    lake = lake_at(tmp_path, fmt)
    first = events(60, DAY, seed=1, prefix="a")
    seq = write(
        lake, [*first[:30], b'{"eventId": "bad", "location": ""}'], "0", 0, DAY + timedelta(minutes=31)
    )
    write(lake, first[30:], "1", 0, DAY + timedelta(minutes=31))

    totals = stream(spark, lake)

    assert silver_ids(lake) == sorted(b["eventId"] for b in first)
    assert gold(lake) == oracle_gold(first)
    quarantine = DeltaTable(lake.quarantine_table).to_pyarrow_table().to_pylist()
    assert [(q["event_id"], q["reasons"][:2]) for q in quarantine] == [
        ("bad", ["missing:deviceId", "length:location"])
    ]
    assert totals["bronze_rows"] == 61

    before = versions(lake)
    again = stream(spark, lake)
    assert again["batches"] == 0
    assert versions(lake) == before

    later = events(40, DAY + timedelta(minutes=20), seed=2, prefix="b")
    write(lake, later, "0", seq, DAY + timedelta(minutes=51))
    third = stream(spark, lake)

    assert third["bronze_rows"] == 40
    assert silver_ids(lake) == sorted(b["eventId"] for b in first + later)
    assert gold(lake) == oracle_gold(first + later)


def test_a_late_event_and_a_late_duplicate_in_a_later_batch_give_the_gold_of_one_batch_over_all_events(
    spark: Any, tmp_path: Path
) -> None:
    batch_one = events(50, DAY, seed=3, prefix="c")
    two_hours_late = weather_body("Oslo", DAY - timedelta(hours=2), event_id="late", temperature=-40.0)
    duplicate = batch_one[7]
    batch_two = [two_hours_late, duplicate, *events(10, DAY + timedelta(minutes=30), seed=4, prefix="d")]

    incremental = lake_at(tmp_path / "incremental", "jsonl.gz")
    write(incremental, batch_one, "0", 0, DAY + timedelta(minutes=31))
    stream(spark, incremental)
    write(incremental, batch_two, "2", 0, DAY + timedelta(hours=1, minutes=31))
    stream(spark, incremental)

    single = lake_at(tmp_path / "single", "jsonl.gz")
    write(single, batch_one, "0", 0, DAY + timedelta(minutes=31))
    write(single, batch_two, "2", 0, DAY + timedelta(hours=1, minutes=31))
    stream(spark, single)

    expected = oracle_gold(batch_one + batch_two)
    assert gold(incremental) == expected
    assert gold(single) == expected
    assert expected[("Oslo", DAY - timedelta(hours=2))]["event_count"] == 1
    assert (
        silver_ids(incremental) == silver_ids(single) == sorted({b["eventId"] for b in batch_one + batch_two})
    )


def lake_with_one_file(tmp_path: Path, seed: int, prefix: str) -> tuple[LakeConfig, list[dict[str, Any]]]:
    """A lake whose bronze is one file: 40 valid events and one that is not JSON."""
    lake = lake_at(tmp_path, "jsonl")
    bodies = events(40, DAY, seed=seed, prefix=prefix)
    write(lake, [*bodies, b"not json"], "0", 0, DAY + timedelta(minutes=31))
    return lake, bodies


def assert_tables_hold_each_event_once(lake: LakeConfig, bodies: list[dict[str, Any]]) -> None:
    """Silver has every valid event once, quarantine the one bad event, gold the oracle's windows."""
    assert silver_ids(lake) == sorted(b["eventId"] for b in bodies)
    assert DeltaTable(lake.quarantine_table).to_pyarrow_table().num_rows == 1
    assert gold(lake) == oracle_gold(bodies)


def test_a_crash_after_the_silver_write_before_the_checkpoint_commit_leaves_no_duplicate_after_restart(
    spark: Any, tmp_path: Path
) -> None:
    lake, bodies = lake_with_one_file(tmp_path, seed=5, prefix="e")

    def crash_after_silver(stage: str, batch_id: int) -> None:
        if stage == "silver":
            raise RuntimeError("simulated crash before the checkpoint commit")

    with pytest.raises(StreamingQueryException):
        stream(spark, lake, hook=crash_after_silver)
    assert silver_ids(lake) == sorted(b["eventId"] for b in bodies)  # the write happened
    assert not (Path(lake.checkpoint) / "commits" / "0").exists()  # the batch was not committed

    replay = stream(spark, lake)

    assert replay["batches"] == 1 and replay["replayed_writes_skipped"] == 1
    assert_tables_hold_each_event_once(lake, bodies)


def stall_in_a_python_worker(spark: Any, marker: Path) -> None:
    """Run a Spark job whose Python task stops making progress, as the hang seen in the job did
    (the task thread waiting for a Python worker's Arrow output), unless ``marker`` exists."""

    def never_answer(batches: Any) -> Any:
        import time as worker_time  # (runs in the Python worker)

        if not marker.exists():
            worker_time.sleep(3600)
        yield from batches

    spark.range(1).mapInArrow(never_answer, "id long").collect()


def test_a_stalled_micro_batch_is_stopped_and_replayed_to_the_result_of_an_uninterrupted_run(
    spark: Any, tmp_path: Path
) -> None:
    lake, bodies = lake_with_one_file(tmp_path, seed=11, prefix="s")
    answered = tmp_path / "answered"
    stalls: list[int] = []

    def stall_once_after_silver(stage: str, batch_id: int) -> None:
        if stage == "silver" and not stalls:
            stalls.append(batch_id)
            stall_in_a_python_worker(spark, answered)  # until the watchdog stops the query
        answered.touch()  # the replayed batch's workers answer

    started = time.monotonic()
    totals = stream(spark, lake, stall_timeout_seconds=5, hook=stall_once_after_silver)

    assert stalls == [0] and totals["stalls"] == 1
    assert time.monotonic() - started < 60  # not the hour the stalled worker would take
    assert totals["batches"] == 1 and totals["replayed_writes_skipped"] == 1  # silver's write, replayed
    assert_tables_hold_each_event_once(lake, bodies)
    assert (Path(lake.checkpoint) / "commits" / "0").exists()


def test_a_query_that_keeps_stalling_fails_with_a_clear_error_and_resumes_on_the_next_run(
    spark: Any, tmp_path: Path
) -> None:
    lake = lake_at(tmp_path, "jsonl")
    bodies = events(20, DAY, seed=12, prefix="t")
    write(lake, bodies, "0", 0, DAY + timedelta(minutes=31))
    answered = tmp_path / "answered"
    stalled: list[int] = []

    def always_stall(stage: str, batch_id: int) -> None:
        if stage == "gold":
            stalled.append(batch_id)
            stall_in_a_python_worker(spark, answered)

    with pytest.raises(StalledQueryError, match="stalled 2 times"):
        stream(spark, lake, stall_timeout_seconds=8, hook=always_stall)
    assert stalled == [0, 0]  # the first run and the one restart (stall_restarts=1)
    assert not (Path(lake.checkpoint) / "commits" / "0").exists()

    answered.touch()
    resumed = stream(spark, lake)

    assert resumed["stalls"] == 0 and resumed["batches"] == 1
    assert silver_ids(lake) == sorted(b["eventId"] for b in bodies)
    assert gold(lake) == oracle_gold(bodies)


def test_reprocessing_equals_streaming_and_a_rerun_changes_nothing(spark: Any, tmp_path: Path) -> None:
    day_one = events(40, DAY, seed=6, prefix="f")
    day_two = events(30, DAY + timedelta(days=1), seed=7, prefix="g")
    late = weather_body("Bergen", DAY - timedelta(hours=3), event_id="late")
    streamed = lake_at(tmp_path / "streamed", "jsonl")
    seq = write(streamed, day_one, "0", 0, DAY + timedelta(minutes=31))
    stream(spark, streamed)
    write(streamed, [*day_two, late, day_one[0]], "0", seq, DAY + timedelta(days=1, minutes=31))
    torn = (
        Path(streamed.bronze_path)
        / "ingest_date=2026-11-21"
        / "hour=10"
        / "p5-00000000000000000000-00000000000000000001.jsonl"
    )
    torn.write_text('{"SequenceNumber": 0, "Body": "{}"}\n{"SequenceNumber": 1, "Bo\n')
    stream(spark, streamed)
    quarantined = (
        DeltaTable(streamed.quarantine_table).to_pyarrow_table(columns=["reasons", "body"]).to_pylist()
    )
    assert sorted(q["body"] for q in quarantined) == ['{"SequenceNumber": 1, "Bo', "{}"]
    streamed_gold = gold(streamed, with_updated_at=True)
    streamed_silver = DeltaTable(streamed.silver_table).to_pyarrow_table().sort_by("event_id")

    counts = reprocess(spark, streamed, date(2026, 11, 20), date(2026, 11, 21))

    assert counts["silver_rows"] == 71
    assert (counts["silver_inserted"], counts["silver_updated"], counts["silver_deleted"]) == (0, 0, 0)
    assert (counts["gold_inserted"], counts["gold_updated"], counts["gold_deleted"]) == (0, 0, 0)
    assert gold(streamed, with_updated_at=True) == streamed_gold
    assert DeltaTable(streamed.silver_table).to_pyarrow_table().sort_by("event_id") == streamed_silver
    assert (
        counts["quarantined"] == 0 and DeltaTable(streamed.quarantine_table).to_pyarrow_table().num_rows == 2
    )

    rebuilt = lake_at(tmp_path / "rebuilt", "jsonl")
    for path in Path(streamed.bronze_path).rglob("*.jsonl"):
        target = Path(rebuilt.bronze_path) / path.relative_to(streamed.bronze_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    reprocess(spark, rebuilt, date(2026, 11, 20), date(2026, 11, 21))

    assert gold(rebuilt) == gold(streamed) == oracle_gold([*day_one, *day_two, late])
    assert silver_ids(rebuilt) == silver_ids(streamed)


def test_a_rebuild_after_bronze_format_changed_reads_the_files_of_every_format(
    spark: Any, tmp_path: Path
) -> None:
    # History written as JSON lines, then gzip'd JSON lines, then (BRONZE_FORMAT=avro) Avro.
    written = [events(25, DAY + timedelta(hours=h), seed=20 + h, prefix=f"fmt{h}") for h in range(3)]
    for hour, (fmt, bodies) in enumerate(zip(("jsonl", "jsonl.gz", "avro"), written, strict=True)):
        write(lake_at(tmp_path, fmt), bodies, "0", 100 * hour, DAY + timedelta(hours=hour, minutes=31))
    now_avro = lake_at(tmp_path, "avro")

    counts = reprocess(spark, now_avro, date(2026, 11, 20), date(2026, 11, 20))

    every_event = [body for bodies in written for body in bodies]
    assert counts["silver_rows"] == len(every_event) == 75
    assert silver_ids(now_avro) == sorted(b["eventId"] for b in every_event)
    assert gold(now_avro) == oracle_gold(every_event)


def test_a_processing_time_trigger_keeps_picking_up_files_until_stopped(spark: Any, tmp_path: Path) -> None:
    lake = lake_at(tmp_path, "jsonl")
    bodies = events(20, DAY, seed=8, prefix="h")
    stop = threading.Event()
    result: dict[str, Any] = {}
    # An idle query waits between triggers: that is not a stall, however long it lasts.
    options = JobOptions(
        lake=lake, window_minutes=WINDOW, trigger_seconds=1, bronze_source="files", stall_timeout_seconds=4
    )
    runner = threading.Thread(target=lambda: result.update(run_stream(spark, options, stop=stop)))
    runner.start()
    try:
        write(lake, bodies[:10], "0", 0, DAY + timedelta(minutes=31))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and silver_count(lake) < 10:
            time.sleep(0.5)
        time.sleep(6)  # idle, longer than the stall timeout
        write(lake, bodies[10:], "0", 10, DAY + timedelta(minutes=32))
        while time.monotonic() < deadline and silver_count(lake) < 20:
            time.sleep(0.5)
    finally:
        stop.set()
        runner.join(timeout=120)
    assert not runner.is_alive()
    assert result["batches"] >= 2 and result["silver_inserted"] == 20 and result["stalls"] == 0
    assert gold(lake) == oracle_gold(bodies)


def damage(path: Path, how: str) -> None:
    """Damage a bronze file the ways storage and people do."""
    data = path.read_bytes()
    if how == "cut mid-line":
        path.write_bytes(data[: len(data) // 2])
    elif how == "cut on a line boundary":
        lines = data.splitlines(keepends=True)
        path.write_bytes(b"".join(lines[: len(lines) // 2]))
    elif how == "16 bytes overwritten":
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(range(16)) + data[middle + 16 :])
    else:
        raise ValueError(how)


def quarantined_files(lake: LakeConfig) -> dict[str, set[tuple[str, ...]]]:
    rows = DeltaTable(lake.quarantine_table).to_pyarrow_table(columns=["source_file", "reasons"]).to_pylist()
    found: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for row in rows:
        found[Path(row["source_file"]).name].add(tuple(row["reasons"]))
    return found


@pytest.mark.parametrize(
    ("fmt", "how"),
    [("jsonl", "cut mid-line"), ("jsonl", "cut on a line boundary"), ("avro", "16 bytes overwritten")],
)
def test_a_damaged_bronze_file_is_quarantined_whole_and_the_stream_goes_on(
    spark: Any, tmp_path: Path, fmt: str, how: str
) -> None:
    lake = lake_at(tmp_path, fmt)
    damaged_bodies = events(600, DAY, seed=13, prefix="x")
    write(lake, damaged_bodies, "0", 0, DAY + timedelta(minutes=31))
    (damaged,) = Path(lake.bronze_path).rglob(f"*.{fmt}")
    damage(damaged, how)
    healthy = events(50, DAY, seed=14, prefix="y")
    write(lake, healthy, "1", 0, DAY + timedelta(minutes=31))

    totals = stream(spark, lake)
    later = events(20, DAY + timedelta(minutes=40), seed=15, prefix="z")
    write(lake, later, "1", 50, DAY + timedelta(minutes=71))
    following = stream(spark, lake)

    # Nothing of the damaged file reaches silver or gold; the other files do, and later ones too.
    assert silver_ids(lake) == sorted(b["eventId"] for b in healthy + later)
    assert gold(lake) == oracle_gold(healthy + later)
    assert totals["incomplete_files"] == 1 and following["batches"] == 1
    reasons = quarantined_files(lake)
    assert set(reasons) == {damaged.name}  # every row the file still yields, each with the reason
    assert all("bronze_incomplete" in r for r in reasons[damaged.name])
    assert 0 < totals["quarantined"] < 600
