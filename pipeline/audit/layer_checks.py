"""bronze -> silver, silver -> gold, gold -> SQL and the per-device sequence check."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from contract.gold import GOLD_COLUMN_TYPES, GOLD_COLUMNS, GOLD_KEY
from contract.lake_layout import CONFLICT_MARKER, parse_path
from pipeline.audit.common import (
    ABS_TOL,
    EXAMPLES,
    FIXED_POINT,
    GOLD_KEY_COLUMNS,
    GOLD_RECIPE,
    GOLD_REL_TOL,
    SQL_REL_TOL,
    Check,
    concat,
    distinct,
    examples_of,
    file_tail,
    ms_text,
    semi,
    to_micros,
)
from pipeline.audit.damaged import DamagedFile
from pipeline.audit.reading import AuditedLake
from pipeline.lake_records import FILE_COLUMN
from pipeline.layers import (
    SqlReader,
    parse_utc,
    watermark,
)
from settings import Settings


def check_bronze_silver(
    lake: AuditedLake, silver: pa.Table, silver_quarantine: pa.Table, damaged: Sequence[DamagedFile] = ()
) -> Check:
    """Every distinct bronze event id in exactly one of silver (once) and the silver quarantine.

    An event only a damaged file holds and that went nowhere is counted as ``damaged``, not lost
    (the bronze files check fails until it is repaired), and what the silver quarantine holds of
    a damaged file's made-up records is not ``unexpected``.
    """
    check = Check(
        "bronze_silver",
        "bronze → silver + silver quarantine",
        failing=("lost", "doubled", "unexpected", "pending"),
    )
    if lake.superseded:
        # A repaired file's rows in the silver quarantine (bronze_incomplete) are superseded with
        # it: its events now come from the repair.
        replaced = pa.array(sorted({file_tail(lake.bronze_files[i]) for i in lake.superseded}))
        tails = pa.array([file_tail(f) if f else "" for f in silver_quarantine["source_file"].to_pylist()])
        silver_quarantine = silver_quarantine.filter(pc.invert(pc.is_in(tails, value_set=replaced)))
    bronze_ids = pc.unique(pc.drop_null(lake.bronze["EventId"]))
    silver_ids = silver["event_id"]
    silver_distinct = pc.unique(silver_ids)
    rejected_ids = pc.unique(pc.drop_null(silver_quarantine["event_id"]))
    downstream = concat(silver_distinct, rejected_ids)
    missing = pc.filter(bronze_ids, pc.invert(pc.is_in(bronze_ids, value_set=downstream)))
    # A missing event whose bronze files no silver or silver quarantine row names: Spark has not
    # read them yet (pending). Named files that lack the event: lost.
    read_by_spark = {
        file_tail(f)
        for f in pc.unique(concat(silver["source_file"], silver_quarantine["source_file"])).to_pylist()
        if f
    }
    processed = np.array([file_tail(f) in read_by_spark for f in lake.bronze_files] or [False], dtype=bool)
    damaged_tails = {file_tail(d.file) for d in damaged}
    in_damaged = np.array([file_tail(f) in damaged_tails for f in lake.bronze_files] or [False], dtype=bool)
    bronze_missing = lake.bronze.filter(pc.is_in(lake.bronze["EventId"], value_set=missing))
    files = bronze_missing[FILE_COLUMN].to_numpy()
    seen = pa.table(
        {"EventId": bronze_missing["EventId"], "processed": processed[files], "damaged": in_damaged[files]}
    )
    by_id = seen.group_by("EventId").aggregate([("processed", "any"), ("damaged", "all")])
    held = by_id.filter(by_id["damaged_all"])["EventId"]
    by_id = by_id.filter(pc.invert(by_id["damaged_all"]))
    lost = by_id.filter(by_id["processed_any"])["EventId"]
    pending = by_id.filter(pc.invert(by_id["processed_any"]))["EventId"]
    repeated = pa.table({"event_id": silver_ids}).group_by("event_id").aggregate([([], "count_all")])
    repeated = repeated.filter(pc.greater(repeated["count_all"], 1))
    both = pc.filter(silver_distinct, pc.is_in(silver_distinct, value_set=rejected_ids))
    vouched = rejected_ids  # quarantined ids that must come from bronze
    if damaged_tails:
        tails = pa.array([file_tail(f) if f else "" for f in silver_quarantine["source_file"].to_pylist()])
        from_damaged = pc.is_in(tails, value_set=pa.array(sorted(damaged_tails)))
        vouched = pc.unique(pc.drop_null(silver_quarantine.filter(pc.invert(from_damaged))["event_id"]))
    downstream_ids = pc.unique(concat(silver_distinct, vouched))
    unexpected = pc.filter(downstream_ids, pc.invert(pc.is_in(downstream_ids, value_set=bronze_ids)))
    check.counts = {
        "bronze_events": len(bronze_ids),
        "silver_rows": len(silver_ids),
        "silver_quarantine_events": len(rejected_ids),
        "lost": len(lost),
        "doubled": len(silver_ids) - len(silver_distinct) + len(both),
        "unexpected": len(unexpected),
        "pending": len(pending),
        "damaged": len(held),
        "silver_quarantine_without_id": silver_quarantine.num_rows
        - int(pc.sum(pc.is_valid(silver_quarantine["event_id"])).as_py() or 0),
    }
    check.examples = {
        "lost": [{"event_id": i} for i in lost.slice(0, EXAMPLES).to_pylist()],
        "doubled": [{"event_id": r["event_id"], "silver_rows": r["count_all"]} for r in examples_of(repeated)]
        + [
            {"event_id": i, "in": "silver and silver quarantine"} for i in both.slice(0, EXAMPLES).to_pylist()
        ],
        "unexpected": [{"event_id": i} for i in unexpected.slice(0, EXAMPLES).to_pylist()],
        "pending": [{"event_id": i} for i in pending.slice(0, EXAMPLES).to_pylist()],
    }
    check.examples["doubled"] = check.examples["doubled"][:EXAMPLES]
    conflicts = sum(
        any(marker == CONFLICT_MARKER for marker, _ in name.name.suffixes)
        for f in [*lake.bronze_files, *lake.quarantine_files]
        if (name := parse_path(f))
    )
    if conflicts:
        check.notes.append(
            f"{conflicts:,} files were written under a conflict name (two hubs with the same namespace and "
            "name write to this lake; their events are counted like any others): see docs/ingest.md"
        )
    if check.counts["unexpected"]:
        check.notes.append("silver holds events that no bronze file holds (a bronze file deleted?)")
    if check.counts["pending"]:
        check.notes.append("bronze files the Spark job has not read yet: run `python -m pipeline run --once`")
    return check


def first_per_event(silver: pa.Table) -> pa.Table:
    """Silver with one row per ``event_id`` (the first), as gold counts each event once."""
    if len(pc.unique(silver["event_id"])) == silver.num_rows:
        return silver
    numbered = silver.append_column("_row", pa.array(np.arange(silver.num_rows, dtype=np.int64)))
    first = numbered.group_by("event_id", use_threads=False).aggregate([("_row", "min")])
    return silver.take(np.sort(first["_row_min"].to_numpy()))


def recompute_gold(silver: pa.Table, window_minutes: int) -> pa.Table:
    """Gold's key, ``event_count`` and recomputed columns from silver rows (see the module doc)."""
    size = window_minutes * 60 * 1_000_000
    micros = to_micros(silver["event_time"]).to_numpy(zero_copy_only=False)
    starts = micros - np.mod(micros, size)  # floor modulo: pmod, as Spark's window_start
    columns: dict[str, Any] = {"location": silver["location"], "window_start": starts}
    aggregates: list[tuple[str, str]] = []
    for gold_column, how, column in GOLD_RECIPE:
        if how in ("avg", "total"):
            fixed = f"_fixed_{column}"
            if fixed not in columns:
                scaled = pc.round(pc.multiply(silver[column], float(FIXED_POINT)), round_mode="half_to_even")
                columns[fixed] = pc.cast(scaled, pa.int64())
                aggregates.append((fixed, "sum"))
        else:
            columns[f"_{gold_column}"] = silver[column]
            aggregates.append((f"_{gold_column}", how))
    grouped = (
        pa.table(columns).group_by(["location", "window_start"]).aggregate([([], "count_all"), *aggregates])
    )
    count = pc.cast(grouped["count_all"], pa.float64())
    out: dict[str, Any] = {
        "location": grouped["location"],
        "window_start": grouped["window_start"],
        "event_count": grouped["count_all"],
    }
    for gold_column, how, column in GOLD_RECIPE:
        if how in ("avg", "total"):
            total = pc.cast(grouped[f"_fixed_{column}_sum"], pa.float64())
            value = pc.divide(total, count) if how == "avg" else total
            out[gold_column] = pc.divide(value, float(FIXED_POINT))
        else:
            out[gold_column] = pc.cast(grouped[f"_{gold_column}_{how}"], pa.float64())
    return pa.table(out)


