"""Bronze names read back: the batch a file holds, and which files a repair supersedes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from functions.ingest_core import EventColumns, batch_file_stem, hub_tag
from pipeline.bronze_names import BronzeName, repair_path, superseded

FOLDER = "weather/ingest_date=2026-11-22/hour=07"
STEM = "p3-00000000000000000010-00000000000000000013-20261122T074320500Z-2c5e562f"


def test_a_name_the_function_writes_reads_back_as_what_the_hub_assigned() -> None:
    first = datetime(2026, 11, 22, 7, 43, 20, 500_999, tzinfo=UTC)
    events = EventColumns(
        bodies=[b"a", b"b"],
        sequence_numbers=[10, 13],
        offsets=["0", "1"],
        enqueued_times=[first, first],
        partition_keys=[None, None],
        properties=[{}, {}],
        system_properties=[{}, {}],
    )
    stem = batch_file_stem("3", events, hub_tag("weather"))

    name = BronzeName.parse(f"{FOLDER}/{stem}.jsonl.gz")

    assert name is not None
    assert (name.partition, name.first_sequence_number, name.last_sequence_number) == ("3", 10, 13)
    assert name.first_enqueued_ms == int(first.replace(microsecond=500_000).timestamp() * 1000)
    assert (name.tag, name.format) == (hub_tag("weather"), "jsonl.gz")
    assert name.batch_stem == f"{FOLDER}/{stem}" and not name.is_repair


def test_a_batch_without_a_partition_id_has_none() -> None:
    name = BronzeName.parse(
        "px0123456789abcdef-00000000000000000000-00000000000000000004-20261122T074320500Z-2c5e562f.avro"
    )
    assert name is not None and name.partition is None and name.format == "avro"


@pytest.mark.parametrize(
    "file", ["p0-0-2.avro", "p0-hand-made.jsonl", f"{STEM}.parquet", f"{STEM}-repair-xyz.jsonl", "_tmp.jsonl"]
)
def test_names_the_function_does_not_write_read_as_none(file: str) -> None:
    assert BronzeName.parse(f"{FOLDER}/{file}") is None


def test_a_repair_is_named_after_the_file_it_supersedes_and_keeps_its_conflict_digest() -> None:
    conflicted = f"{FOLDER}/{STEM}-conflict-0123456789abcdef.avro"

    repair = repair_path(conflicted, "fedcba9876543210")
    name = BronzeName.parse(repair)

    assert repair == f"{FOLDER}/{STEM}-conflict-0123456789abcdef-repair-fedcba9876543210.avro"
    assert name is not None and name.is_repair
    assert name.batch_stem == f"{FOLDER}/{STEM}"
    assert name.conflict_digest == "0123456789abcdef"


def test_a_repair_supersedes_its_file_only_and_a_repaired_repair_supersedes_that_repair() -> None:
    original = f"{FOLDER}/{STEM}.jsonl"
    other = f"{FOLDER}/{STEM.replace('p3-', 'p2-')}.jsonl"
    first = repair_path(original, "1111111111111111")
    second = repair_path(first, "2222222222222222")
    elsewhere = f"weather/ingest_date=2026-11-23/hour=07/{STEM}-repair-3333333333333333.jsonl"

    assert superseded([original, other]) == set()
    assert superseded([original, other, first]) == {original}
    assert superseded([original, other, first, second]) == {original, first}
    # Another format's file, or a repair in another folder, supersedes nothing.
    assert superseded([original, first.replace(".jsonl", ".avro"), elsewhere]) == set()
