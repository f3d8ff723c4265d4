"""Gold → SQL sync, the plain part: what changed, which rows can be written, and the run itself.

Nothing here does I/O. :func:`plan_sync` turns what the gold reader found into a
:class:`SyncPlan` (rows to upsert, keys to delete, rows skipped with reasons);
:func:`run_sync` drives one sync against two small ports, :class:`GoldSource` and
:class:`Warehouse`, retrying the warehouse transaction when the warehouse says the error
was transient. Every gold change ends up in exactly one place: upserted, deleted, or
counted as skipped (with a stable reason code) and logged.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from contract import gold
from contract.gold import SKIP_NON_FINITE, SKIP_NULL_KEY, SKIP_WRONG_TYPE, skip_reason

log = logging.getLogger(__name__)

# Gold `weather_summary` columns, in the order the SQL table and the staging rows use.
GOLD_COLUMNS: tuple[str, ...] = gold.GOLD_COLUMNS
KEY_COLUMNS: tuple[str, str] = gold.GOLD_KEY
TIMESTAMP_COLUMNS = gold.gold_columns_of_type("timestamp")
INTEGER_COLUMNS = gold.gold_columns_of_type("long")
DOUBLE_COLUMNS = gold.gold_columns_of_type("double")
TEXT_COLUMNS = gold.gold_columns_of_type("string")

# Delta change data feed change types.
CDF_DELETE = "delete"
CDF_UPSERTS = frozenset({"insert", "update_postimage"})
CDF_PREIMAGE = "update_preimage"

GoldRow = tuple[Any, ...]  # values in GOLD_COLUMNS order, normalised (naive UTC datetimes)
GoldKey = tuple[str, datetime]


@dataclass(frozen=True)
class GoldRead:
    """What the gold reader found after the watermark.

    Attributes:
        from_version: the watermark the read started after (-1: never synced).
        to_version: the gold table version the rows describe.
        mode: ``cdf`` (rows carry ``_change_type`` and ``_commit_version``) or ``snapshot``
            (the whole table at ``to_version``: target rows not in it are deleted).
        rows: one dict per change (cdf) or per gold row (snapshot).
    """

    from_version: int
    to_version: int
    mode: Literal["cdf", "snapshot"]
    rows: Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class SyncPlan:
    """What one sync writes, in one transaction."""

    from_version: int
    to_version: int
    upserts: list[GoldRow]
    deletes: list[GoldKey]
    # Keys whose new gold values were rejected: left as they are in SQL, even by a snapshot.
    kept: list[GoldKey]
    replace_all: bool
    skipped: Counter[str] = field(default_factory=Counter)
    max_source_updated_at: datetime | None = None

    @property
    def rows_skipped(self) -> int:
        return sum(self.skipped.values())


@dataclass(frozen=True)
class ApplyResult:
    """What a warehouse transaction did. ``applied`` is False when another run got there first."""

    applied: bool
    rows_upserted: int = 0
    rows_deleted: int = 0


@dataclass(frozen=True)
class RunInfo:
    """Identity and clock of one sync run (``synced_at`` is stamped on every changed row)."""

    run_id: str
    started_at: datetime
    synced_at: datetime


@dataclass
class SyncSummary:
    """The outcome of :func:`run_sync`, as counts a person or a test can read."""

    status: Literal["no_gold", "up_to_date", "synced", "superseded"]
    message: str
    from_version: int | None = None
    to_version: int | None = None
    rows_upserted: int = 0
    rows_deleted: int = 0
    rows_skipped: int = 0
    skip_reasons: dict[str, int] = field(default_factory=dict)
    mode: str | None = None
    attempts: int = 0
    run_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class GoldSource(Protocol):
    """Port: reads the gold changes after a Delta version."""

    def read_changes(self, after_version: int) -> GoldRead | None:
        """Return changes after ``after_version`` (-1: everything), or None when gold does not exist."""
        ...


class Warehouse(Protocol):
    """Port: the SQL target (SQL Server, PostgreSQL or SQLite)."""

    def schema_ready(self) -> bool: ...

    def init_schema(self) -> None: ...

    def read_watermark(self) -> int:
        """The last gold version synced, -1 when never synced."""
        ...

    def apply(self, plan: SyncPlan, expected_watermark: int, run: RunInfo) -> ApplyResult:
        """Write the plan and advance the watermark from ``expected_watermark``, atomically."""
        ...

    def is_transient(self, exc: BaseException) -> bool:
        """True when retrying the whole transaction may succeed (deadlock, failover, busy)."""
        ...


# --- cleaning and planning ------------------------------------------------------------------------
def to_utc_naive(value: Any) -> datetime | None:
    """A timestamp as a naive UTC datetime (what DATETIME2 / TIMESTAMP columns hold)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    moment: datetime = value
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def clean_row(row: Mapping[str, Any]) -> tuple[GoldRow | None, str | None]:
    """Normalise one gold row, or say why it cannot be written (a stable reason code)."""
    location = row.get("location")
    if location is None or not str(location).strip():
        return None, skip_reason(SKIP_NULL_KEY, "location")
    if row.get("window_start") is None:
        return None, skip_reason(SKIP_NULL_KEY, "window_start")
    values: list[Any] = []
    for column in GOLD_COLUMNS:
        value = row.get(column)
        if value is None:
            values.append(None)
        elif column in TIMESTAMP_COLUMNS:
            try:
                values.append(to_utc_naive(value))
            except TypeError:
                return None, skip_reason(SKIP_WRONG_TYPE, column)
        elif column in DOUBLE_COLUMNS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None, skip_reason(SKIP_WRONG_TYPE, column)
            if not math.isfinite(value):
                return None, skip_reason(SKIP_NON_FINITE, column)
            values.append(float(value))
        elif column in INTEGER_COLUMNS:
            if isinstance(value, float) and not math.isfinite(value):
                return None, skip_reason(SKIP_NON_FINITE, column)
            if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
                return None, skip_reason(SKIP_WRONG_TYPE, column)
            values.append(int(value))
        else:
            values.append(str(value))
    return tuple(values), None


