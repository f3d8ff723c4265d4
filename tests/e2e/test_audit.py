"""`pipeline audit` through its CLI, on a real run and on copies of it with one fault each.

One run (producer with bad, duplicate and late events, then `pipeline run --once`) builds a state
folder; each fault test copies it, breaks one thing the way an accident would (a bronze file
deleted, a SQL row edited, a silver row doubled, a record copied into quarantine), and checks that
the audit reports exactly that, with the exit code. Expected counts come from the files the test
touched, never from the audit's own code.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable, write_deltalake

from pipeline.orchestrate import LOCATION_OVERRIDES
from tests.fixtures.cli import run_python

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.spark, pytest.mark.integration]

TOP_KEYS = {"ok", "lost", "doubled", "sql_mismatches", "devices_with_gaps", "checks"}
CHECKS = {"hub_bronze", "bronze_files", "bronze_silver", "silver_gold", "gold_sql", "devices"}


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update({name: "" for name in LOCATION_OVERRIDES})  # embedded defaults under this home
    env["PIPELINE_HOME"] = str(home)
    return env


def _cli(home: Path, *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    return run_python(_env(home), "-m", *args, timeout=timeout)


@dataclass
class Audited:
    code: int
    report: dict[str, Any]


def audit(home: Path) -> Audited:
    result = _cli(home, "pipeline", "audit", "--json", timeout=120)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return Audited(result.returncode, json.loads(result.stdout))


@pytest.fixture(scope="module")
def clean_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("audit-home")
    sent = _cli(
        home, "producer", "--count", "3000", "--seed", "16", "--bad-rate", "0.02", "--duplicate-rate", "0.02",
        "--late-rate", "0.02", "--quiet",
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr[-3000:]
    ran = _cli(home, "pipeline", "run", "--once")
    assert ran.returncode == 0, ran.stderr[-3000:]
    return home


@pytest.fixture()
def home(clean_home: Path, tmp_path: Path) -> Path:
    """A copy of the clean run's state folder, for one test to break."""
    copy = tmp_path / "home"
    shutil.copytree(clean_home, copy)
    return copy


def _bronze_files(home: Path) -> list[Path]:
    return sorted((home / "lake" / "bronze").rglob("*.jsonl"))


def test_audit_of_a_clean_run_is_ok_and_exits_0(clean_home: Path) -> None:
    result = _cli(clean_home, "pipeline", "audit", timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "whole: lost 0, doubled 0" in " ".join(result.stdout.split())
    for title in ("hub → bronze", "bronze → silver", "silver → gold", "gold → SQL", "per device"):
        assert title in result.stdout


def test_audit_json_has_the_totals_and_every_check_with_counts_and_examples(clean_home: Path) -> None:
    audited = audit(clean_home)

    assert audited.code == 0
    report = audited.report
    assert set(report) >= TOP_KEYS
    assert (report["ok"], report["lost"], report["doubled"], report["sql_mismatches"]) == (True, 0, 0, 0)
    assert set(report["checks"]) == CHECKS
    for check in report["checks"].values():
        assert {"status", "counts", "examples"} <= set(check)
    hub = report["checks"]["hub_bronze"]["counts"]
    assert hub["hub_events"] == 3000  # what the producer sent
    assert hub["bronze_events"] + hub["quarantine_events"] == 3000


def test_a_deleted_bronze_file_is_reported_as_exactly_its_events_lost(home: Path) -> None:
    victim = _bronze_files(home)[0]
    in_file = sum(1 for line in victim.read_bytes().splitlines() if line.strip())
    victim.unlink()

    audited = audit(home)

    assert audited.code == 1
    assert audited.report["ok"] is False
    assert audited.report["lost"] == in_file
    assert audited.report["checks"]["hub_bronze"]["counts"]["lost"] == in_file
    assert len(audited.report["checks"]["hub_bronze"]["examples"]["lost"]) == min(20, in_file)


def test_a_changed_sql_row_is_one_sql_mismatch(home: Path) -> None:
    with sqlite3.connect(home / "warehouse.db") as con:
        location, start = con.execute("SELECT location, window_start FROM weather_summary LIMIT 1").fetchone()
        con.execute(
            "UPDATE weather_summary SET max_wind_speed = max_wind_speed + 1"
            " WHERE location = ? AND window_start = ?",
            (location, start),
        )

    audited = audit(home)

    assert audited.code == 1
    assert audited.report["sql_mismatches"] == 1
    assert audited.report["lost"] == audited.report["doubled"] == 0
    [different] = audited.report["checks"]["gold_sql"]["examples"]["different"]
    assert different["location"] == location
    assert set(different["columns"]) == {"max_wind_speed"}


def test_a_silver_row_written_twice_is_one_doubled_event(home: Path) -> None:
    silver = str(home / "lake" / "silver" / "weather")
    row = DeltaTable(silver).to_pyarrow_table().slice(0, 1)
    write_deltalake(silver, row, mode="append")

    audited = audit(home)

    assert audited.code == 1
    assert audited.report["doubled"] == 1
    assert audited.report["lost"] == 0
    [example] = audited.report["checks"]["bronze_silver"]["examples"]["doubled"]
    assert example["event_id"] == row.column("event_id")[0].as_py()


def test_a_bronze_record_also_in_quarantine_is_doubled_but_a_copied_bronze_file_is_a_replay(
    home: Path,
) -> None:
    source = _bronze_files(home)[0]
    copy = source.with_name("p0-00000000000000000000-00000000000000000000-copy.jsonl")
    copy.write_bytes(source.read_bytes())  # the same events again in bronze: a replay, counts once
    first = json.loads(source.read_bytes().splitlines()[0])
    quarantine = home / "lake" / "quarantine" / source.relative_to(home / "lake" / "bronze").parent
    quarantine.mkdir(parents=True, exist_ok=True)
    record = dict(first, Reasons=["json"], BodyEncoding="utf8")
    (quarantine / "p0-hand-made.jsonl").write_text(json.dumps(record) + "\n")

    audited = audit(home)

    assert audited.code == 1
    assert audited.report["doubled"] == 1
    hub = audited.report["checks"]["hub_bronze"]
    assert hub["counts"]["replayed_copies"] == sum(1 for line in source.read_bytes().splitlines() if line)
    [doubled] = hub["examples"]["doubled"]
    assert (doubled["partition"], doubled["sequence_number"]) == (
        first["PartitionId"],
        first["SequenceNumber"],
    )


def test_events_not_yet_ingested_are_pending_and_the_audit_fails_until_they_are(home: Path) -> None:
    sent = _cli(home, "producer", "--count", "10", "--seed", "17", "--quiet")
    assert sent.returncode == 0, sent.stderr[-3000:]

    audited = audit(home)

    assert audited.code == 1
    assert audited.report["checks"]["hub_bronze"]["counts"]["pending"] == 10
    assert audited.report["lost"] == 0
