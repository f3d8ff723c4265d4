"""Damaged bronze files: detected, never silent, never blocking, and repaired to exact.

Each test ingests known events, damages bronze files the way an accident would (a JSON-lines
file cut in the middle of a line or on a line boundary; an Avro file with 16 bytes overwritten in
the middle, or with its header unreadable), then runs the Spark job and the sync. The stream must
go on (every other file's events reach silver, gold and SQL), each damaged file's readable rows
go to the silver quarantine as ``bronze_incomplete`` and none to silver, and ``pipeline audit``
must name exactly the damaged files with their reason and the events held back, and count
nothing lost. ``pipeline repair`` then re-ingests them from the hub, after which the audit is ok,
SQL equals the oracle, and a second repair finds nothing to do.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import fastavro
import orjson
import pytest
from deltalake import DeltaTable

from pipeline.audit import run_audit
from pipeline.repair import run_repair
from tests.fixtures.cli import run_python
from tests.fixtures.fault_harness import FaultRow, Pipeline, settle_and_check

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]


def records_of(path: Path) -> list[dict[str, Any]]:
    """A whole bronze file's records, read with the format's own library (before any damage)."""
    data = path.read_bytes()
    if path.name.endswith(".avro"):
        return list(fastavro.reader(io.BytesIO(data)))  # type: ignore[arg-type]
    return [orjson.loads(line) for line in data.splitlines()]


def cut_mid_line(path: Path) -> None:
    data = path.read_bytes()
    cut = len(data) // 2
    while data[cut - 1 : cut] == b"\n" or data[cut : cut + 1] == b"\n":
        cut += 7  # inside a line, not at its end
    path.write_bytes(data[:cut])


def cut_on_line_boundary(path: Path) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[: len(lines) // 2]))


def overwrite_middle(path: Path, leaves_some: bool) -> None:
    """16 bytes overwritten near the middle: where the deflate block then cannot be inflated at all
    (``leaves_some`` False), or where the records before the damage still decode (True).

    Which one a given place gives depends on the bytes there; the place is chosen by reading the
    result with fastavro, a reader independent of the project's (and zlib-based, as Spark's is).
    """
    original = path.read_bytes()
    written = len(list(fastavro.reader(io.BytesIO(original))))
    middle = len(original) // 2
    for step in range(200):
        at = middle + (step // 2 + 1) * 16 * (1 if step % 2 else -1)
        data = bytearray(original)
        data[at : at + 16] = b"\xa5" * 16
        path.write_bytes(bytes(data))
        readable = readable_avro_records(path)
        if (0 < readable < written) if leaves_some else readable == 0:
            return
    raise AssertionError(f"no place near the middle of {path.name} damages it that way")


def break_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[8:24] = b"\xff" * 16  # inside the header's metadata (the schema): no record can be read
    path.write_bytes(bytes(data))


def readable_avro_records(path: Path) -> int:
    """Records fastavro reads from a damaged Avro file before it fails (an independent count)."""
    count = 0
    try:
        for _ in fastavro.reader(io.BytesIO(path.read_bytes())):
            count += 1
    except Exception:
        pass
    return count


def genuine_avro_records(path: Path, written: list[dict[str, Any]]) -> int:
    """Records fastavro reads from a damaged Avro file that are records the file was written with."""
    originals = {(r["SequenceNumber"], r["EventId"], r["Body"]) for r in written}
    count = 0
    try:
        for record in fastavro.reader(io.BytesIO(path.read_bytes())):
            count += (record["SequenceNumber"], record["EventId"], record["Body"]) in originals  # type: ignore[call-overload,index]
    except Exception:
        pass
    return count


def damage(pipe: Pipeline, damages: list[Callable[[Path], None]]) -> dict[str, list[dict[str, Any]]]:
    """Damage the largest bronze files, one way each; return every file's records as written."""
    fmt = pipe.settings.bronze_format
    files = sorted(
        (pipe.settings.local_lake_path / "bronze").rglob(f"*.{fmt}"), key=lambda p: -p.stat().st_size
    )
    assert len(files) > len(damages)
    written = {p.name: records_of(p) for p in files}
    for path, how in zip(files, damages, strict=False):
        how(path)
    return {p.name: written[p.name] for p in files[: len(damages)]} | {
        "(undamaged)": [r for p in files[len(damages) :] for r in written[p.name]]
    }


def assert_stream_went_on(pipe: Pipeline, written: dict[str, list[dict[str, Any]]]) -> None:
    """Every undamaged file's events are in silver; no event of a damaged file is, and its rows
    that Spark could read are in the silver quarantine as bronze_incomplete."""
    settings = pipe.settings
    silver_rows = DeltaTable(settings.silver_table_uri).to_pyarrow_table(columns=["event_id", "source_file"])
    silver = set(silver_rows["event_id"].to_pylist())
    rejected = DeltaTable(settings.silver_quarantine_table_uri).to_pyarrow_table(
        columns=["event_id", "reasons", "source_file"]
    )
    undamaged = {r["EventId"] for r in written["(undamaged)"]}
    assert undamaged <= silver
    for name, records in written.items():
        if name == "(undamaged)":
            continue
        only_here = {r["EventId"] for r in records} - undamaged
        from_file = [r for r in silver_rows.to_pylist() if r["source_file"].endswith(name)]
        assert not only_here & silver, (name, len(only_here & silver), len(from_file), len(records))
        rows = [r for r in rejected.to_pylist() if r["source_file"].endswith(name)]
        assert all("bronze_incomplete" in r["reasons"] for r in rows), name


