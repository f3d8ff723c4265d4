"""The sync's plain logic: collapsing the change feed, cleaning rows, planning, retries."""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from functions.sync_core import (
    GOLD_COLUMNS,
    ApplyResult,
    GoldRead,
    RunInfo,
    SyncPlan,
    backoff_delays,
    clean_row,
    latest_change_per_key,
    plan_sync,
    run_sync,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def gold(location: str | None = "Oslo", minute: int = 0, temp: float = 1.5, **extra: Any) -> dict[str, Any]:
    start = T0 + timedelta(minutes=minute) if minute is not None else None
    row = {
        "location": location,
        "window_start": start,
        "window_end": start + timedelta(minutes=5) if start else None,
        "event_count": 4,
        "avg_temperature": temp,
        "min_temperature": temp - 1,
        "max_temperature": temp + 1,
        "avg_humidity": 55.0,
        "avg_wind_speed": 3.0,
        "max_wind_speed": 6.0,
        "total_precipitation": 0.25,
        "dominant_wind_direction": "NW",
        "dominant_conditions": "Cloudy",
        "updated_at": T0 + timedelta(hours=1),
    }
    row.update(extra)
    return row


def change(kind: str, version: int, **row: Any) -> dict[str, Any]:
    return {**gold(**row), "_change_type": kind, "_commit_version": version}


def naive(dt: datetime) -> datetime:
    return dt.astimezone(UTC).replace(tzinfo=None)


# --- cleaning ---------------------------------------------------------------------------------
def test_clean_row_returns_values_in_column_order_with_naive_utc_timestamps():
    berlin = timezone(timedelta(hours=1))
    row, reason = clean_row(gold(window_start=datetime(2026, 3, 1, 13, 0, tzinfo=berlin)))
    assert reason is None and row is not None
    assert len(row) == len(GOLD_COLUMNS)
    assert row[0] == "Oslo"
    assert row[1] == datetime(2026, 3, 1, 12, 0)  # 13:00+01:00 is 12:00 UTC
    assert row[GOLD_COLUMNS.index("event_count")] == 4
    assert row[GOLD_COLUMNS.index("dominant_conditions")] == "Cloudy"


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"location": None}, "null_key:location"),
        ({"location": "   "}, "null_key:location"),
        ({"window_start": None}, "null_key:window_start"),
        ({"avg_temperature": math.nan}, "non_finite:avg_temperature"),
        ({"max_wind_speed": math.inf}, "non_finite:max_wind_speed"),
        ({"total_precipitation": -math.inf}, "non_finite:total_precipitation"),
        ({"event_count": math.nan}, "non_finite:event_count"),
        ({"avg_humidity": "wet"}, "type:avg_humidity"),
        ({"updated_at": "yesterday"}, "type:updated_at"),
    ],
)
def test_rows_that_cannot_be_written_get_a_stable_reason(override, reason):
    row, got = clean_row(gold(**override))
    assert row is None
    assert got == reason


def test_nullable_measures_may_be_null():
    row, reason = clean_row(gold(avg_wind_speed=None, dominant_conditions=None))
    assert reason is None and row is not None
    assert row[GOLD_COLUMNS.index("avg_wind_speed")] is None


# --- the change feed ----------------------------------------------------------------------------
def test_change_feed_keeps_the_last_change_per_key_and_drops_preimages():
    feed = [
        change("insert", 3, location="Oslo", temp=1.0),
        change("update_preimage", 4, location="Oslo", temp=1.0),
        change("update_postimage", 4, location="Oslo", temp=2.0),
        change("insert", 3, location="Rome", temp=10.0),
        change("delete", 5, location="Rome", temp=10.0),
    ]
    latest = latest_change_per_key(feed)
    by_location = {c["location"]: c for c in latest}
    assert set(by_location) == {"Oslo", "Rome"}
    assert by_location["Oslo"]["avg_temperature"] == 2.0
    assert by_location["Rome"]["_change_type"] == "delete"


def test_an_overwrite_commit_reports_delete_and_insert_and_the_insert_wins():
    feed = [
        change("insert", 7, location="Oslo", temp=9.0),
        change("delete", 7, location="Oslo", temp=1.0),
    ]
    (latest,) = latest_change_per_key(feed)
    assert latest["_change_type"] == "insert"
    assert latest["avg_temperature"] == 9.0


def test_plan_from_change_feed_splits_upserts_deletes_and_skips():
    read = GoldRead(
        from_version=2,
        to_version=5,
        mode="cdf",
        rows=[
            change("insert", 3, location="Oslo", temp=1.0),
            change("update_postimage", 4, location="Oslo", temp=2.0),
            change("insert", 3, location="Rome", temp=10.0),
            change("delete", 5, location="Rome"),
            change("insert", 4, location="Bergen", temp=math.nan),
            change("insert", 4, location=None),
        ],
    )
    plan = plan_sync(read)
    assert (plan.from_version, plan.to_version, plan.replace_all) == (2, 5, False)
    assert [(r[0], r[GOLD_COLUMNS.index("avg_temperature")]) for r in plan.upserts] == [("Oslo", 2.0)]
    assert plan.deletes == [("Rome", naive(T0))]
    assert plan.kept == [("Bergen", naive(T0))]
    assert plan.skipped == Counter({"non_finite:avg_temperature": 1, "null_key:location": 1})
    assert plan.rows_skipped == 2
    assert plan.max_source_updated_at == naive(T0 + timedelta(hours=1))


