"""What every check of the audit shares: tolerances, the Check and AuditReport results, Arrow helpers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc

from contract.gold import GOLD_KEY

if TYPE_CHECKING:  # damaged.py imports this module
    from pipeline.audit.damaged import DamagedFile

EXAMPLES = 20
#: Gold is recomputed exactly as the Spark job computes it: only a division's last bits may differ.
GOLD_REL_TOL = 1e-12
#: SQL holds gold's doubles; drivers may pass them through text with 15 significant digits.
SQL_REL_TOL = 1e-9
ABS_TOL = 1e-9
# spark.transforms._FIXED_POINT (tests/unit/test_audit.py checks them equal; importing it here
# would load pyspark for every audit): sums in nano-units, as integers.
FIXED_POINT = 1_000_000_000
HUB_KEY = ["partition", "sequence_number", "enqueued_ms"]
MAX_PARTITIONS = 4096  # the embedded hub's limit (Event Hubs allows 2048)
GOLD_KEY_COLUMNS = list(GOLD_KEY)

# Gold's recomputed columns: (gold column, aggregate, silver column). "avg" and "total" are taken
# over fixed-point integers, as silver_to_gold does.
GOLD_RECIPE = [
    ("avg_temperature", "avg", "temperature"),
    ("min_temperature", "min", "temperature"),
    ("max_temperature", "max", "temperature"),
    ("avg_humidity", "avg", "humidity"),
    ("avg_wind_speed", "avg", "wind_speed"),
    ("max_wind_speed", "max", "wind_speed"),
    ("total_precipitation", "total", "precipitation"),
]


@dataclass
class Check:
    """One reconciliation: its counts, the first examples of each problem, and what fails it."""

    name: str
    title: str
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failing: tuple[str, ...] = ()  # counts that must be 0 for the check to pass
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the check could not run
    report_only: bool = False  # findings are reported, never failed on

    @property
    def problems(self) -> int:
        return sum(self.counts.get(name, 0) for name in self.failing)

    @property
    def status(self) -> str:
        if self.skipped:
            return "skipped"
        if not self.problems:
            return "ok"
        return "warning" if self.report_only else "failed"

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "title": self.title, "counts": self.counts}
        out["examples"] = self.examples
        if self.notes:
            out["notes"] = self.notes
        if self.skipped:
            out["skipped"] = self.skipped
        return out


@dataclass
class AuditReport:
    """Every check, and the totals scripts read (``ok``, ``lost``, ``doubled``, ...)."""

    checks: list[Check]
    seconds: float = 0.0
    damaged: list[DamagedFile] = field(default_factory=list)

    def _sum(self, count: str) -> int:
        return sum(c.counts.get(count, 0) for c in self.checks if not c.report_only)

    @property
    def ok(self) -> bool:
        return all(c.status in ("ok", "skipped", "warning") for c in self.checks)

    def as_json(self) -> dict[str, Any]:
        by_name = {c.name: c for c in self.checks}
        devices = by_name.get("devices")
        gold_sql = by_name.get("gold_sql")
        return {
            "ok": self.ok,
            "lost": self._sum("lost"),
            "doubled": self._sum("doubled"),
            "sql_mismatches": gold_sql.counts.get("sql_mismatches", 0) if gold_sql else 0,
            "devices_with_gaps": devices.counts.get("devices_with_gaps", 0) if devices else 0,
            "unexpected": self._sum("unexpected"),
            "pending": self._sum("pending"),
            "damaged": len(self.damaged),
            "damaged_files": [d.as_json() for d in self.damaged],
            "checks": {c.name: c.as_json() for c in self.checks},
            "seconds": round(self.seconds, 3),
        }


# --- helpers ----------------------------------------------------------------------------------------


def distinct(table: pa.Table, keys: Sequence[str]) -> pa.Table:
    return table.select(list(keys)).group_by(list(keys), use_threads=False).aggregate([])


def semi(left: pa.Table, right: pa.Table, keys: Sequence[str], anti: bool = False) -> pa.Table:
    """Rows of ``left`` with (or, ``anti``, without) a match in ``right`` on ``keys``."""
    if left.num_rows == 0 or right.num_rows == 0:
        return left if anti or left.num_rows == 0 else left.slice(0, 0)
    kind = "left anti" if anti else "left semi"
    return left.join(right.select(list(keys)), list(keys), join_type=kind, use_threads=True)


def examples_of(table: pa.Table, limit: int = EXAMPLES) -> list[dict[str, Any]]:
    """The first rows as JSON-ready dicts (times as RFC 3339 text)."""
    out = []
    for row in table.slice(0, limit).to_pylist():
        out.append({k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()})
    return out


def concat(*columns: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray:
    """Columns of one type end to end (no copy)."""
    chunks = [
        c for column in columns for c in (column.chunks if isinstance(column, pa.ChunkedArray) else [column])
    ]
    return pa.chunked_array(chunks, columns[0].type)


def ms_text(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_micros(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Timestamps as integer microseconds since the epoch (UTC)."""
    return pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())


def file_tail(path: str) -> str:
    """A lake file's place inside its container, from a path or a URI (``<stream>/.../<name>``)."""
    return "/".join(unquote(path).rstrip("/").split("/")[-4:])