def assert_audit_names_the_damage(
    pipe: Pipeline, fault: FaultRow, expected: dict[str, tuple[str, int]]
) -> None:
    """The audit fails, loses nothing, and lists exactly the damaged files (name: reason, events)."""
    report = run_audit(pipe.settings).as_json()
    fault.note = f"before repair: NOT ok, {report['damaged']} damaged files, lost {report['lost']}"
    found = {Path(d["file"]).name: (d["reason"], d["events_affected"]) for d in report["damaged_files"]}
    assert (report["ok"], report["lost"], report["doubled"]) == (False, 0, 0)
    assert found == expected
    assert report["checks"]["bronze_files"]["status"] == "failed"
    assert report["checks"]["bronze_silver"]["counts"]["pending"] == 0  # the stream went past them


def test_json_lines_cut_mid_line_and_on_a_line_boundary_are_found_and_repaired(
    tmp_path: Path, spark: Any, fault: FaultRow
) -> None:
    fault.name = "damaged bronze: JSON lines cut mid-line, and on a line boundary -> repair"
    pipe = Pipeline.create(tmp_path / "home")
    pipe.send(400)
    pipe.ingest()
    written = damage(pipe, [cut_mid_line, cut_on_line_boundary])
    mid_line, on_boundary = list(written)[:2]

    totals = pipe.spark()
    pipe.sync()

    assert totals["incomplete_files"] == 2
    assert_stream_went_on(pipe, written)
    assert_audit_names_the_damage(
        pipe,
        fault,
        {
            mid_line: ("bronze_incomplete", len(written[mid_line])),
            on_boundary: ("bronze_incomplete", len(written[on_boundary])),
        },
    )
    repaired = run_repair(pipe.settings)
    assert repaired.ok and len(repaired.repairs) == 2 and repaired.sync is not None
    assert {Path(r.damaged.file).name: r.events for r in repaired.repairs} == {
        name: len(written[name]) for name in (mid_line, on_boundary)
    }
    settle_and_check(pipe, fault)
    kept = {p.name for p in (pipe.settings.local_lake_path / "bronze").rglob("*.jsonl")}
    assert {mid_line, on_boundary} <= kept  # the damaged files are kept beside their repairs
    assert run_repair(pipe.settings).repairs == []  # nothing left to do


def test_avro_with_a_damaged_block_or_header_is_found_never_blocks_and_is_repaired_by_the_cli(
    tmp_path: Path, spark: Any, fault: FaultRow
) -> None:
    fault.name = "damaged bronze: Avro 16 bytes overwritten (x2), header unreadable -> repair CLI"
    pipe = Pipeline.create(tmp_path / "home", BRONZE_FORMAT="avro")
    pipe.send(400)
    pipe.ingest()
    written = damage(
        pipe,
        [
            partial(overwrite_middle, leaves_some=False),  # the block does not inflate: nothing readable
            partial(overwrite_middle, leaves_some=True),  # the records before the damage decode
            break_header,
        ],
    )
    no_block, part_block, no_header = list(written)[:3]
    part_path = next((pipe.settings.local_lake_path / "bronze").rglob(part_block))
    readable, genuine = readable_avro_records(part_path), genuine_avro_records(part_path, written[part_block])

    totals = pipe.spark()  # returns: the stream is not held back
    pipe.sync()
    status = run_python(pipe.environment(), "-m", "pipeline", "status", "--json", timeout=120)

    assert totals["batches"] >= 1 and totals["incomplete_files"] == 1  # the others yield no row at all
    assert_stream_went_on(pipe, written)
    assert_audit_names_the_damage(
        pipe,
        fault,
        {
            no_block: ("bronze_unreadable", len(written[no_block])),
            part_block: ("bronze_incomplete", len(written[part_block])),
            no_header: ("bronze_unreadable", len(written[no_header])),
        },
    )
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    # Bytes after the damaged place may decode as a made-up record or two: counted or not, the
    # genuine ones are.
    counted = json.loads(status.stdout)["bronze"] - len(written["(undamaged)"])
    assert genuine <= counted <= readable
    repair = run_python(pipe.environment(), "-m", "pipeline", "repair", "--json", timeout=600)
    assert repair.returncode == 0, repair.stderr[-3000:]
    done = json.loads(repair.stdout)
    assert (done["ok"], done["damaged"], done["repaired"]) == (True, 3, 3)
    assert done["sync"]["status"] == "synced"
    settle_and_check(pipe, fault)
    again = run_python(pipe.environment(), "-m", "pipeline", "repair", timeout=600)
    assert again.returncode == 0 and again.stdout.strip() == "no damaged bronze files: nothing to repair"