def _key_of(row: Mapping[str, Any]) -> GoldKey | None:
    location, window_start = row.get("location"), row.get("window_start")
    if location is None or not str(location).strip() or not isinstance(window_start, datetime):
        return None
    start = to_utc_naive(window_start)
    assert start is not None
    return str(location), start


def latest_change_per_key(changes: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Collapse a change feed to the final change per key, dropping pre-images.

    Within one commit an upsert wins over a delete of the same key: an overwrite reports every
    old row as deleted and every new row as inserted in the same version. Changes whose key is
    null are returned as they are (the cleaner rejects them).
    """
    ordered = sorted(
        (c for c in changes if c.get("_change_type") != CDF_PREIMAGE),
        key=lambda c: (int(c.get("_commit_version") or 0), c.get("_change_type") in CDF_UPSERTS),
    )
    latest: dict[GoldKey, Mapping[str, Any]] = {}
    keyless: list[Mapping[str, Any]] = []
    for change in ordered:
        key = _key_of(change)
        if key is None:
            keyless.append(change)
        else:
            latest.pop(key, None)  # re-insert so the dict keeps last-change order
            latest[key] = change
    return [*keyless, *latest.values()]


def _newer(a: GoldRow, b: GoldRow) -> bool:
    """True when row ``a`` is at least as new as ``b`` by ``updated_at`` (None is oldest)."""
    index = GOLD_COLUMNS.index("updated_at")
    ua, ub = a[index], b[index]
    return ub is None or (ua is not None and ua >= ub)


def plan_sync(read: GoldRead) -> SyncPlan:
    """Turn a gold read into the rows to upsert, the keys to delete and the rows skipped."""
    changes = latest_change_per_key(read.rows) if read.mode == "cdf" else list(read.rows)
    skipped: Counter[str] = Counter()
    upserts: dict[GoldKey, GoldRow] = {}
    deletes: dict[GoldKey, None] = {}
    kept: dict[GoldKey, None] = {}
    for change in changes:
        if read.mode == "cdf" and change.get("_change_type") == CDF_DELETE:
            key = _key_of(change)
            if key is None:
                skipped[SKIP_NULL_KEY] += 1
            else:
                deletes[key] = None
            continue
        row, reason = clean_row(change)
        if row is None:
            assert reason is not None
            skipped[reason] += 1
            key = _key_of(change)
            if key is not None:
                kept[key] = None
            continue
        key = (row[0], row[1])
        # The source is deduplicated here: one row per key, the most recently updated wins.
        if key not in upserts or _newer(row, upserts[key]):
            upserts[key] = row
    for key in upserts:
        kept.pop(key, None)
    updated = [r[GOLD_COLUMNS.index("updated_at")] for r in upserts.values()]
    return SyncPlan(
        from_version=read.from_version,
        to_version=read.to_version,
        upserts=list(upserts.values()),
        deletes=[k for k in deletes if k not in upserts],
        kept=list(kept),
        replace_all=read.mode == "snapshot",
        skipped=skipped,
        max_source_updated_at=max((u for u in updated if u is not None), default=None),
    )


# --- one run ----------------------------------------------------------------------------------
def backoff_delays(attempts: int, base: float, cap: float) -> list[float]:
    """Exponential delays between ``attempts`` tries: base, 2·base, 4·base … each at most cap."""
    return [min(cap, base * 2**i) for i in range(max(0, attempts - 1))]


def run_sync(
    source: GoldSource,
    warehouse: Warehouse,
    *,
    max_attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 8.0,
    sleep: Callable[[float], None] = time.sleep,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> SyncSummary:
    """Sync gold changes after the SQL watermark into the warehouse, once.

    The watermark is read first, gold is read after it, and the warehouse writes the plan and
    advances the watermark with compare-and-set in one transaction: a replayed or overlapping
    run finds nothing to do or loses the compare-and-set; a failed run changes nothing.

    Raises:
        Exception: the warehouse's last error when a transient one persists over
            ``max_attempts`` tries, or at once for any other error.
    """
    if not warehouse.schema_ready():
        warehouse.init_schema()
    watermark = warehouse.read_watermark()
    read = source.read_changes(watermark)
    if read is None:
        return SyncSummary("no_gold", "gold table does not exist yet: nothing to sync")
    if read.to_version <= watermark:
        return SyncSummary(
            "up_to_date",
            f"SQL is up to date with gold version {watermark}",
            from_version=watermark,
            to_version=watermark,
        )
    plan = plan_sync(read)
    if plan.skipped:
        log.warning(
            "sync skipped %d gold rows that cannot be written: %s",
            plan.rows_skipped,
            dict(sorted(plan.skipped.items())),
        )
    started = to_utc_naive(now())
    assert started is not None
    run = RunInfo(run_id=str(uuid.uuid4()), started_at=started, synced_at=started)
    delays = backoff_delays(max_attempts, base_delay, max_delay)
    attempt = 0
    while True:
        attempt += 1
        try:
            stamp = to_utc_naive(now())
            assert stamp is not None
            run = RunInfo(run.run_id, run.started_at, stamp)
            result = warehouse.apply(plan, watermark, run)
            break
        except Exception as exc:
            if attempt > len(delays) or not warehouse.is_transient(exc):
                raise
            log.warning("sync attempt %d failed with a transient error, retrying: %s", attempt, exc)
            sleep(delays[attempt - 1])
    summary = SyncSummary(
        status="synced" if result.applied else "superseded",
        message=(
            f"synced gold versions {watermark + 1}..{plan.to_version}"
            if result.applied
            else "another sync advanced the watermark first: nothing written"
        ),
        from_version=watermark,
        to_version=plan.to_version if result.applied else watermark,
        rows_upserted=result.rows_upserted,
        rows_deleted=result.rows_deleted,
        rows_skipped=plan.rows_skipped if result.applied else 0,
        skip_reasons=dict(plan.skipped) if result.applied else {},
        mode=read.mode,
        attempts=attempt,
        run_id=run.run_id,
    )
    log.info("%s", summary.message)
    return summary