def test_snapshot_plan_deduplicates_keys_keeping_the_latest_update():
    older = gold(temp=1.0, updated_at=T0)
    newer = gold(temp=2.0, updated_at=T0 + timedelta(minutes=10))
    plan = plan_sync(GoldRead(-1, 0, "snapshot", [newer, older, gold(location="Rome")]))
    assert plan.replace_all
    temps = {r[0]: r[GOLD_COLUMNS.index("avg_temperature")] for r in plan.upserts}
    assert temps == {"Oslo": 2.0, "Rome": 1.5}
    assert len(plan.upserts) == 2


def test_backoff_is_exponential_and_capped():
    assert backoff_delays(5, 0.5, 3.0) == [0.5, 1.0, 2.0, 3.0]
    assert backoff_delays(1, 0.5, 3.0) == []


# --- one run against recording fakes ------------------------------------------------------------------
class RecordingWarehouse:
    """A fake Warehouse that records what it was asked and can fail the first N applies."""

    def __init__(self, watermark: int = -1, failures: list[BaseException] | None = None, transient=True):
        self.watermark = watermark
        self.failures = list(failures or [])
        self.transient = transient
        self.ready = False
        self.applied: list[tuple[SyncPlan, int, RunInfo]] = []

    def schema_ready(self) -> bool:
        return self.ready

    def init_schema(self) -> None:
        self.ready = True

    def read_watermark(self) -> int:
        return self.watermark

    def apply(self, plan: SyncPlan, expected_watermark: int, run: RunInfo) -> ApplyResult:
        self.applied.append((plan, expected_watermark, run))
        if self.failures:
            raise self.failures.pop(0)
        if expected_watermark != self.watermark:
            return ApplyResult(applied=False)
        self.watermark = plan.to_version
        return ApplyResult(True, len(plan.upserts), len(plan.deletes))

    def is_transient(self, exc: BaseException) -> bool:
        return self.transient and isinstance(exc, sqlite3.OperationalError)


class FixedSource:
    def __init__(self, read: GoldRead | None):
        self.read = read
        self.asked: list[int] = []

    def read_changes(self, after_version: int) -> GoldRead | None:
        self.asked.append(after_version)
        return self.read


def test_run_creates_the_schema_and_reports_no_gold_when_gold_is_missing():
    warehouse = RecordingWarehouse()
    summary = run_sync(FixedSource(None), warehouse)
    assert warehouse.ready
    assert summary.status == "no_gold"
    assert warehouse.applied == []


def test_run_reads_after_the_watermark_and_advances_it():
    warehouse = RecordingWarehouse(watermark=3)
    source = FixedSource(GoldRead(3, 4, "cdf", [change("insert", 4)]))
    summary = run_sync(source, warehouse)
    assert source.asked == [3]
    assert summary.status == "synced"
    assert (summary.from_version, summary.to_version, summary.rows_upserted) == (3, 4, 1)
    assert warehouse.watermark == 4


def test_run_with_nothing_new_writes_nothing():
    warehouse = RecordingWarehouse(watermark=4)
    summary = run_sync(FixedSource(GoldRead(4, 4, "cdf", [])), warehouse)
    assert summary.status == "up_to_date"
    assert warehouse.applied == []


def test_transient_errors_are_retried_with_backoff_then_succeed():
    busy = sqlite3.OperationalError("database is locked")
    warehouse = RecordingWarehouse(failures=[busy, busy])
    slept: list[float] = []
    summary = run_sync(
        FixedSource(GoldRead(-1, 0, "snapshot", [gold()])), warehouse, base_delay=0.25, sleep=slept.append
    )
    assert summary.status == "synced"
    assert summary.attempts == 3
    assert slept == [0.25, 0.5]
    # every attempt is the same run, against the same expected watermark
    assert {a[2].run_id for a in warehouse.applied} == {summary.run_id}
    assert [a[1] for a in warehouse.applied] == [-1, -1, -1]


def test_a_persistent_transient_error_is_raised_after_the_last_attempt():
    busy = sqlite3.OperationalError("database is locked")
    warehouse = RecordingWarehouse(failures=[busy] * 10)
    slept: list[float] = []
    with pytest.raises(sqlite3.OperationalError):
        run_sync(
            FixedSource(GoldRead(-1, 0, "snapshot", [gold()])), warehouse, max_attempts=4, sleep=slept.append
        )
    assert len(warehouse.applied) == 4
    assert len(slept) == 3
    assert warehouse.watermark == -1


def test_a_non_transient_error_is_raised_at_once():
    warehouse = RecordingWarehouse(failures=[ValueError("bad")])
    slept: list[float] = []
    with pytest.raises(ValueError):
        run_sync(FixedSource(GoldRead(-1, 0, "snapshot", [gold()])), warehouse, sleep=slept.append)
    assert len(warehouse.applied) == 1
    assert slept == []


def test_losing_the_compare_and_set_reports_superseded():
    warehouse = RecordingWarehouse(watermark=1)

    class MovingSource(FixedSource):
        def read_changes(self, after_version: int) -> GoldRead | None:
            warehouse.watermark = 2  # another run commits while this one reads gold
            return super().read_changes(after_version)

    summary = run_sync(MovingSource(GoldRead(1, 2, "cdf", [change("insert", 2)])), warehouse)
    assert summary.status == "superseded"
    assert summary.rows_upserted == 0
    assert warehouse.watermark == 2


def test_skipped_rows_are_counted_and_logged(caplog):
    read = GoldRead(-1, 0, "snapshot", [gold(), gold(location=None), gold(location="Rome", temp=math.inf)])
    with caplog.at_level("WARNING"):
        summary = run_sync(FixedSource(read), RecordingWarehouse())
    assert summary.rows_skipped == 2
    assert summary.skip_reasons == {"null_key:location": 1, "non_finite:avg_temperature": 1}
    assert "skipped 2 gold rows" in caplog.text
