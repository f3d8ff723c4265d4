"""`pipeline report`: a self-contained HTML page with inline charts, and a PNG of the main chart."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from pipeline import report
from tests.unit.test_status import T0, _settings, build_home


def _gold_with_temperatures(home: Path) -> None:
    starts = [T0 + timedelta(minutes=5 * i) for i in range(3)]
    table = pa.table(
        {
            "location": ["Reykjavík"] * 3 + ["São Paulo"] * 3,
            "window_start": pa.array(starts * 2, pa.timestamp("us", "UTC")),
            "avg_temperature": [-3.5, -2.0, -1.25, 24.0, 25.5, 23.75],
        }
    )
    write_deltalake(
        str(home / "lake" / "gold" / "weather_summary"), table, mode="overwrite", schema_mode="overwrite"
    )


def test_report_is_one_html_file_with_three_inline_charts_and_a_png(tmp_path: Path) -> None:
    build_home(tmp_path)
    _gold_with_temperatures(tmp_path)
    files = report.write_report(_settings(tmp_path))

    assert files.html == tmp_path / "reports" / "report.html"
    assert files.png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    page = files.html.read_text(encoding="utf-8")
    assert page.count("<svg") == 3
    assert "<?xml" not in page  # inline SVG without a prolog
    assert not re.search(r"<(img|script|link)[^>]+(src|href)=", page)  # nothing loaded from elsewhere
    for location in ("Reykjavík", "São Paulo"):
        assert location in page
    for reason in ("json", "range:humidity", "missing:temperature"):
        assert reason in page
    assert "Events per minute per stage" in page
    assert not list((tmp_path / "reports").glob("_*"))  # the temp file was renamed into place


def test_report_summary_holds_the_counts_and_freshness(tmp_path: Path) -> None:
    build_home(tmp_path)
    data = report.collect(_settings(tmp_path))
    rows = dict(report.summary_rows(data))
    assert rows["events in the hub"] == "7"
    assert rows["valid (bronze records)"] == "5"
    assert rows["quarantined (ingest)"] == "2"
    assert rows["  reason json"] == "1"
    assert rows["quarantined by the Spark job"] == "1"
    assert rows["silver rows"] == "4"
    assert rows["SQL rows"] == "2"
    # Freshness 30, 30, 60, 60 s (see test_status): nearest-rank p50 = 30, p95 = 60.
    assert rows["freshness p50 (enqueued → visible in SQL)"] == "30.0 s"
    assert rows["freshness p95"] == "60.0 s"


def test_events_per_minute_counts_each_stage_in_its_minute(tmp_path: Path) -> None:
    build_home(tmp_path)
    per_minute = report.collect(_settings(tmp_path)).per_minute
    minute = T0.replace(second=0)
    # 5 bronze + 2 quarantine records; the 2 quarantine ones carry no enqueued time in this home.
    assert per_minute["enqueued in the hub"] == {minute: 5}
    assert per_minute["processed into silver"] == {minute: 4}
    assert per_minute["visible in SQL"] == {minute: 2, minute + timedelta(minutes=1): 2}


def test_report_over_an_empty_home_still_renders(tmp_path: Path) -> None:
    files = report.write_report(_settings(tmp_path / "fresh"))
    page = files.html.read_text(encoding="utf-8")
    assert "no gold windows yet" in page
    assert "nothing quarantined" in page
