"""The local host counts what an ingest invocation landed from the lake files, not from logs."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from functions.ingest import IngestConfig, handle_batch
from functions.lake import LocalLake
from functions.landing import BatchNameConflict
from localhub import ReceivedEvent
from pipeline.host import build_event_batch
from pipeline.host.landed import Landed, LandedReader
from settings import Settings, load_settings
from tests.fixtures.event_batches import good_body

ENQUEUED = datetime(2026, 11, 22, 7, 43, 20, 500000, tzinfo=UTC)
# Two valid events and two the contract rejects, one reason each.
BODIES = [good_body("a"), b"nope", good_body("b"), b"[1]"]


def make_settings(home: Path, fmt: str = "jsonl") -> Settings:
    return load_settings(
        environ={
            "PIPELINE_HOME": str(home),
            "LOCAL_LAKE_PATH": "",
            "LAKE_CONNECTION_STRING": "",
            "LAKE_ACCOUNT_URL": "",
            "BRONZE_FORMAT": fmt,
        },
        local_settings_file=home / "absent.json",
    )


def received(bodies: list[bytes], partition: str = "1", first_seq: int = 40) -> list[ReceivedEvent]:
    """A partition batch as the embedded hub hands it to the host."""
    return [
        ReceivedEvent(
            body=body,
            properties={"n": i},
            partition_key="oslo",
            partition_id=partition,
            sequence_number=first_seq + i,
            offset=str((first_seq + i) * 512),
            enqueued_time=ENQUEUED + timedelta(milliseconds=i),
        )
        for i, body in enumerate(bodies)
    ]


def ingest(settings: Settings, batch: list[ReceivedEvent]) -> None:
    """The ingest Function's handler on the batch, as the host delivers it."""
    events = build_event_batch(batch, settings.eventhub_name, settings.eventhub_consumer_group)
    handle_batch(events, LocalLake(settings.local_lake_path), IngestConfig.from_settings(settings))


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "avro"])
def test_counts_are_what_the_batchs_bronze_and_quarantine_files_hold(tmp_path: Path, fmt: str) -> None:
    settings = make_settings(tmp_path, fmt)
    batch = received(BODIES)
    ingest(settings, batch)

    landed = LandedReader(settings).read(batch)

    assert landed == Landed(valid=2, quarantined=2, reasons=Counter({"json": 1, "not_object": 1}))


def test_a_batch_with_no_files_counts_nothing(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    ingest(settings, received(BODIES, partition="2"))

    assert LandedReader(settings).read(received(BODIES, partition="3")) == Landed()


def test_a_replayed_batch_counts_what_its_files_hold_again(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    batch = received(BODIES)
    ingest(settings, batch)
    ingest(settings, batch)  # a no-op: the files are there

    assert LandedReader(settings).read(batch) == Landed(2, 2, Counter({"json": 1, "not_object": 1}))


def test_a_batch_whose_names_held_another_batch_is_counted_from_its_second_names(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    # Same partition, sequence numbers and first enqueued time (so the same names), other events:
    # one valid, three rejected.
    other = received([good_body("x"), b"bad", b"worse", b"{"])
    ingest(settings, other)
    ours = received([good_body("a"), good_body("b"), good_body("c"), b"nope"])
    with pytest.raises(BatchNameConflict):
        ingest(settings, ours)
    lake = LocalLake(settings.local_lake_path)
    assert len(lake.list("bronze")) == len(lake.list("quarantine")) == 2

    assert LandedReader(settings).read(ours) == Landed(3, 1, Counter({"json": 1}))
    assert LandedReader(settings).read(other) == Landed(1, 3, Counter({"json": 3}))
