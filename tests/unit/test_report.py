"""`pipeline report`'s parts that need no state folder: lag samples, chart buckets and limits, examples.

The page over a hand-built folder is tests/integration/test_report.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from pipeline import charts, report
from pipeline.orchestrate import Lag
from tests.fixtures.state_home import T0


def test_lag_samples_record_what_the_status_line_shows() -> None:
    first = Lag(at=0.0, hub=100, ingest_lag=5, spark_pending_files=1, gold_version=3, watermark=2, at_utc=T0)
    second = Lag(at=2.0, hub=300, ingest_lag=0, spark_pending_files=0, gold_version=3, watermark=2, at_utc=T0)
    assert second.line(first) == "in 100 ev/s · hub 300 · lag: ingest 0 ev, Spark 0 files, sync 1 version"
    assert second.record(first) == {
        "hub": 300, "ingest_lag": 0, "spark_pending_files": 0, "gold_version": 3, "watermark": 2,
        "at_utc": "2026-11-22T07:00:00+00:00", "events_per_second": 100.0, "sync_lag_versions": 1,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("span", "bucket", "name"),
    [(0, 1, "second"), (59, 1, "second"), (61, 2, "2 seconds"), (3600, 60, "minute"),
     (3601, 120, "2 minutes"), (86400, 1800, "30 minutes"), (30 * 86400, 43200, "12 hours"),
     (31 * 86400, 86400, "day")],
)  # fmt: skip
def test_time_buckets_keep_a_chart_within_sixty_bars(span: int, bucket: int, name: str) -> None:
    assert charts.choose_bucket([T0, T0 + timedelta(seconds=span)]) == bucket
    assert charts.bucket_name(bucket) == name


def test_quarantine_chart_names_the_top_reasons_with_counts_and_groups_the_rest() -> None:
    reasons = {f"range:field{i:02d}": 100 - i for i in range(20)}
    svg = charts.svg(charts.quarantine_reasons(reasons))
    for i in range(charts.TOP_REASONS):
        assert f"range:field{i:02d}" in svg
        assert f">{100 - i}<" in svg  # its count printed at the bar
    assert "range:field12" not in svg
    rest = sum(100 - i for i in range(charts.TOP_REASONS, 20))
    assert "8 other reasons" in svg and f">{rest}<" in svg


def test_examples_show_the_part_of_a_long_body_the_reason_is_about() -> None:
    body = json.dumps({"eventId": "e" * 100, "deviceId": "d" * 100, "humidity": 140.5, "rest": "r" * 100})
    text = report.excerpt(body, "range:humidity", width=80)
    assert '"humidity": 140.5' in text
    assert text.startswith("…") and text.endswith(f"({len(body):,} characters)")
    assert report.excerpt('{"a": 1', "json", width=80) == '{"a": 1'


def test_late_means_enqueued_after_the_events_window_ended() -> None:
    rows = [
        {"event_time": T0 + timedelta(minutes=4, seconds=59), "enqueued_time": T0 + timedelta(minutes=5)},
        {"event_time": T0 + timedelta(minutes=4), "enqueued_time": T0 + timedelta(minutes=5, seconds=1)},
        {"event_time": T0, "enqueued_time": T0 + timedelta(hours=1, seconds=30)},
    ]
    assert report.late_seconds(rows, 5) == [1.0, 3330.0]
    # With hour windows the first two are in time (their window ends at 08:00), the third is not.
    assert report.late_seconds(rows, 60) == [30.0]


def test_gold_chart_gives_forty_locations_forty_different_lines() -> None:
    styles = {tuple(sorted((k, str(v)) for k, v in charts.location_style(i).items())) for i in range(40)}
    assert len(styles) == 40


def test_a_chart_of_one_instant_spans_seconds_not_years() -> None:
    fig = charts.freshness_over_time([(T0, 37.0), (T0 + timedelta(milliseconds=300), 37.2)])
    low, high = fig.axes[0].get_xlim()  # in days
    charts.svg(fig)  # closes the figure
    assert 0 < (high - low) * 86400 < 3  # a bucket (1 s) either side of the one point
