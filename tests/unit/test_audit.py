"""The audit's checks on small Arrow tables built here, with expected values worked out by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from pipeline.audit import SILVER_TYPES, AuditReport, Check, DamagedFile
from pipeline.audit.common import FIXED_POINT
from pipeline.audit.layer_checks import (
    check_bronze_silver,
    check_devices,
    check_silver_gold,
    first_per_event,
    quarantined_device_seqs,
    recompute_gold,
)
from pipeline.audit.reading import AuditedLake

T0 = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)
SILVER_SCHEMA = pa.schema(list(SILVER_TYPES.items()))


def silver(*rows: dict[str, Any]) -> pa.Table:
    defaults = {
        "device_id": "d1",
        "device_seq": None,
        "location": "Oslo",
        "event_time": T0,
        "temperature": 1.0,
        "humidity": 50.0,
        "wind_speed": 2.0,
        "precipitation": 0.0,
        "source_file": "file:/lake/bronze/weather/ingest_date=2026-11-22/hour=07/a.jsonl",
    }
    return pa.Table.from_pylist([defaults | row for row in rows], schema=SILVER_SCHEMA)


def test_gold_is_recomputed_per_five_minute_window_with_exact_sums() -> None:
    rows = silver(
        {"event_id": "a", "temperature": 0.1, "event_time": T0},
        {"event_id": "b", "temperature": 0.2, "event_time": T0 + timedelta(minutes=4, seconds=59)},
        {"event_id": "c", "temperature": 0.7, "precipitation": 1.25, "event_time": T0 + timedelta(minutes=5)},
    )

    gold = {(r["location"], r["window_start"]): r for r in recompute_gold(rows, 5).to_pylist()}

    first, second = int(T0.timestamp() * 1e6), int((T0 + timedelta(minutes=5)).timestamp() * 1e6)
    assert set(gold) == {("Oslo", first), ("Oslo", second)}
    assert gold[("Oslo", first)]["event_count"] == 2
    # 0.1 + 0.2 in nano-units is exactly 300,000,000: the average is 0.15, not 0.15000000000000002.
    assert gold[("Oslo", first)]["avg_temperature"] == 0.15
    assert gold[("Oslo", second)]["total_precipitation"] == 1.25
    assert gold[("Oslo", second)]["max_temperature"] == 0.7


def _gold_from(rows: pa.Table) -> pa.Table:
    gold = recompute_gold(rows, 5)
    return gold.set_column(
        1, "window_start", pa.array(gold["window_start"].to_numpy(), pa.timestamp("us", "UTC"))
    )


def test_gold_with_a_window_count_off_or_a_value_changed_is_caught_but_a_last_bit_is_not() -> None:
    rows = silver(
        {"event_id": "a", "location": "Oslo"},
        {"event_id": "b", "location": "Oslo"},
        {"event_id": "c", "location": "Lima"},
        {"event_id": "d", "location": "Pune", "humidity": 60.0},
    )
    gold = _gold_from(rows).to_pylist()
    by_location = {r["location"]: r for r in gold}
    by_location["Oslo"]["event_count"] = 1  # one Oslo event not counted
    by_location["Lima"]["avg_humidity"] += 0.01  # a value changed
    by_location["Pune"]["avg_humidity"] = 60.0 * (1 + 2e-16)  # a division's last bit
    table = pa.Table.from_pylist(gold, schema=_gold_from(rows).schema)

    check = check_silver_gold(rows, table, 5)

    assert check.counts["lost"] == 1
    assert check.counts["mismatched_windows"] == 2
    assert {e["location"] for e in check.examples["mismatched_windows"]} == {"Oslo", "Lima"}
    assert check.status == "failed"


def test_a_window_only_gold_has_is_unexpected_and_one_it_lacks_is_lost() -> None:
    rows = silver({"event_id": "a", "location": "Oslo"}, {"event_id": "b", "location": "Lima"})
    gold = _gold_from(silver({"event_id": "a", "location": "Oslo"}, {"event_id": "x", "location": "Rome"}))

    check = check_silver_gold(rows, gold, 5)

    assert (check.counts["lost"], check.counts["unexpected"]) == (1, 1)
    assert (check.counts["missing_windows"], check.counts["extra_windows"]) == (1, 1)


def test_one_row_per_event_keeps_the_first() -> None:
    rows = silver(
        {"event_id": "a", "temperature": 1.0}, {"event_id": "b"}, {"event_id": "a", "temperature": 9.0}
    )

    kept = first_per_event(rows)

    assert kept.column("event_id").to_pylist() == ["a", "b"]
    assert kept.column("temperature").to_pylist()[0] == 1.0


def _lake(ids_by_file: dict[str, list[str]]) -> AuditedLake:
    files = list(ids_by_file)
    ids = [i for f in files for i in ids_by_file[f]]
    index = [n for n, f in enumerate(files) for _ in ids_by_file[f]]
    bronze = pa.table({"EventId": pa.array(ids, pa.string()), "file": pa.array(index, pa.int32())})
    empty = pa.table({"EventId": pa.array([], pa.string())})
    return AuditedLake(bronze, files, empty, [])


def test_bronze_events_not_in_silver_are_pending_until_spark_has_read_their_file() -> None:
    read = "weather/ingest_date=2026-11-22/hour=07/read.jsonl"
    unread = "weather/ingest_date=2026-11-22/hour=08/unread.jsonl"
    lake = _lake({read: ["a", "b"], unread: ["c"]})
    rows = silver({"event_id": "a", "source_file": f"file:///home/lake/bronze/{read}"}, {"event_id": "z"})
    rejected = pa.table(
        {"event_id": pa.array(["a"], pa.string()), "source_file": [f"file:///home/lake/bronze/{read}"]}
    )

    check = check_bronze_silver(lake, rows, rejected)

    assert check.counts["lost"] == 1  # b: its file was read, b is nowhere
    assert check.examples["lost"] == [{"event_id": "b"}]
    assert check.counts["pending"] == 1  # c: its file not read yet
    assert check.counts["unexpected"] == 1  # z: in silver, in no bronze file
    assert check.counts["doubled"] == 1  # a: in silver and in the silver quarantine


def test_events_only_a_damaged_file_holds_are_damaged_not_lost_and_its_made_up_rows_not_unexpected() -> None:
    whole = "weather/ingest_date=2026-11-22/hour=07/whole.jsonl"
    cut = "weather/ingest_date=2026-11-22/hour=07/cut.avro"
    lake = _lake({whole: ["a"], cut: ["b", "c", "a"]})
    rows = silver({"event_id": "a", "source_file": f"file:///home/lake/bronze/{whole}"})
    # Spark read the damaged file: "b" is in the silver quarantine (bronze_incomplete), "c" is not
    # (a made-up record in the audit's reading of it), "x" is made up in Spark's.
    rejected = pa.table(
        {
            "event_id": pa.array(["b", "x"], pa.string()),
            "source_file": [f"file:///home/lake/bronze/{cut}"] * 2,
        }
    )
    damaged = [DamagedFile(cut, None, "bronze_incomplete", "cut", 3, 9, 9)]

    check = check_bronze_silver(lake, rows, rejected, damaged)
    without = check_bronze_silver(lake, rows, rejected)

    assert (check.counts["lost"], check.counts["damaged"], check.counts["unexpected"]) == (0, 1, 0)
    assert (without.counts["lost"], without.counts["unexpected"]) == (1, 1)


def test_device_seq_gaps_and_repeats_leave_out_numbers_a_quarantine_holds() -> None:
    rows = silver(
        *[
            {"event_id": f"e{s}-{i}", "device_id": "d1", "device_seq": s}
            for i, s in enumerate([0, 1, 3, 3, 6])
        ],
        {"event_id": "f0", "device_id": "d2", "device_seq": 5},
        {"event_id": "f1", "device_id": "d2", "device_seq": 6},
    )
    quarantined = quarantined_device_seqs(
        [
            '{"deviceId": "d1", "deviceSeq": 2, "temperature": 900}',
            '{"deviceId": "d1", "deviceSeq": 99}',  # outside d1's numbers: explains nothing
            '{"deviceId": "d1", "deviceSeq": 18446744073709551616}',  # too large for a long
            "not json", "[1]", None,
        ]
    )  # fmt: skip

    check = check_devices(rows, quarantined)

    assert check.counts["devices"] == 2
    assert check.counts["devices_with_gaps"] == 1
    assert check.counts["missing_seq"] == 2  # 4 and 5 (2 is in quarantine)
    assert check.counts["missing_seq_quarantined"] == 1
    assert check.counts["repeated_seq"] == 1
    assert check.examples["gaps"] == [{"device_id": "d1", "missing": [[2, 2], [4, 5]]}]
    assert check.status == "warning"


def test_warnings_do_not_fail_the_audit_but_a_failed_check_does() -> None:
    warned = Check(
        "devices", "d", counts={"devices_with_gaps": 3}, failing=("devices_with_gaps",), report_only=True
    )
    clean = Check("bronze_silver", "b", counts={"lost": 0}, failing=("lost",))
    lost = Check("silver_gold", "s", counts={"lost": 2}, failing=("lost",))

    assert AuditReport([warned, clean]).ok
    report = AuditReport([warned, clean, lost])
    assert not report.ok
    assert report.as_json()["lost"] == 2
    assert report.as_json()["devices_with_gaps"] == 3


def test_gold_is_recomputed_with_the_spark_jobs_fixed_point() -> None:
    from spark import transforms

    assert FIXED_POINT == transforms._FIXED_POINT
