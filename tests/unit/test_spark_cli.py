"""The `spark` and `reprocess` commands and the runner's settings mapping (no Spark started)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline.cli import UserError
from pipeline.commands import reprocess as reprocess_command
from pipeline.commands import spark as spark_command
from pipeline.spark_runner import lake_config
from settings import SettingsError, load_settings
from spark.job import build_parser as job_parser
from tests.fixtures.cli import parser_with

LAKE_ARGS = [
    *("--bronze-path", "/b", "--silver-table", "/s", "--quarantine-table", "/q"),
    *("--gold-table", "/g", "--checkpoint", "/c"),
]


def test_spark_command_parses_available_now_and_json() -> None:
    args = parser_with(spark_command).parse_args(["spark", "--available-now", "--json"])
    assert (args.available_now, args.json, args.handler) == (True, True, spark_command.handle)


def test_reprocess_command_reads_the_date_range() -> None:
    args = parser_with(reprocess_command).parse_args(
        ["reprocess", "--from", "2026-11-20", "--to", "2026-11-22"]
    )
    assert (str(args.start), str(args.end)) == ("2026-11-20", "2026-11-22")


def test_reprocess_command_rejects_a_date_that_is_not_iso(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser_with(reprocess_command).parse_args(["reprocess", "--from", "20/11/2026", "--to", "2026-11-22"])
    assert "expected a date as YYYY-MM-DD" in capsys.readouterr().err


def test_reprocess_command_refuses_a_range_that_ends_before_it_starts() -> None:
    args = parser_with(reprocess_command).parse_args(
        ["reprocess", "--from", "2026-11-22", "--to", "2026-11-20"]
    )
    with pytest.raises(UserError, match="before --from"):
        args.handler(args)


def test_runner_takes_lake_paths_and_format_from_settings(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "PIPELINE_HOME": str(tmp_path),
            "BRONZE_FORMAT": "avro",
            "BRONZE_STREAM": "s1",
            "GOLD_TABLE_URI": "/x/gold",
        },
        local_settings_file=tmp_path / "none.json",
    )
    lake = lake_config(settings)
    assert lake.bronze_path == str(tmp_path / "lake" / "bronze" / "s1")
    assert lake.bronze_format == "avro"
    assert lake.gold_table == "/x/gold"
    assert lake.silver_table == str(tmp_path / "lake" / "silver" / "weather")
    assert lake.checkpoint == str(tmp_path / "lake" / "_checkpoints" / "weather")


def test_the_stall_timeout_setting_defaults_to_15_minutes_and_refuses_a_negative_one(tmp_path: Path) -> None:
    def stall_timeout(**values: str) -> int:
        settings = load_settings(
            {"PIPELINE_HOME": str(tmp_path), **values}, local_settings_file=tmp_path / "none.json"
        )
        return settings.spark_stall_timeout_seconds

    assert stall_timeout() == 900
    assert stall_timeout(SPARK_STALL_TIMEOUT_SECONDS="0") == 0  # off
    with pytest.raises(SettingsError, match="SPARK_STALL_TIMEOUT_SECONDS"):
        stall_timeout(SPARK_STALL_TIMEOUT_SECONDS="-5")


def test_the_databricks_job_takes_the_stall_timeout_as_a_parameter() -> None:
    args = job_parser().parse_args([*LAKE_ARGS, "--stall-timeout-seconds", "120"])
    assert args.stall_timeout_seconds == 120
    assert job_parser().parse_args(LAKE_ARGS).stall_timeout_seconds == 900


def test_the_progress_line_names_duplicates_and_damaged_files_only_when_there_are_some() -> None:
    totals = dict(batches=2, bronze_rows=1_200, silver_inserted=1_000, duplicates_skipped=0)
    totals.update(quarantined=200, incomplete_files=0, gold_inserted=30, gold_updated=4)
    started = time.monotonic()

    clean = spark_command._line(totals, started)
    totals.update(duplicates_skipped=150, incomplete_files=1)
    troubled = spark_command._line(totals, started)

    assert clean == (
        "2 micro-batches · 1,200 bronze rows · 1,000 new silver · 200 quarantined · "
        "34 gold windows changed · 0s"
    )
    assert troubled == (
        "2 micro-batches · 1,200 bronze rows · 1,000 new silver · 150 duplicates skipped · "
        "1 damaged bronze file quarantined whole · 200 quarantined · 34 gold windows changed · 0s"
    )