def _close(a: pa.ChunkedArray, b: pa.ChunkedArray, rel_tol: float) -> pa.ChunkedArray:
    """Element-wise ``math.isclose`` (nulls equal only to nulls)."""
    a64, b64 = pc.cast(a, pa.float64()), pc.cast(b, pa.float64())
    scale = pc.max_element_wise(pc.abs(a64), pc.abs(b64))
    near = pc.less_equal(
        pc.abs(pc.subtract(a64, b64)), pc.max_element_wise(pc.multiply(scale, rel_tol), ABS_TOL)
    )
    return _null_safe(near, a, b)


def _same(a: pa.ChunkedArray, b: pa.ChunkedArray) -> pa.ChunkedArray:
    return _null_safe(pc.equal(a, b), a, b)


def _null_safe(equal: Any, a: Any, b: Any) -> pa.ChunkedArray:
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    return pc.or_(pc.fill_null(equal, False), both_null)


def check_silver_gold(silver: pa.Table, gold: pa.Table, window_minutes: int) -> Check:
    """Per gold window, the count and aggregates equal what silver holds.

    ``silver`` has one row per event (:func:`first_per_event`): a doubled silver row is the
    bronze -> silver check's finding, gold counts each event once.
    """
    check = Check("silver_gold", "silver → gold", failing=("lost", "unexpected", "mismatched_windows"))
    expected = recompute_gold(silver, window_minutes)
    actual = gold.select(["location", "window_start", "event_count", *[c for c, _, _ in GOLD_RECIPE]])
    actual = actual.set_column(1, "window_start", to_micros(actual["window_start"]))
    joined = expected.join(
        actual, GOLD_KEY_COLUMNS, join_type="full outer", left_suffix="", right_suffix="_gold"
    )
    in_silver, in_gold = pc.is_valid(joined["event_count"]), pc.is_valid(joined["event_count_gold"])
    missing = joined.filter(pc.invert(in_gold))
    extra = joined.filter(pc.invert(in_silver))
    both = joined.filter(pc.and_(in_silver, in_gold))
    diff = pc.subtract(both["event_count"], both["event_count_gold"])
    short = pc.sum(pc.max_element_wise(diff, 0)).as_py() or 0
    over = pc.sum(pc.max_element_wise(pc.negate(diff), 0)).as_py() or 0
    same_values = pc.equal(diff, 0)
    for gold_column, _, _ in GOLD_RECIPE:
        same_values = pc.and_(
            same_values, _close(both[gold_column], both[f"{gold_column}_gold"], GOLD_REL_TOL)
        )
    differing = both.filter(pc.invert(same_values))
    check.counts = {
        "silver_events": expected["event_count"].to_numpy().sum() if expected.num_rows else 0,
        "windows": expected.num_rows,
        "gold_windows": gold.num_rows,
        # Events silver holds that gold does not count, and events gold counts that silver lacks.
        "lost": int(pc.sum(missing["event_count"]).as_py() or 0) + int(short),
        "unexpected": int(pc.sum(extra["event_count_gold"]).as_py() or 0) + int(over),
        "missing_windows": missing.num_rows,
        "extra_windows": extra.num_rows,
        "mismatched_windows": differing.num_rows + missing.num_rows + extra.num_rows,
    }
    check.counts["silver_events"] = int(check.counts["silver_events"])

    def windows(table: pa.Table, columns: Iterable[str]) -> list[dict[str, Any]]:
        rows = table.slice(0, EXAMPLES).to_pylist()
        return [
            {"location": r["location"], "window_start": ms_text(r["window_start"] // 1000)}
            | {c: r[c] for c in columns}
            for r in rows
        ]

    compared = ["event_count", "event_count_gold"]
    for gold_column, _, _ in GOLD_RECIPE:
        compared += [gold_column, f"{gold_column}_gold"]
    check.examples = {
        "missing_windows": windows(missing, ["event_count"]),
        "extra_windows": windows(extra, ["event_count_gold"]),
        "mismatched_windows": windows(differing, compared),
    }
    return check


def _sql_table(rows: list[dict[str, Any]]) -> pa.Table:
    """SQL rows (any driver's value types) as Arrow columns of gold's logical types."""
    columns: dict[str, pa.Array] = {}
    for name, kind in GOLD_COLUMN_TYPES.items():
        values = [r.get(name) for r in rows]
        if kind == "timestamp":
            times = [parse_utc(v) for v in values]
            columns[name] = pa.array(
                [None if t is None else (t - EPOCH) // MICROSECOND for t in times], pa.int64()
            )
        elif kind == "double":
            columns[name] = pa.array([None if v is None else float(v) for v in values], pa.float64())
        elif kind == "long":
            columns[name] = pa.array([None if v is None else int(v) for v in values], pa.int64())
        else:
            columns[name] = pa.array([None if v is None else str(v) for v in values], pa.string())
    return pa.table(columns)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - EPOCH


def check_gold_sql(settings: Settings, gold: pa.Table, gold_version: int | None) -> Check:
    """Every gold row equals its SQL row; none missing or extra."""
    check = Check("gold_sql", "gold → SQL", failing=("sql_mismatches",))
    with SqlReader(settings) as reader:
        rows = reader.rows(settings.sql_table) or []
        synced_version, _ = watermark(settings, reader)
    sql = _sql_table(rows)
    gold = gold.select(list(GOLD_COLUMNS))
    for name, kind in GOLD_COLUMN_TYPES.items():
        if kind == "timestamp":
            gold = gold.set_column(gold.schema.get_field_index(name), name, to_micros(gold[name]))
    joined = gold.join(sql, GOLD_KEY_COLUMNS, join_type="full outer", left_suffix="", right_suffix="_sql")
    in_gold, in_sql = pc.is_valid(joined["event_count"]), pc.is_valid(joined["event_count_sql"])
    both = joined.filter(pc.and_(in_gold, in_sql))
    differs: dict[str, Any] = {}
    equal = pa.array(np.ones(both.num_rows, dtype=bool))
    for name, kind in GOLD_COLUMN_TYPES.items():
        if name in GOLD_KEY:
            continue
        same = (
            _close(both[name], both[f"{name}_sql"], SQL_REL_TOL)
            if kind == "double"
            else _same(both[name], both[f"{name}_sql"])
        )
        differs[name] = pc.invert(same)
        equal = pc.and_(equal, same)
    different = both.filter(pc.invert(equal))
    missing = joined.filter(pc.invert(in_sql))
    extra = joined.filter(pc.invert(in_gold))
    check.counts = {
        "gold_rows": gold.num_rows,
        "sql_rows": sql.num_rows,
        "equal": both.num_rows - different.num_rows,
        "different": different.num_rows,
        "missing_in_sql": missing.num_rows,
        "extra_in_sql": extra.num_rows,
        "sql_mismatches": different.num_rows + missing.num_rows + extra.num_rows,
    }
    differing_columns = pa.table(differs).filter(pc.invert(equal)) if differs else None

    def key(r: dict[str, Any]) -> dict[str, Any]:
        return {"location": r["location"], "window_start": ms_text(r["window_start"] // 1000)}

    examples = []
    for i, r in enumerate(different.slice(0, EXAMPLES).to_pylist()):
        assert differing_columns is not None
        names = [n for n in differs if differing_columns[n][i].as_py()]
        examples.append(key(r) | {"columns": {n: {"gold": r[n], "sql": r[f"{n}_sql"]} for n in names}})
    check.examples = {
        "different": examples,
        "missing_in_sql": [key(r) for r in missing.slice(0, EXAMPLES).to_pylist()],
        "extra_in_sql": [key(r) for r in extra.slice(0, EXAMPLES).to_pylist()],
    }
    if gold_version is not None and synced_version != gold_version:
        check.notes.append(
            f"SQL was last synced from gold version {synced_version}; gold is at version {gold_version}: "
            "run `python -m pipeline sync`"
        )
    return check


def quarantined_device_seqs(bodies: Iterable[str | None]) -> pa.Table:
    """``(device_id, device_seq)`` of the quarantined bodies that are JSON objects carrying both."""
    devices, numbers = [], []
    for body in bodies:
        if not body or '"deviceSeq"' not in body:
            continue
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(event, dict):
            continue
        device, number = event.get("deviceId"), event.get("deviceSeq")
        if isinstance(device, str) and type(number) is int and -(2**63) <= number < 2**63:
            devices.append(device)
            numbers.append(number)
    return pa.table(
        {"device_id": pa.array(devices, pa.string()), "device_seq": pa.array(numbers, pa.int64())}
    )


def check_devices(silver: pa.Table, quarantined: pa.Table) -> Check:
    """Per device, ``deviceSeq`` numbers missing between its lowest and highest, and repeats."""
    check = Check("devices", "per device (deviceSeq)", failing=("devices_with_gaps",), report_only=True)
    seqs = silver.select(["device_id", "device_seq"]).filter(pc.is_valid(silver["device_seq"]))
    per_device = seqs.group_by("device_id").aggregate(
        [
            ("device_seq", "min"),
            ("device_seq", "max"),
            ("device_seq", "count"),
            ("device_seq", "count_distinct"),
        ]
    )
    span = pc.add(pc.subtract(per_device["device_seq_max"], per_device["device_seq_min"]), 1)
    gaps = pc.subtract(span, per_device["device_seq_count_distinct"])
    repeats = pc.subtract(per_device["device_seq_count"], per_device["device_seq_count_distinct"])
    # Missing numbers that a quarantine holds: the event reached the hub but was rejected.
    ranges = per_device.select(["device_id", "device_seq_min", "device_seq_max"])
    candidates = distinct(quarantined, ["device_id", "device_seq"]).join(
        ranges, "device_id", join_type="inner"
    )
    inside = pc.and_(
        pc.greater_equal(candidates["device_seq"], candidates["device_seq_min"]),
        pc.less_equal(candidates["device_seq"], candidates["device_seq_max"]),
    )
    explained = semi(
        candidates.filter(inside).select(["device_id", "device_seq"]),
        distinct(seqs, ["device_id", "device_seq"]),
        ["device_id", "device_seq"],
        anti=True,
    )
    explained_per_device = explained.group_by("device_id").aggregate([([], "count_all")])
    table = per_device.append_column("gaps", gaps).append_column("repeats", repeats)
    table = table.join(explained_per_device, "device_id", join_type="left outer")
    quarantined_gaps = pc.fill_null(table["count_all"], 0)
    unexplained = pc.subtract(table["gaps"], quarantined_gaps)
    table = table.append_column("unexplained", unexplained).sort_by("device_id")
    with_gaps = table.filter(pc.greater(table["unexplained"], 0))
    with_repeats = table.filter(pc.greater(table["repeats"], 0))
    check.counts = {
        "devices": table.num_rows,
        "devices_with_gaps": with_gaps.num_rows,
        "missing_seq": int(pc.sum(table["unexplained"]).as_py() or 0),
        "missing_seq_quarantined": int(pc.sum(quarantined_gaps).as_py() or 0),
        "devices_with_repeats": with_repeats.num_rows,
        "repeated_seq": int(pc.sum(table["repeats"]).as_py() or 0),
    }
    check.examples = {
        "gaps": _gap_examples(seqs, with_gaps),
        "repeats": [
            {
                "device_id": r["device_id"],
                "repeated": r["repeats"],
                "lowest": r["device_seq_min"],
                "highest": r["device_seq_max"],
            }
            for r in with_repeats.slice(0, EXAMPLES).to_pylist()
        ],
    }
    if check.counts["devices_with_gaps"]:
        check.notes.append(
            "deviceSeq numbers missing from silver and from every quarantine: events lost before the hub, "
            "or rejected ones whose deviceId or deviceSeq could not be read"
        )
    return check


def _gap_examples(seqs: pa.Table, devices: pa.Table) -> list[dict[str, Any]]:
    """For the first devices with gaps: the first missing ranges of each (a few devices' rows only)."""
    examples = []
    names = devices["device_id"].slice(0, EXAMPLES)
    rows = seqs.filter(pc.is_in(seqs["device_id"], value_set=names.combine_chunks()))
    for name in names.to_pylist():
        numbers = np.unique(rows.filter(pc.equal(rows["device_id"], name))["device_seq"].to_numpy())
        steps = np.diff(numbers)
        where = np.nonzero(steps > 1)[0][:5]
        examples.append(
            {
                "device_id": name,
                "missing": [[int(numbers[i]) + 1, int(numbers[i + 1]) - 1] for i in where],
            }
        )
    return examples
