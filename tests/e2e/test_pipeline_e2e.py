"""The whole local pipeline through its real CLIs, checked against the events the test sent.

The test writes its own corpus (valid events over six locations, exact re-sends, late events in a
second wave, and bad bodies of several kinds), sends it with `python -m producer --from-file`, and
runs `python -m pipeline run --once` after each wave. Expected values are computed here in plain
Python from the corpus alone, never with the project's code.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable

from localhub import LocalConsumer, LocalEventHub
from pipeline import history
from pipeline.lake_records import iter_records, lake_files
from pipeline.layers import parse_utc
from pipeline.orchestrate import LOCATION_OVERRIDES
from settings import PROJECT_ROOT, Settings
from tests.fixtures.cli import run_python
from tests.fixtures.oracle import GOLD_NUMBERS, Corpus, bad_bodies, dump, expected_gold, wave

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.spark, pytest.mark.integration]

# --- running the real CLIs ------------------------------------------------------------------------


def _cli(env: dict[str, str], *args: str, timeout: float = 400) -> subprocess.CompletedProcess[str]:
    result = run_python(env, *args, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


def _send(env: dict[str, str], home: Path, name: str, lines: list[bytes]) -> None:
    path = home / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    _cli(env, "-m", "producer", "--target", "local", "--from-file", str(path))


@dataclass
class Run:
    home: Path
    env: dict[str, str]
    corpus: Corpus
    settings: Settings
    before_rerun: dict[str, Any]
    after_rerun: dict[str, Any]


def snapshot(settings: Settings) -> dict[str, Any]:
    """Everything a run could change: lake files, Delta versions, SQL rows, hub checkpoints."""
    lake = settings.local_lake_path
    files = {
        str(p.relative_to(lake)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in lake.rglob("*")
        if p.is_file()
    }
    versions = {
        uri: DeltaTable(uri).version()
        for uri in (settings.silver_table_uri, settings.silver_quarantine_table_uri, settings.gold_table_uri)
        if DeltaTable.is_deltatable(uri)
    }
    with sqlite3.connect(settings.sqlite_path) as con:
        sql = {
            table: sorted(map(repr, con.execute(f"SELECT * FROM {table}").fetchall()))
            for table in ("weather_summary", "sync_watermark", "sync_runs")
        }
    with LocalEventHub(settings.local_hub_path) as hub:
        consumer = LocalConsumer(hub, settings.eventhub_consumer_group)
        hub_checkpoints = [consumer.get_checkpoint(p) for p in hub.partition_ids]
    return {"files": files, "versions": versions, "sql": sql, "hub_checkpoints": hub_checkpoints}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    home = tmp_path_factory.mktemp("e2e-home")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PIPELINE_HOME"] = str(home)
    for name in LOCATION_OVERRIDES:
        env[name] = ""  # embedded defaults under this home, whatever local.settings.json says
    settings = Settings(values={"PIPELINE_HOME": str(home)})
    rng = random.Random(20261122)
    now = datetime.now(UTC)
    start = (now - timedelta(hours=2)).replace(second=0, microsecond=0)
    corpus = Corpus()

    first = wave(rng, corpus, 2500, start, timedelta(minutes=100))
    corpus.bad = bad_bodies(rng, json.loads(first[0]), now)
    for body in corpus.bad:  # scattered through the stream, never first
        first.insert(rng.randrange(1, len(first)), body)
    _send(env, home, "wave1.jsonl", first)
    _cli(env, "-m", "pipeline", "run", "--once")

    # Second wave, after the first went all the way to SQL: events up to ~2 h late into windows
    # already in gold, and exact re-sends of events from the first wave.
    late = wave(rng, corpus, 300, start, timedelta(minutes=100))
    late += [dump(corpus.valid[i]) for i in rng.sample(list(corpus.valid)[:2500], 40)]
    rng.shuffle(late)
    _send(env, home, "wave2.jsonl", late)
    _cli(env, "-m", "pipeline", "run", "--once")
    corpus.bodies_sent = len(first) + len(late)

    before = snapshot(settings)
    _cli(env, "-m", "pipeline", "run", "--once")  # nothing new: must change nothing
    after = snapshot(settings)
    return Run(home, env, corpus, settings, before, after)


# --- the invariants -------------------------------------------------------------------------------


def _silver_ids(settings: Settings) -> Counter[str]:
    table = DeltaTable(settings.silver_table_uri).to_pyarrow_table(columns=["event_id"])
    return Counter(table.column("event_id").to_pylist())


def _quarantine_records(settings: Settings) -> list[dict[str, Any]]:
    return [r for p in lake_files(settings, settings.quarantine_container) for r in iter_records(p)]


def test_every_valid_event_is_in_silver_exactly_once_duplicates_collapsed(run: Run) -> None:
    silver = _silver_ids(run.settings)
    assert set(silver) == set(run.corpus.valid)
    assert max(silver.values()) == 1


def test_every_bad_body_is_quarantined_once_and_never_reaches_silver(run: Run) -> None:
    records = _quarantine_records(run.settings)
    quarantined = Counter(r["Body"].encode() for r in records)
    assert quarantined == Counter(run.corpus.bad)
    assert all(r["Reasons"] for r in records)
    bad_ids = {r["EventId"] for r in records} - {None}
    assert not bad_ids & set(_silver_ids(run.settings))
    assert not bad_ids & set(run.corpus.valid)


def test_gold_equals_an_independent_recomputation_from_the_valid_events(run: Run) -> None:
    expected = expected_gold(list(run.corpus.valid.values()))
    rows = DeltaTable(run.settings.gold_table_uri).to_pyarrow_table().to_pylist()
    got = {(r["location"], parse_utc(r["window_start"])): r for r in rows}
    assert len(rows) == len(got)  # one row per key
    assert set(got) == set(expected)
    for key, want in expected.items():
        row = got[key]
        assert parse_utc(row["window_end"]) == want["window_end"], key
        assert row["event_count"] == want["event_count"], key
        for column in GOLD_NUMBERS:
            assert math.isclose(row[column], want[column], rel_tol=1e-9, abs_tol=1e-9), (key, column)
        assert row["dominant_wind_direction"] == want["dominant_wind_direction"], key
        assert row["dominant_conditions"] == want["dominant_conditions"], key


def test_sql_table_equals_gold_row_for_row(run: Run) -> None:
    gold = DeltaTable(run.settings.gold_table_uri).to_pyarrow_table().to_pylist()
    with sqlite3.connect(run.settings.sqlite_path) as con:
        con.row_factory = sqlite3.Row
        sql = [dict(r) for r in con.execute("SELECT * FROM weather_summary")]
    assert len(sql) == len(gold)
    by_key = {(r["location"], parse_utc(r["window_start"])): r for r in sql}
    for row in gold:
        mirror = by_key[(row["location"], parse_utc(row["window_start"]))]
        for column, value in row.items():
            if isinstance(value, datetime):
                assert parse_utc(mirror[column]) == parse_utc(value), column
            elif isinstance(value, float):
                assert math.isclose(mirror[column], value, rel_tol=1e-12), column
            else:
                assert mirror[column] == value, column
        assert mirror["synced_at"] is not None


def test_second_run_once_with_no_new_events_changes_nothing(run: Run) -> None:
    assert run.after_rerun["versions"] == run.before_rerun["versions"]
    assert run.after_rerun["sql"] == run.before_rerun["sql"]
    assert run.after_rerun["hub_checkpoints"] == run.before_rerun["hub_checkpoints"]
    assert run.after_rerun["files"] == run.before_rerun["files"]


def test_status_json_counts_match_what_was_sent(run: Run) -> None:
    status = json.loads(_cli(run.env, "-m", "pipeline", "status", "--json").stdout)
    n_valid_sent = run.corpus.bodies_sent - len(run.corpus.bad)
    assert status["hub"] == run.corpus.bodies_sent
    assert status["bronze"] == n_valid_sent
    assert status["quarantine"] == len(run.corpus.bad)
    assert sum(status["quarantine_reasons"].values()) >= len(run.corpus.bad)
    assert status["silver"] == len(run.corpus.valid)
    assert status["gold"] == status["sql"] == len(expected_gold(list(run.corpus.valid.values())))
    assert status["watermark"] == DeltaTable(run.settings.gold_table_uri).version()


def test_report_over_the_run_writes_the_page_and_chart(run: Run) -> None:
    out = _cli(run.env, "-m", "pipeline", "report").stdout
    page = run.home / "reports" / "report.html"
    assert str(page) in out
    text = page.read_text(encoding="utf-8")
    for section in ("health", "summary", "freshness", "lag", "flow", "quarantine", "duplicates-late",
                    "sync-history", "gold", "settings"):  # fmt: skip
        assert f"<section id='{section}'>" in text
    # Freshness (over time, distribution), lag, flow, quarantine, gold.
    assert text.count("<svg") == 6
    assert (run.home / "reports" / "gold_temperature.png").stat().st_size > 0


def _sql_event_total(settings: Settings) -> int:
    if not settings.sqlite_path.exists():
        return 0
    with sqlite3.connect(settings.sqlite_path) as con:
        if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'weather_summary'").fetchone():
            return 0
        return int(con.execute("SELECT COALESCE(SUM(event_count), 0) FROM weather_summary").fetchone()[0])


def test_continuous_run_delivers_to_sql_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update({name: "" for name in LOCATION_OVERRIDES})
    env.update(PIPELINE_HOME=str(tmp_path), SPARK_TRIGGER_SECONDS="2", SYNC_SCHEDULE="*/3 * * * * *")
    settings = Settings(values={"PIPELINE_HOME": str(tmp_path)})
    rng = random.Random(5)
    corpus = Corpus()
    start = (datetime.now(UTC) - timedelta(minutes=30)).replace(second=0, microsecond=0)
    lines = wave(rng, corpus, 400, start, timedelta(minutes=20))
    log = (tmp_path / "run.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run"], cwd=PROJECT_ROOT, env=env, stdout=log, stderr=log
    )
    try:
        _send(env, tmp_path, "events.jsonl", lines)
        deadline = time.monotonic() + 180
        total = 0
        while time.monotonic() < deadline and proc.poll() is None:
            total = _sql_event_total(settings)
            if total == len(corpus.valid):
                break
            time.sleep(1)
        assert proc.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
        assert total == len(corpus.valid)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log.close()
    assert code == 0, (tmp_path / "run.log").read_text()[-3000:]
    samples = history.read(tmp_path / history.LAG_FILE)  # the lag the live line showed, for the report
    assert samples, "continuous run recorded no lag sample"
    assert {"at_utc", "hub", "ingest_lag", "spark_pending_files", "sync_lag_versions"} <= set(samples[-1])
    assert all(0 <= s["hub"] <= len(lines) for s in samples)
