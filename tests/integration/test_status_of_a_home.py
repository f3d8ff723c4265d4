"""`pipeline status` over a hand-built state folder whose Delta tables and SQL hold known rows."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from pipeline import layers
from pipeline.commands import status
from tests.fixtures.state_home import bronze_record, build_home, home_settings, write_jsonl

pytestmark = pytest.mark.integration


def test_status_counts_every_layer_of_a_hand_built_home(tmp_path: Path) -> None:
    build_home(tmp_path)
    counts = layers.count_layers(home_settings(tmp_path))
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
    assert sorted(layers.freshness_seconds(home_settings(tmp_path))) == [30.0, 30.0, 60.0, 60.0]


def test_events_processed_after_the_last_sync_are_not_yet_fresh(tmp_path: Path) -> None:
    build_home(tmp_path)
    with sqlite3.connect(tmp_path / "warehouse.db") as con:
        con.execute("DELETE FROM sync_runs WHERE run_id = 2")
    assert sorted(layers.freshness_seconds(home_settings(tmp_path))) == [30.0, 30.0]


def test_status_line_reports_rate_and_lag_per_stage(tmp_path: Path) -> None:
    from pipeline.orchestrate import sample_lag

    build_home(tmp_path)
    first = sample_lag(home_settings(tmp_path))
    assert (first.hub, first.ingest_lag, first.gold_version, first.watermark) == (7, 4, 1, 1)
    line = first.line(None)
    assert "lag: ingest 4 ev, Spark 0 files, sync 0 versions" in line

    # A bronze file written after silver's last commit is one the Spark job has not seen yet.
    newer = tmp_path / "lake" / "bronze" / "weather" / "ingest_date=2026-11-22" / "hour=08" / "p0-3-3.jsonl"
    write_jsonl(newer, [bronze_record("e9")])
    os.utime(newer, (time.time() + 5, time.time() + 5))
    assert sample_lag(home_settings(tmp_path)).spark_pending_files == 1
