"""Pure transforms on small frames in a local SparkSession, compared whole (assertDataFrameEqual)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import chispa
import pytest
from pyspark.sql import Row
from pyspark.sql import functions as F
from pyspark.sql import types as T

from contract import validate_event
from spark.bronze_source import envelope_schema
from spark.schemas import GOLD_SCHEMA, SILVER_SCHEMA
from spark.transforms import bronze_to_silver, dedupe_events, silver_to_gold
from tests.fixtures.bronze_files import compact, envelope, weather_body

pytestmark = [pytest.mark.integration, pytest.mark.spark, pytest.mark.slow]

PROCESSED = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 22, 7, 0, tzinfo=UTC)
ENVELOPE = envelope_schema()


def assertDataFrameEqual(actual: Any, expected: Any) -> None:
    """Whole-frame comparison, any row order, doubles to 1e-9.

    ``pyspark.testing.assertDataFrameEqual`` imports pyspark.pandas, which pandas 3 breaks; chispa
    compares the same way without it.
    """
    if isinstance(expected, list):
        expected = actual.sparkSession.createDataFrame(expected, actual.schema)
    chispa.assert_approx_df_equality(
        actual, expected, precision=1e-9, ignore_nullable=True, ignore_row_order=True
    )


def bronze_rows(
    spark: Any,
    records: list[dict[str, Any]],
    corrupt: tuple[str, ...] = (),
    rescued: dict[int, str] | None = None,
) -> Any:
    """Bronze rows as a source yields them: JSON lines' envelopes, unparsable lines, and (Auto
    Loader) rescued envelope values by record index."""
    rows: list[tuple[Any, ...]] = [
        (
            r["SequenceNumber"],
            r["EnqueuedTimeUtc"],
            r["Body"].decode("utf-8", "replace"),
            r["PartitionId"],
            r["EventId"],
            r["IngestedTimeUtc"],
            len(records),
            None,
            (rescued or {}).get(i),
            "file:/lake/bronze/f.jsonl",
        )
        for i, r in enumerate(records)
    ]
    rows += [(None,) * 7 + (line, None, "file:/lake/bronze/f.jsonl") for line in corrupt]
    return spark.createDataFrame(rows, ENVELOPE)


def record(
    body: dict[str, Any] | bytes, seq: int = 0, enqueued: datetime = T0, partition: str = "0"
) -> dict[str, Any]:
    return envelope(body, partition_id=partition, sequence_number=seq, enqueued_time=enqueued)


def silver_event(spark: Any, events: list[tuple[str, datetime, float, str, str]]) -> Any:
    """Silver rows for gold tests: (location, event_time, temperature, wind_direction, conditions)."""
    rows = []
    for i, (location, at, temp, wind, cond) in enumerate(events):
        rows.append(
            (
                f"e{i}",
                "d",
                location,
                at,
                temp,
                50.0 + i,
                2.0 * i,
                wind,
                0.5,
                cond,
                i,
                1,
                None,
                "0",
                i,
                at,
                at,
                "f",
                PROCESSED,
                at.date(),
            )
        )
    return spark.createDataFrame(rows, SILVER_SCHEMA)


def test_silver_schema_types_every_contract_field_in_snake_case() -> None:
    expected = [
        ("event_id", T.StringType()),
        ("device_id", T.StringType()),
        ("location", T.StringType()),
        ("event_time", T.TimestampType()),
        ("temperature", T.DoubleType()),
        ("humidity", T.DoubleType()),
        ("wind_speed", T.DoubleType()),
        ("wind_direction", T.StringType()),
        ("precipitation", T.DoubleType()),
        ("conditions", T.StringType()),
        ("device_seq", T.LongType()),
        ("schema_version", T.IntegerType()),
        ("_rescued_data", T.StringType()),
        ("partition_id", T.StringType()),
        ("sequence_number", T.LongType()),
        ("enqueued_time", T.TimestampType()),
        ("ingested_at", T.TimestampType()),
        ("source_file", T.StringType()),
        ("processed_at", T.TimestampType()),
        ("event_date", T.DateType()),
    ]
    assert [(f.name, f.dataType) for f in SILVER_SCHEMA.fields] == expected


def test_valid_body_becomes_one_typed_silver_row_with_its_metadata(spark: Any) -> None:
    body = weather_body(
        "Oslo",
        datetime(2026, 11, 22, 6, 59, 30, 250000, tzinfo=UTC),
        event_id="e-1",
        temperature=-3.5,
        humidity=81.0,
        wind_speed=7.25,
        wind_direction="SW",
        precipitation=1.5,
        conditions="Snow",
        device_seq=42,
    )
    valid, rejected = bronze_to_silver(bronze_rows(spark, [record(body, seq=7)]), PROCESSED)
    expected = spark.createDataFrame(
        [
            (
                "e-1",
                "dev-oslo",
                "Oslo",
                datetime(2026, 11, 22, 6, 59, 30, 250000, tzinfo=UTC),
                -3.5,
                81.0,
                7.25,
                "SW",
                1.5,
                "Snow",
                42,
                1,
                None,
                "0",
                7,
                T0,
                T0 + timedelta(seconds=1),
                "file:/lake/bronze/f.jsonl",
                PROCESSED,
                date(2026, 11, 22),
            )
        ],
        SILVER_SCHEMA,
    )
    assertDataFrameEqual(valid, expected)
    assert rejected.count() == 0


def test_unknown_body_fields_are_kept_in_rescued_data_as_json(spark: Any) -> None:
    body = weather_body("Oslo", T0, event_id="e-1", firmware="2.1", sensor={"kind": "bme280", "ids": [1, 2]})
    valid, _ = bronze_to_silver(bronze_rows(spark, [record(body)]), PROCESSED)
    (rescued,) = valid.select("_rescued_data").collect()[0]
    assert json.loads(rescued) == {"firmware": "2.1", "sensor": {"kind": "bme280", "ids": [1, 2]}}


def test_missing_optional_schema_version_takes_the_contract_default(spark: Any) -> None:
    body = weather_body("Oslo", T0, event_id="e-1")
    del body["schemaVersion"], body["deviceSeq"]
    valid, _ = bronze_to_silver(bronze_rows(spark, [record(body)]), PROCESSED)
    assertDataFrameEqual(
        valid.select("event_id", "schema_version", "device_seq"),
        [Row(event_id="e-1", schema_version=1, device_seq=None)],
    )


BLANKS = ["   ", "\u00a0", "\x1c", "\x85", "\u3000 "]
ODD_TIMES = [
    "2026-11-22T07:00:00Z\n",
    "2026-11-22T07:00:00Z\r",
    "0000-01-01T00:00:00Z",
    "2026-11-23T01:01:00+18:01",
    "2026-11-23T06:59:00+23:59",
    "2026-11-22T09:00:00+01:60",
]
BAD_BODIES: list[bytes] = [
    b'{"eventId": "only-id"}',
    json.dumps({**weather_body("Oslo", T0), "temperature": "warm"}).encode(),
    json.dumps({**weather_body("Oslo", T0), "location": 12}).encode(),
    json.dumps({**weather_body("Oslo", T0), "humidity": 140, "windSpeed": -1}).encode(),
    json.dumps({**weather_body("Oslo", T0), "windDirection": "UP"}).encode(),
    json.dumps({**weather_body("Oslo", T0), "location": "   "}).encode(),
    json.dumps({**weather_body("Oslo", T0), "conditions": ""}).encode(),
    json.dumps({**weather_body("Oslo", T0), "eventTime": "22/11/2026 07:00"}).encode(),
    json.dumps({**weather_body("Oslo", T0), "eventTime": "2026-11-22T07:30:00Z"}).encode(),
    json.dumps({**weather_body("Oslo", T0), "deviceSeq": 1.5, "precipitation": None}).encode(),
    json.dumps({**weather_body("Oslo", T0), "temperature": True}).encode(),
    b'{"eventId": "x", "temperature": 1',
    b"[1, 2, 3]",
    # A number under a string field, with the same text elsewhere as a real string.
    json.dumps({**weather_body("Oslo", T0), "location": 12, "deviceId": "12"}).encode(),
    json.dumps({**weather_body("Oslo", T0), "deviceSeq": None}).encode(),
    json.dumps({**weather_body("Oslo", T0), "conditions": {"sky": "clear"}}).encode(),
    # Blank by Python's (the contract's) idea of whitespace, not Java's: NBSP, \x1c, NEL, ideographic.
    *(json.dumps({**weather_body("Oslo", T0), "location": blank}).encode() for blank in BLANKS),
    # Times the pattern's $ lets through, or Spark parses, but fromisoformat refuses.
    *(json.dumps({**weather_body("Oslo", T0), "eventTime": text}).encode() for text in ODD_TIMES),
]


# The same kinds of bad values in compact spelling (what producers send).
BAD_COMPACT_BODIES: list[bytes] = [
    compact({**weather_body("Oslo", T0), "temperature": "warm"}),
    compact({**weather_body("Oslo", T0), "location": 12}),
    compact({**weather_body("Oslo", T0), "humidity": 140.0}),
    compact({**weather_body("Oslo", T0), "windDirection": "UP"}),
    compact({**weather_body("Oslo", T0), "deviceSeq": None}),
    compact({**weather_body("Oslo", T0), "conditions": {"sky": "clear"}}),
    *(compact({**weather_body("Oslo", T0), "location": blank}) for blank in BLANKS),
    *(compact({**weather_body("Oslo", T0), "eventTime": text}) for text in ODD_TIMES),
]


@pytest.mark.parametrize("bodies", [BAD_BODIES, BAD_COMPACT_BODIES], ids=["spaced", "compact"])
def test_bodies_that_fail_the_contract_are_rejected_with_the_contracts_own_reasons(
    spark: Any, bodies: list[bytes]
) -> None:
    records = [record(body, seq=i) for i, body in enumerate(bodies)]
    valid, rejected = bronze_to_silver(bronze_rows(spark, records), PROCESSED)
    expected = [
        Row(sequence_number=i, reasons=list(validate_event(body, T0).reasons))
        for i, body in enumerate(bodies)
    ]
    assert all(row.reasons for row in expected)  # every case really is invalid per the contract
    assert valid.count() == 0
    assertDataFrameEqual(rejected.select("sequence_number", "reasons"), expected)


def test_valid_bodies_in_unusual_spellings_are_valid_and_parse_the_same(spark: Any) -> None:
    spaced_ascii = weather_body(
        "Tromsø", T0, event_id="spaced", conditions='Snow "heavy"', station={"h": [1]}
    )
    bodies = [
        json.dumps(spaced_ascii).encode(),  # ", " and ": " separators, \u escapes, nested extra field
        json.dumps(spaced_ascii, ensure_ascii=False, separators=(",", ":"))
        .replace("spaced", "compact")
        .encode(),
        # Compact, with escapes and non-ASCII text.
        compact(weather_body("Tromsø", T0, event_id="canonical", conditions='Snow "heavy" \\ drifts')),
    ]
    assert all(validate_event(body, T0).valid for body in bodies)
    records = [record(body, seq=i) for i, body in enumerate(bodies)]
    valid, rejected = bronze_to_silver(bronze_rows(spark, records), PROCESSED)
    assert rejected.count() == 0
    assertDataFrameEqual(
        valid.select("event_id", "location", "conditions", "_rescued_data"),
        [
            Row(
                event_id="spaced",
                location="Tromsø",
                conditions='Snow "heavy"',
                _rescued_data='{"station":{"h":[1]}}',
            ),
            Row(
                event_id="compact",
                location="Tromsø",
                conditions='Snow "heavy"',
                _rescued_data='{"station":{"h":[1]}}',
            ),
            Row(
                event_id="canonical",
                location="Tromsø",
                conditions='Snow "heavy" \\ drifts',
                _rescued_data=None,
            ),
        ],
    )


def test_malformed_bronze_lines_are_kept_in_quarantine_not_dropped(spark: Any) -> None:
    good = record(weather_body("Oslo", T0, event_id="ok"), seq=1)
    frame = bronze_rows(spark, [good], corrupt=('{"SequenceNumber": 3, "Body": ',))
    # An envelope that parsed but has no Body (a writer bug) is malformed too.
    no_body = [(2, "2026-11-22T07:00:00.000Z", None, "0", "", "2026-11-22T07:00:01.000Z", 1, None, None, "f")]
    fixed = frame.unionByName(spark.createDataFrame(no_body, ENVELOPE))
    valid, rejected = bronze_to_silver(fixed, PROCESSED)
    assertDataFrameEqual(valid.select("event_id"), [Row(event_id="ok")])
    assertDataFrameEqual(
        rejected.select("sequence_number", "reasons", "body"),
        [
            Row(sequence_number=2, reasons=["bronze_malformed"], body=None),
            Row(sequence_number=None, reasons=["bronze_malformed"], body='{"SequenceNumber": 3, "Body": '),
        ],
    )


def test_rows_whose_envelope_auto_loader_rescued_go_to_quarantine_with_their_body(spark: Any) -> None:
    good = record(weather_body("Oslo", T0, event_id="ok"), seq=1)
    odd = record(weather_body("Oslo", T0, event_id="odd"), seq=2)
    frame = bronze_rows(spark, [good, odd], rescued={1: '{"SequenceNumber":"2x"}'})

    valid, rejected = bronze_to_silver(frame, PROCESSED)

    assertDataFrameEqual(valid.select("event_id"), [Row(event_id="ok")])
    assertDataFrameEqual(
        rejected.select("event_id", "sequence_number", "reasons", "body"),
        [Row(event_id="odd", sequence_number=2, reasons=["bronze_rescued"], body=odd["Body"].decode())],
    )


def test_avro_bodies_as_bytes_parse_the_same_as_json_lines_and_bad_utf8_is_rejected(spark: Any) -> None:
    body = json.dumps(weather_body("Oslo", T0, event_id="e-1")).encode()
    at, ingested = "2026-11-22T07:00:00.000Z", "2026-11-22T07:00:01.000Z"
    rows: list[tuple[Any, ...]] = [
        (0, at, body, "0", "e-1", ingested, 2, None, None, "f"),
        (1, at, b"\xff\xfe{}", "0", "", ingested, 2, None, None, "f"),
    ]
    valid, rejected = bronze_to_silver(
        spark.createDataFrame(rows, envelope_schema(T.BinaryType())), PROCESSED
    )
    assertDataFrameEqual(valid.select("event_id", "location"), [Row(event_id="e-1", location="Oslo")])
    assertDataFrameEqual(
        rejected.select("sequence_number", "reasons"), [Row(sequence_number=1, reasons=["utf8"])]
    )


def test_duplicates_in_a_batch_keep_the_first_enqueued_copy(spark: Any) -> None:
    body = weather_body("Oslo", T0, event_id="dup")
    records = [
        record(body, seq=5, enqueued=T0 + timedelta(minutes=3), partition="1"),
        record(body, seq=9, enqueued=T0 + timedelta(minutes=1), partition="2"),
        record(weather_body("Oslo", T0, event_id="other"), seq=1),
    ]
    valid, _ = bronze_to_silver(bronze_rows(spark, records), PROCESSED)
    assertDataFrameEqual(
        dedupe_events(valid).select("event_id", "partition_id", "sequence_number"),
        [
            Row(event_id="dup", partition_id="2", sequence_number=9),
            Row(event_id="other", partition_id="0", sequence_number=1),
        ],
    )


def gold_row(
    location: str,
    start: datetime,
    minutes: int,
    temps: list[float],
    winds: list[str],
    conds: list[str],
    humidity: list[float],
    speeds: list[float],
) -> tuple[Any, ...]:
    def dominant(values: list[str]) -> str:
        return sorted(set(values), key=lambda v: (-values.count(v), v))[0]

    n = len(temps)
    return (
        location,
        start,
        start + timedelta(minutes=minutes),
        n,
        sum(temps) / n,
        min(temps),
        max(temps),
        sum(humidity) / n,
        sum(speeds) / n,
        max(speeds),
        0.5 * n,
        dominant(winds),
        dominant(conds),
        PROCESSED,
    )


def test_tumbling_windows_close_at_their_end_and_open_at_their_start(spark: Any) -> None:
    at = [
        T0 + timedelta(minutes=4, seconds=59, microseconds=999999),  # last instant of 07:00-07:05
        T0 + timedelta(minutes=5),  # first instant of 07:05-07:10
        T0 + timedelta(minutes=9, seconds=59),
        T0 + timedelta(minutes=10),
        T0,
    ]
    events = [("Oslo", t, float(i), "N", "Clear") for i, t in enumerate(at)]
    gold = silver_to_gold(silver_event(spark, events), 5, PROCESSED)
    w = T0
    expected = [
        gold_row("Oslo", w, 5, [0.0, 4.0], ["N"] * 2, ["Clear"] * 2, [50.0, 54.0], [0.0, 8.0]),
        gold_row(
            "Oslo",
            w + timedelta(minutes=5),
            5,
            [1.0, 2.0],
            ["N"] * 2,
            ["Clear"] * 2,
            [51.0, 52.0],
            [2.0, 4.0],
        ),
        gold_row("Oslo", w + timedelta(minutes=10), 5, [3.0], ["N"], ["Clear"], [53.0], [6.0]),
    ]
    assertDataFrameEqual(gold, spark.createDataFrame(expected, GOLD_SCHEMA))


def test_window_size_is_configurable(spark: Any) -> None:
    events = [("Oslo", T0 + timedelta(minutes=m), 1.0, "N", "Clear") for m in (0, 14, 15, 59)]
    gold = silver_to_gold(silver_event(spark, events), 15, PROCESSED)
    assertDataFrameEqual(
        gold.select("window_start", "window_end", "event_count"),
        [
            Row(window_start=T0, window_end=T0 + timedelta(minutes=15), event_count=2),
            Row(
                window_start=T0 + timedelta(minutes=15), window_end=T0 + timedelta(minutes=30), event_count=1
            ),
            Row(
                window_start=T0 + timedelta(minutes=45), window_end=T0 + timedelta(minutes=60), event_count=1
            ),
        ],
    )


def test_dominant_values_are_the_most_frequent_and_ties_go_to_the_alphabetically_first(spark: Any) -> None:
    events = [
        ("Oslo", T0, 1.0, "S", "Rain"),
        ("Oslo", T0, 1.0, "N", "Clear"),
        ("Oslo", T0, 1.0, "S", "Clear"),
        ("Oslo", T0, 1.0, "N", "Rain"),
        ("Bergen", T0, 1.0, "W", "Fog"),
        ("Bergen", T0, 1.0, "E", "Fog"),
        ("Bergen", T0, 1.0, "E", "Drizzle"),
    ]
    gold = silver_to_gold(silver_event(spark, events), 5, PROCESSED)
    assertDataFrameEqual(
        gold.select("location", "dominant_wind_direction", "dominant_conditions"),
        [
            Row(location="Oslo", dominant_wind_direction="N", dominant_conditions="Clear"),
            Row(location="Bergen", dominant_wind_direction="E", dominant_conditions="Fog"),
        ],
    )


def test_dominant_values_equal_sparks_own_deterministic_mode_on_awkward_values(spark: Any) -> None:
    import random

    from spark.transforms import dominant_values

    rng = random.Random(9)
    values = ["a", "B", "b", "é", "Z", "ä", "", None]
    rows = [
        (f"L{rng.randrange(6)}", T0 + timedelta(minutes=5 * rng.randrange(3)), rng.choice(values))
        for _ in range(400)
    ]
    frame = spark.createDataFrame(rows, "location string, window_start timestamp, conditions string")

    expected = frame.groupBy("location", "window_start").agg(
        F.mode("conditions", deterministic=True).alias("dominant_conditions")
    )
    assertDataFrameEqual(
        dominant_values(frame, "conditions"), expected.where("dominant_conditions IS NOT NULL")
    )


# The same event in many spellings, valid and not: silver must hold what the contract reads.
_COMPACT = weather_body("Oslo", T0, event_id="e-1")
SPELLINGS: list[bytes] = [
    json.dumps(_COMPACT, separators=(",", ":")).encode(),  # compact, contract order
    json.dumps({**_COMPACT, "firmware": "2.1"}, separators=(",", ":")).encode(),  # unknown key last
    json.dumps({"firmware": "2.1", **_COMPACT}, separators=(",", ":")).encode(),  # unknown key first
    json.dumps(_COMPACT).encode(),  # spaced
    json.dumps(dict(reversed(list(_COMPACT.items()))), separators=(",", ":")).encode(),  # key order
    # Keys spelled inside string values, with and without an unknown key of that name.
    json.dumps({**_COMPACT, "conditions": '"firmware":"2.1"'}, separators=(",", ":")).encode(),
    json.dumps({**_COMPACT, "conditions": '"firmware":"2.1"', "firmware": 1}, separators=(",", ":")).encode(),
    json.dumps({**_COMPACT, "conditions": 'Snow "heavy" \\ {x}'}, separators=(",", ":")).encode(),  # escapes
    json.dumps(_COMPACT, separators=(",", ":")).encode()[:-1] + b',"eventId":"e-1"}',  # repeated known key
    json.dumps(_COMPACT, separators=(",", ":")).encode()[:-1] + b',"x":1,"x":2}',  # repeated unknown key
    json.dumps(_COMPACT, separators=(",", ":")).encode() + b' "x":1}',  # trailing text after the object
    json.dumps({**_COMPACT, "temperature": 1e-05}, separators=(",", ":")).encode(),  # number spelling
    json.dumps({**_COMPACT, "location": "Tromsø"}, ensure_ascii=False, separators=(",", ":")).encode(),
    json.dumps({**_COMPACT, "extra": {"n": [1.50, 2e3]}}).encode(),  # spaced unknown value
    json.dumps({**_COMPACT, "eventId": "\ud800"}).encode(),  # a lone surrogate: no UTF-8 holds it
    json.dumps({**_COMPACT, "eventId": "\ud83d\ude00"}).encode(),  # a surrogate pair: one character
    json.dumps({**_COMPACT, "deviceSeq": 2**63}).encode(),  # past silver's 64-bit integer
    b'{"eventId":"e-1"}',
    b"{}",
    b"not json",
]


def test_silver_holds_what_the_contract_reads_from_every_spelling(spark: Any) -> None:
    from contract import parse_batch

    frame = bronze_rows(spark, [record(body, seq=i) for i, body in enumerate(SPELLINGS)])
    valid, rejected = bronze_to_silver(frame, PROCESSED)
    parsed = parse_batch(SPELLINGS, [T0] * len(SPELLINGS))
    verdicts = [validate_event(body, T0) for body in SPELLINGS]
    kept = [i for i, verdict in enumerate(verdicts) if verdict.valid]
    assert 0 < len(kept) < len(SPELLINGS)  # both sides are exercised
    assertDataFrameEqual(
        valid.select("sequence_number", "event_id", "location", "temperature", "device_seq", "_rescued_data"),
        [
            Row(
                sequence_number=i,
                event_id=parsed.values["eventId"][i],
                location=parsed.values["location"][i],
                temperature=float(parsed.values["temperature"][i]),
                device_seq=parsed.values["deviceSeq"][i],
                _rescued_data=parsed.unknown_fields[i],
            )
            for i in kept
        ],
    )
    assertDataFrameEqual(
        rejected.select("sequence_number", "reasons"),
        [Row(sequence_number=i, reasons=list(v.reasons)) for i, v in enumerate(verdicts) if not v.valid],
    )
    rescued = {row[0]: row[1] for row in valid.select("sequence_number", "_rescued_data").collect()}
    assert rescued[1] == rescued[2] == '{"firmware":"2.1"}' and rescued[6] == '{"firmware":1}'
    assert rescued[13] == '{"extra":{"n":[1.5,2000.0]}}'  # compact; values as the body spells them
    assert rescued[0] is None and rescued[5] is None
    assert {r.event_id for r in valid.where("sequence_number = 15").collect()} == {"\U0001f600"}
    reasons = {row[0]: row[1] for row in rejected.select("sequence_number", "reasons").collect()}
    assert reasons[14] == ["utf8:eventId"] and reasons[16] == ["range:deviceSeq"]


def test_file_counts_count_each_files_rows_sequenced_rows_and_valid_rows(spark: Any) -> None:
    from spark.transforms import check_bronze, file_counts

    good = [record(weather_body("Oslo", T0, event_id=f"g{i}"), seq=i) for i in range(3)]
    bad = record(b'{"eventId": "bad"}', seq=3)
    frame = bronze_rows(spark, [*good, bad], corrupt=('{"SequenceNumber": 4, "Bo',))

    counts = file_counts(check_bronze(frame, PROCESSED))

    assertDataFrameEqual(
        counts, [Row(source_file="file:/lake/bronze/f.jsonl", rows=5, sequenced=4, written=4, valid=3)]
    )
