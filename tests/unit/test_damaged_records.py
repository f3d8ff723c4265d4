"""What a damaged bronze file still yields; nothing made up from its damaged bytes counts as an event."""

from __future__ import annotations

import json

import pyarrow as pa

from pipeline.lake_records import FILE_COLUMN, plausible_records, read_records
from spark.transforms import _utc_times

NAME = (
    "weather/ingest_date=2026-11-22/hour=07/"
    "p1-00000000000000000010-00000000000000000019-20261122T070000000Z-2c5e562f.avro"
)


def test_a_json_lines_file_cut_mid_line_yields_its_whole_lines_and_says_why_not_all() -> None:
    lines = [json.dumps({"SequenceNumber": n, "EventId": f"e{n}"}).encode() + b"\n" for n in range(4)]
    data = b"".join(lines)

    records, problem = read_records(data[:-9], "jsonl")

    assert [r["EventId"] for r in records] == ["e0", "e1", "e2"]
    assert problem == "1 line is not a JSON object (a cut or damaged file)"
    assert read_records(data, "jsonl") == ([json.loads(line) for line in lines], None)


def test_records_made_up_from_damaged_bytes_are_dropped_and_other_files_are_left_alone() -> None:
    records = pa.table(
        {
            "PartitionId": ["1", "1", "7", "1", "1", "9"],
            "SequenceNumber": [10, 11, 12, 90000, 13, 5],
            "EnqueuedTimeUtc": ["2026-11-22T07:00:00.000Z"] * 4 + ["20.8-12-04T09:17:17.898Z", "x"],
            FILE_COLUMN: pa.array([0, 0, 0, 0, 0, 1], pa.int32()),
        }
    )
    undamaged = "weather/ingest_date=2026-11-22/hour=07/hand-made.jsonl"

    kept = plausible_records(records, [NAME, undamaged], damaged={0})

    # The damaged file keeps its records that fit its name: partition 1, sequence 10..19, a time.
    assert kept["SequenceNumber"].to_pylist() == [10, 11, 5]
    assert plausible_records(records, [NAME, undamaged], damaged=set()) == records


def test_enqueued_times_that_are_not_utf8_read_as_no_time_rather_than_failing_the_batch() -> None:
    texts = pa.array([b"2026-11-22T07:00:00.000Z", b"\xf2\xff\x01", None], pa.binary()).view(pa.string())

    times = _utc_times(texts)

    assert times.to_pylist()[1:] == [None, None]
    assert times[0].as_py().isoformat() == "2026-11-22T07:00:00+00:00"
