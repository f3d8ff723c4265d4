"""The Spark job's Python step (``check_arrow``, run by ``mapInArrow``) on Arrow batches, without a
SparkSession: the contract applied per batch, envelope times read as ``try_to_timestamp`` does.
The DataFrame transforms around it are tests/integration/test_spark_transforms.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fixtures.bronze_files import compact, utc_text, weather_body

PROCESSED = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)


def _check_inputs(bodies: list[bytes | None], enqueued: list[datetime | None], malformed: list[bool]) -> Any:
    """An Arrow batch shaped as check_bronze hands it to its Python step."""
    import pyarrow as pa

    from spark.transforms import _BRONZE_REASONS

    rows = len(bodies)
    return pa.RecordBatch.from_pydict(
        {
            "Body": pa.array(bodies, pa.binary()),
            _BRONZE_REASONS: pa.array(
                [["bronze_malformed"] if bad else [] for bad in malformed], pa.list_(pa.string())
            ),
            "EnqueuedTimeUtc": pa.array([utc_text(t) if t else None for t in enqueued], pa.string()),
            "IngestedTimeUtc": pa.array([utc_text(PROCESSED)] * rows, pa.string()),
            "partition_id": pa.array(["0"] * rows),
            "sequence_number": pa.array(range(rows), pa.int64()),
            "source_file": pa.array(["f"] * rows),
            "_envelope_event_id": pa.array([f"env-{i}" for i in range(rows)]),
            "_corrupt_record": pa.array([None] * rows, pa.string()),
            "records_in_file": pa.array([rows] * rows, pa.int64()),
        }
    )


def test_the_python_step_judges_time_against_each_enqueued_time_or_now_when_there_is_none() -> None:
    from spark.transforms import check_arrow

    soon = compact(weather_body("Oslo", T0 + timedelta(minutes=10), event_id="soon"))
    late = compact(weather_body("Oslo", T0 - timedelta(days=1), event_id="late"))
    # No enqueued time: judged against now, so T0 + 10 minutes (long past) is valid.
    batch = _check_inputs([soon, soon, late, None], [T0, None, None, T0], [False, False, False, True])
    out = check_arrow(batch).to_pydict()
    assert out["_reasons"] == [["future_time"], [], [], ["bronze_malformed"]]
    assert out["event_id"] == ["soon", "soon", "late", None]
    assert out["location"] == [None, "Oslo", "Oslo", None]  # rejected rows carry no values
    assert out["_rejected_body"] == [soon, None, None, None]
    assert out["_envelope_event_id"] == ["env-0", None, None, "env-3"]  # kept for rejected rows only
    assert out["event_time"][1:3] == [T0 + timedelta(minutes=10), T0 - timedelta(days=1)]
    assert out["enqueued_time"] == [T0, None, None, T0] and out["ingested_at"] == [PROCESSED] * 4


def test_the_python_step_reads_envelope_times_as_try_to_timestamp_does() -> None:
    import pyarrow as pa

    from spark.transforms import _utc_times

    texts = ["2026-11-22T07:00:00.123Z", "2026-11-22T08:00:00+01:00", "2026-11-22T07:00:00", "soon", None]
    got = _utc_times(pa.array(texts, pa.string())).to_pylist()
    at_seven = T0 + timedelta(milliseconds=123)
    assert got == [at_seven, T0, T0, None, None]  # a time without offset is UTC; junk is null
    assert _utc_times(pa.array(texts[:2], pa.string())).to_pylist() == [at_seven, T0]  # the fast path


def test_the_python_step_keeps_an_all_valid_batch_whole_and_reads_nanosecond_times() -> None:
    from spark.transforms import check_arrow

    # Seven fraction digits: Arrow's fast time cast refuses them, fromisoformat cuts to micros.
    body = compact({**weather_body("Oslo", T0, event_id="ns"), "eventTime": "2026-11-22T07:00:00.1234567Z"})
    out = check_arrow(_check_inputs([body, compact(weather_body("Oslo", T0))], [T0, T0], [False] * 2))
    assert out.num_rows == 2 and out.column("_reasons").to_pylist() == [[], []]
    assert out.column("event_time").to_pylist()[0] == T0 + timedelta(microseconds=123456)
    assert out.column("_rejected_body").null_count == 2


def test_the_python_step_returns_an_empty_batch_for_an_empty_one() -> None:
    from spark.transforms import _CHECKED_ARROW_SCHEMA, check_arrow

    out = check_arrow(_check_inputs([], [], []))
    assert out.num_rows == 0 and out.schema == _CHECKED_ARROW_SCHEMA


@pytest.mark.parametrize(
    ("rows", "sequenced", "written", "incomplete"),
    [
        (3, 3, 3, False),  # as written
        (2, 2, 3, True),  # cut short (truncated, cut on a line boundary, a block skipped)
        (4, 4, 3, True),  # more lines than written
        (3, 2, 3, True),  # a line that lost its envelope (damaged bytes, a cut line)
        (5, 5, None, False),  # written before files carried their count: nothing to check
    ],
)
def test_a_file_is_incomplete_when_its_readable_records_are_not_the_ones_it_was_written_with(
    rows: int, sequenced: int, written: int | None, incomplete: bool
) -> None:
    from spark.transforms import is_incomplete

    assert is_incomplete(rows, sequenced, written) is incomplete
