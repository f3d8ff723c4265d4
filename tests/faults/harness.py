"""What every fault test does around its fault: send known events, run the stages, check the end.

The stages run in this process through the documented local entry points (the local Functions
host, ``run_spark`` on the test session's one SparkSession, ``sync_once``), so a fault test pays
for a JVM only when it kills a stage in a subprocess. Every test ends with
:func:`settle_and_check`: ``pipeline audit`` must be ok, and SQL must equal the oracle, gold
computed in plain Python from the distinct valid events sent (:mod:`tests.fixtures.oracle`).

Waits are short by settings, never by a code path the product does not run: the local host's
retry and batching waits are scaled with ``LOCAL_HOST_TIME_SCALE``.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pipeline.orchestrate import LOCATION_OVERRIDES
from settings import Settings, load_settings
from tests.fixtures.oracle import Corpus, bad_bodies, expected_gold, gold_differences, wave

#: The local host's waits in tests: host.json's 2 s maxWaitTime is 2 ms, a 5 s retry 5 ms.
TIME_SCALE = "0.001"


@dataclass
class FaultRow:
    """One row of the fault matrix (printed by tests/faults/conftest.py)."""

    name: str
    events: int | None = None
    lost: int | None = None
    doubled: int | None = None
    audit: str = ""
    result: str = ""
    note: str = ""  # what the audit said before a repair, say

    def cells(self) -> tuple[str, ...]:
        def number(value: int | None) -> str:
            return "-" if value is None else f"{value:,}"

        audit = "; ".join(part for part in (self.audit, self.note) if part) or "-"
        return (self.name, number(self.events), number(self.lost), number(self.doubled), audit,
                self.result or "not run")  # fmt: skip


@dataclass
class Pipeline:
    """A state folder of its own, the events sent into its hub, and the stages run on it."""

    home: Path
    settings: Settings
    corpus: Corpus = field(default_factory=Corpus)
    rng: random.Random = field(default_factory=lambda: random.Random(16))
    start: datetime = field(
        default_factory=lambda: (datetime.now(UTC) - timedelta(hours=2)).replace(second=0, microsecond=0)
    )

    @classmethod
    def create(cls, home: Path, seed: int = 16, **values: str) -> Pipeline:
        """A pipeline under ``home`` with the embedded defaults, plus ``values`` (settings)."""
        home.mkdir(parents=True, exist_ok=True)
        return cls(home, make_settings(home, **values), rng=random.Random(seed))

    def with_values(self, **values: str) -> Settings:
        """These settings with some values changed (another view of the same state)."""
        return make_settings(self.home, **{**self.settings.values, **values})

    def environment(self, **values: str) -> dict[str, str]:
        """The environment a subprocess CLI runs with to see these settings."""
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        return {**env, **self.settings.values, **values}

    # --- the events -------------------------------------------------------------------------------
    def send(self, count: int = 300, bad_per_kind: int = 1) -> int:
        """Send ``count`` valid events (plus 1% exact re-sends and a few bad bodies) with the
        producer's own code (``--from-file``); return how many bodies went into the hub."""
        from producer.cli import main as producer

        lines = wave(self.rng, self.corpus, count, self.start, timedelta(minutes=100))
        if bad_per_kind:
            bad = bad_bodies(self.rng, json.loads(lines[0]), datetime.now(UTC), per_kind=bad_per_kind)
            self.corpus.bad += bad
            for body in bad:  # scattered through the stream, never first
                lines.insert(self.rng.randrange(1, len(lines)), body)
        path = self.home / f"wave-{self.corpus.bodies_sent}.jsonl"
        path.write_bytes(b"\n".join(lines) + b"\n")
        code = producer(["--target", "local", "--from-file", str(path), "--quiet"], settings=self.settings)
        assert code == 0
        self.corpus.bodies_sent += len(lines)
        return len(lines)

    def expected(self) -> dict[tuple[str, datetime], dict[str, Any]]:
        """The oracle: gold over the distinct valid events sent so far."""
        return expected_gold(list(self.corpus.valid.values()))

    # --- the stages, in this process --------------------------------------------------------------
    def ingest(self, settings: Settings | None = None) -> Any:
        from pipeline.host import LocalFunctionsHost

        return LocalFunctionsHost(settings or self.settings).run_until_idle()

    def spark(self, settings: Settings | None = None) -> dict[str, Any]:
        from pipeline.spark_runner import run_spark

        return run_spark(settings or self.settings, available_now=True)

    def sync(self, settings: Settings | None = None) -> dict[str, Any]:
        from pipeline.sync_runner import sync_once

        return sync_once(settings or self.settings)

    def run_once(self) -> None:
        """Ingest until idle, Spark availableNow, one sync: `pipeline run --once`."""
        self.ingest()
        self.spark()
        self.sync()

    def sql_rows(self, settings: Settings | None = None) -> list[dict[str, Any]]:
        from pipeline.layers import SqlReader

        settings = settings or self.settings
        with SqlReader(settings) as reader:
            return reader.rows(settings.sql_table) or []

    def watermark(self) -> int:
        """The gold version SQL was last synced from; -1 before the first sync (as the sync counts)."""
        from pipeline.layers import SqlReader, watermark

        with SqlReader(self.settings) as reader:
            version = watermark(self.settings, reader)[0]
        return -1 if version is None else version


def make_settings(home: Path, **values: str) -> Settings:
    """Settings as the environment would give them: embedded defaults under ``home``, plus ``values``."""
    environ = {
        "PIPELINE_HOME": str(home),
        **{name: "" for name in LOCATION_OVERRIDES},
        "BRONZE_FORMAT": "jsonl",
        "LOCAL_HUB_PARTITIONS": "4",
        "LOCAL_HOST_TIME_SCALE": TIME_SCALE,
        **values,
    }
    return load_settings(environ=environ, local_settings_file=home / "no-local-settings.json")


def settle_and_check(pipe: Pipeline, row: FaultRow, settings: Settings | None = None) -> dict[str, Any]:
    """The end of every fault test: the audit is ok and SQL equals the oracle; the row records it."""
    from pipeline.audit import run_audit

    settings = settings or pipe.settings
    report = run_audit(settings).as_json()
    differences = gold_differences(pipe.sql_rows(settings), pipe.expected())
    row.events, row.lost, row.doubled = pipe.corpus.bodies_sent, report["lost"], report["doubled"]
    failing = [name for name, check in report["checks"].items() if check["status"] == "failed"]
    row.audit = "ok" if report["ok"] else "NOT ok: " + ", ".join(failing)
    if differences:
        row.audit += f"; SQL differs from the oracle in {len(differences)} ways"
    assert report["ok"], json.dumps({k: v for k, v in report.items() if k != "checks"} | {"failing": failing})
    assert not differences, "\n".join(differences)
    return report
