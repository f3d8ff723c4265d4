"""The lake layout: names built and read back one way, in one place (contract/lake_layout.py)."""

from __future__ import annotations

import string
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contract.bronze import FORMATS
from contract.lake_layout import (
    CONFLICT_MARKER,
    REPAIR_MARKER,
    BatchFile,
    BatchName,
    format_of,
    is_data_file,
    parse_path,
    repair_of,
    superseded,
)
from functions.ingest_core import HubEvent, process_batch

hex16 = st.text("0123456789abcdef", min_size=16, max_size=16)
partitions = st.text(string.ascii_letters + string.digits + "_", min_size=1, max_size=32)


@st.composite
def batch_names(draw: st.DrawFn) -> BatchName:
    first = draw(st.integers(0, 2**63 - 1))
    digest = draw(st.none() | hex16)
    return BatchName(
        stream=draw(st.sampled_from(["weather", "a", "x/y", "ingest_date=1"])),
        partition_id=None if digest is not None else draw(partitions.filter(lambda p: not p.startswith("x"))),
        digest=digest,
        first_sequence_number=first,
        last_sequence_number=draw(st.integers(first, 2**63 - 1)),
        first_enqueued=draw(
            st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31), timezones=st.just(UTC))
        ).replace(microsecond=draw(st.integers(0, 999)) * 1000),
        hub_tag=draw(st.text("0123456789abcdef", min_size=8, max_size=8)),
        suffixes=tuple(
            draw(st.lists(st.tuples(st.sampled_from([CONFLICT_MARKER, REPAIR_MARKER]), hex16), max_size=2))
        ),
    )


@given(batch_names(), st.sampled_from(FORMATS))
def test_every_name_reads_back_as_the_batch_it_was_built_for(name: BatchName, fmt: str) -> None:
    path = name.path(fmt)

    assert parse_path(path) == BatchFile(name, fmt)
    assert format_of(path) == fmt
    assert is_data_file(path)


def test_the_documented_example_reads_as_its_parts() -> None:
    path = (
        "weather/ingest_date=2026-11-22/hour=07/"
        "p3-00000000000000000010-00000000000000000013-20261122T074320500Z-2c5e562f.jsonl"
    )

    parsed = parse_path(path)

    assert parsed is not None
    assert (parsed.format, parsed.path) == ("jsonl", path)
    name = parsed.name
    assert (name.stream, name.partition_id, name.digest) == ("weather", "3", None)
    assert (name.first_sequence_number, name.last_sequence_number) == (10, 13)
    assert name.first_enqueued == datetime(2026, 11, 22, 7, 43, 20, 500000, tzinfo=UTC)
    assert (name.hub_tag, name.suffixes) == ("2c5e562f", ())


def test_a_conflict_then_repair_name_keeps_the_batch_stem_and_both_digests() -> None:
    stem = "px0123456789abcdef-00000000000000000000-00000000000000000004-20260101T000000000Z-00ff00ff"
    path = f"s/ingest_date=2026-01-01/hour=00/{stem}-conflict-aaaaaaaaaaaaaaaa-repair-bbbbbbbbbbbbbbbb.avro"

    parsed = parse_path(path)

    assert parsed is not None
    assert parsed.name.batch_stem == stem
    assert parsed.name.digest == "0123456789abcdef" and parsed.name.partition_id is None
    assert parsed.name.suffixes == ((CONFLICT_MARKER, "a" * 16), (REPAIR_MARKER, "b" * 16))


@pytest.mark.parametrize(
    "path",
    [
        # a name from before the enqueued time and hub tag were in it
        "weather/ingest_date=2026-11-22/hour=07/p0-00000000000000000000-00000000000000000009.jsonl",
        "weather/ingest_date=2026-11-22/hour=07/_p0-00000000000000000000-00000000000000000009-"
        "20261122T074320500Z-2c5e562f.jsonl.0123.tmp",  # a writer's temp file
        "weather/ingest_date=2026-11-22/hour=08/p0-00000000000000000000-00000000000000000009-"
        "20261122T074320500Z-2c5e562f.jsonl",  # not in the folder of its time
        "p0-00000000000000000000-00000000000000000009-20261122T074320500Z-2c5e562f.jsonl",  # no folder
        "weather/ingest_date=2026-11-22/hour=07/p0-00000000000000000000-00000000000000000009-"
        "20261122T074320500Z-2c5e562f.parquet",  # not a bronze format
    ],
)
def test_paths_the_function_does_not_write_read_as_none(path: str) -> None:
    assert parse_path(path) is None


def test_file_names_and_formats_round_trip() -> None:
    name = BatchName("weather", "0", None, 1, 2, datetime(2026, 11, 22, tzinfo=UTC), "00000000")
    assert name.path("jsonl.gz").endswith(f"{name.stem}.jsonl.gz")
    assert format_of("x/p0-1-2.jsonl.gz") == "jsonl.gz"
    assert format_of("p0-1-2.avro") == "avro"
    with pytest.raises(ValueError):
        name.path("parquet")


def test_readers_count_finished_files_of_any_stem_and_skip_temps() -> None:
    assert is_data_file("weather/ingest_date=2026-11-22/hour=07/hand-made.jsonl.gz")
    assert not is_data_file("weather/ingest_date=2026-11-22/hour=07/_p0.jsonl.1234.tmp")
    assert not is_data_file("weather/ingest_date=2026-11-22/hour=07/.p0.jsonl")
    assert not is_data_file("weather/ingest_date=2026-11-22/hour=07/p0.json")


def test_a_partition_id_that_reads_like_the_digest_form_gets_the_digest_form() -> None:
    enqueued = datetime(2026, 11, 22, 7, tzinfo=UTC)
    events = [HubEvent(b"{}", 0, "0", enqueued)]

    name = process_batch(events, "x0123456789abcdef", "weather", enqueued).name

    assert name.partition_id is None and name.digest is not None
    assert parse_path(name.path("jsonl")) == BatchFile(name, "jsonl")


def test_the_ingest_functions_files_read_back_as_their_batch() -> None:
    enqueued = datetime(2026, 11, 22, 7, 43, 20, 123456, tzinfo=UTC)
    events = [HubEvent(b"{}", 7 + i, str(i), enqueued + timedelta(seconds=i)) for i in range(3)]

    name = process_batch(events, "2", "weather", enqueued).name
    parsed = parse_path(name.path("avro"))

    assert parsed is not None
    read = parsed.name
    assert (read.partition_id, read.first_sequence_number, read.last_sequence_number) == ("2", 7, 9)
    assert read.first_enqueued == enqueued.replace(microsecond=123000)


REPAIRED_FOLDER = "weather/ingest_date=2026-11-22/hour=07"
REPAIRED_STEM = "p3-00000000000000000010-00000000000000000013-20261122T074320500Z-2c5e562f"


def _file(path: str) -> BatchFile:
    file = parse_path(path)
    assert file is not None, path
    return file


def test_a_repair_is_named_after_the_file_it_supersedes_and_keeps_its_conflict_digest() -> None:
    conflicted = _file(f"{REPAIRED_FOLDER}/{REPAIRED_STEM}-conflict-0123456789abcdef.avro")

    repair = repair_of(conflicted, "fedcba9876543210")

    suffixes = "-conflict-0123456789abcdef-repair-fedcba9876543210"
    assert repair.path == f"{REPAIRED_FOLDER}/{REPAIRED_STEM}{suffixes}.avro"
    assert repair.name.is_repair and not conflicted.name.is_repair
    assert repair.name.batch == conflicted.name.batch != conflicted.name
    assert repair.name.conflict_digest == "0123456789abcdef"
    assert repair.name.first_enqueued_ms == 1795333400500


def test_a_repair_supersedes_its_file_only_and_a_repaired_repair_supersedes_that_repair() -> None:
    original = f"{REPAIRED_FOLDER}/{REPAIRED_STEM}.jsonl"
    other = f"{REPAIRED_FOLDER}/{REPAIRED_STEM.replace('p3-', 'p2-')}.jsonl"
    first = repair_of(_file(original), "1111111111111111").path
    second = repair_of(_file(first), "2222222222222222").path
    elsewhere = f"weather/ingest_date=2026-11-23/hour=07/{REPAIRED_STEM}-repair-3333333333333333.jsonl"

    assert superseded([original, other]) == set()
    assert superseded([original, other, first]) == {original}
    assert superseded([original, other, first, second]) == {original, first}
    # Another format's file, or a repair in another folder, supersedes nothing.
    assert superseded([original, first.replace(".jsonl", ".avro"), elsewhere]) == set()
