"""The producer: realistic, reproducible events; chaos at the asked rates; arguments; --from-file."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import contract
from localhub import LocalEventHub, ReceivedEvent
from producer.cli import main, parse_args
from producer.generate import BAD_KINDS, EXPECTED_REASON, EventGenerator, Generated, Plan
from settings import load_settings

START = datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
# Judge future_time against an enqueued time just after the simulated span, as a hub would.
ENQUEUED = START + timedelta(days=30)


def generate(n: int, **plan: object) -> list[Generated]:
    plan.setdefault("seed", 7)
    plan.setdefault("start_time", START)
    generator = EventGenerator(Plan(**plan))  # type: ignore[arg-type]
    return [next(generator) for _ in range(n)]


def hub_events(path: Path) -> list[ReceivedEvent]:
    with LocalEventHub(path) as hub:
        return [e for pid in hub.partition_ids for e in hub.read(pid, -1, 10**9)]


def run_cli(tmp_path: Path, *args: str, hub: str = "hub.db") -> int:
    settings = load_settings(environ={"PIPELINE_HOME": str(tmp_path)}, local_settings_file=tmp_path / "none")
    return main(["--quiet", "--hub-path", str(tmp_path / hub), *args], settings=settings)


# --- realistic events -------------------------------------------------------------------------


def test_generated_events_are_valid_contract_events() -> None:
    events = generate(3000)
    assert {e.kind for e in events} == {"valid"}
    for event in events:
        verdict = contract.validate_event(event.body, ENQUEUED)
        assert verdict.reasons == (), event.body


def test_each_device_has_one_location_and_increasing_device_seq() -> None:
    events = [json.loads(e.body) for e in generate(5000, devices=20, cities=5)]
    by_device: dict[str, list[dict]] = {}
    for event in events:
        by_device.setdefault(event["deviceId"], []).append(event)
    assert len(by_device) == 20
    assert len({e["location"] for e in events}) == 5
    for readings in by_device.values():
        assert len({r["location"] for r in readings}) == 1
        seqs = [r["deviceSeq"] for r in readings]
        assert seqs == list(range(len(seqs)))
        times = [datetime.fromisoformat(r["eventTime"]) for r in readings]
        assert times == sorted(times)


def test_event_ids_are_unique_uuid4s() -> None:
    ids = [json.loads(e.body)["eventId"] for e in generate(20000)]
    assert len(set(ids)) == len(ids)
    assert all(i[14] == "4" and i[19] in "89ab" and len(i) == 36 for i in ids)


def test_event_times_advance_from_the_start_time_by_interval_per_device() -> None:
    events = [json.loads(e.body) for e in generate(100, devices=10, interval=60)]
    times = [datetime.fromisoformat(e["eventTime"]) for e in events]
    assert times[0] == START
    # 10 devices reporting every 60 s: the simulated clock moves 6 s per event.
    assert times[99] - times[0] == timedelta(seconds=99 * 6)
    assert all(e["eventTime"].endswith("Z") and "T" in e["eventTime"] for e in events)


def test_temperature_follows_the_day_and_humidity_moves_against_it() -> None:
    # One device over four days: afternoons warmer than nights, and more humid when cooler.
    events = [json.loads(e.body) for e in generate(4 * 24 * 12, devices=1, cities=1, interval=300)]
    assert {e["location"] for e in events} == {events[0]["location"]}
    temps = [e["temperature"] for e in events]
    hums = [e["humidity"] for e in events]
    n = len(temps)
    mean_t, mean_h = sum(temps) / n, sum(hums) / n
    cov = sum((t - mean_t) * (h - mean_h) for t, h in zip(temps, hums, strict=True)) / n
    assert max(temps) - min(temps) > 4
    assert cov < 0
    rainy = [e for e in events if e["precipitation"] > 0]
    assert all(e["conditions"] in ("Rain", "Snow", "Thunderstorm") for e in rainy)


def test_same_seed_and_start_time_give_byte_identical_events() -> None:
    plan = {"bad_rate": 0.1, "duplicate_rate": 0.05, "late_rate": 0.05}
    first = generate(3000, seed=42, **plan)
    again = generate(3000, seed=42, **plan)
    other = generate(3000, seed=43, **plan)
    assert [e.body for e in first] == [e.body for e in again]
    assert [e.kind for e in first] == [e.kind for e in again]
    assert [e.body for e in first] != [e.body for e in other]


def test_same_seed_sends_byte_identical_events_to_the_hub(tmp_path: Path) -> None:
    args = ["--count", "2500", "--seed", "5", "--start-time", "2026-11-01T00:00:00Z", "--bad-rate", "0.05"]
    assert run_cli(tmp_path, *args, hub="one.db") == 0
    assert run_cli(tmp_path, *args, hub="two.db") == 0
    one, two = hub_events(tmp_path / "one.db"), hub_events(tmp_path / "two.db")
    assert len(one) == 2500
    assert [(e.partition_id, e.sequence_number, e.body) for e in one] == [
        (e.partition_id, e.sequence_number, e.body) for e in two
    ]


# --- chaos -------------------------------------------------------------------------------------


def test_chaos_rates_are_within_tolerance_and_each_kind_is_what_it_claims() -> None:
    n = 20000
    events = generate(n, bad_rate=0.2, duplicate_rate=0.1, late_rate=0.1, max_lateness=1800, devices=50)
    kinds = Counter("bad" if e.kind.startswith("bad:") else e.kind for e in events)
    # Binomial standard deviation at n = 20000 is at most 0.0035; allow about 4 of them.
    assert kinds["bad"] / n == pytest.approx(0.2, abs=0.015)
    assert kinds["duplicate"] / n == pytest.approx(0.1, abs=0.015)
    assert kinds["late"] / n == pytest.approx(0.1, abs=0.015)
    assert kinds["valid"] / n == pytest.approx(0.6, abs=0.015)

    seen: set[bytes] = set()
    step = timedelta(seconds=60 / 50)
    for index, event in enumerate(events):
        verdict = contract.validate_event(event.body, ENQUEUED)
        if event.kind == "duplicate":
            assert event.body in seen  # identical bytes of an event sent before
        elif event.kind == "late":
            assert verdict.valid
            assert verdict.event_time is not None
            on_time = START + index * step
            assert on_time - timedelta(seconds=1800) <= verdict.event_time <= on_time - timedelta(seconds=1)
        elif event.kind == "valid":
            assert verdict.valid
            assert verdict.event_time == START + index * step
        else:
            assert not verdict.valid
        seen.add(event.body)


def test_every_bad_kind_appears_and_earns_its_reason() -> None:
    events = generate(6000, bad_rate=1.0)
    kinds = Counter(e.kind.removeprefix("bad:") for e in events)
    assert set(kinds) == set(BAD_KINDS)
    assert min(kinds.values()) > 200  # mixed evenly, 375 each on average
    for event in events:
        expected = EXPECTED_REASON[event.kind.removeprefix("bad:")]
        reasons = contract.validate_event(event.body, ENQUEUED).reasons
        assert any(r == expected or r.startswith(expected + ":") for r in reasons), (event.kind, reasons)


def test_bad_kinds_cover_every_reason_class_the_contract_names() -> None:
    # Every reason class in the contract's docstring has a bad kind that produces it.
    named = {"too_large", "utf8", "json", "not_object", "missing", "type", "range", "length", "enum"}
    named |= {"pattern", "format", "future_time"}
    assert named <= set(EXPECTED_REASON.values())


def test_duplicates_are_sent_with_the_original_partition_key() -> None:
    events = generate(5000, duplicate_rate=0.2)
    key_of = {e.body: e.partition_key for e in events if e.kind == "valid"}
    for event in (e for e in events if e.kind == "duplicate"):
        assert key_of[event.body] == event.partition_key


def test_chaos_lands_in_the_hub_with_counts_by_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--count", "3000", "--seed", "9", "--bad-rate", "0.1", "--duplicate-rate", "0.1"]
    assert run_cli(tmp_path, *args, "--late-rate", "0.1") == 0
    events = hub_events(tmp_path / "hub.db")
    assert len(events) == 3000
    # Late and on-time events share the clock, so no valid body is in the future of its hub time.
    invalid = [e for e in events if not contract.validate_event(e.body, e.enqueued_time).valid]
    assert len(invalid) / 3000 == pytest.approx(0.1, abs=0.03)
    output = capsys.readouterr().out
    assert "duplicate" in output and "late" in output and "3,000" in output


# --- --from-file ----------------------------------------------------------------------------------


def test_from_file_sends_each_line_as_is(tmp_path: Path) -> None:
    lines = [
        b'{"deviceId": "a", "n": 1}',
        b"not json at all",
        b'{"deviceId": "a", "n": 2}',
        b"\xff\xfe broken utf-8",
        b'  {"deviceId": "b"}  \r',
        b"",
        b"[1, 2, 3]",
        b'{"deviceId": "a", "n": 3}',
    ]
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    assert run_cli(tmp_path, "--from-file", str(source)) == 0
    events = hub_events(tmp_path / "hub.db")
    assert Counter(e.body for e in events) == Counter(lines)
    with LocalEventHub(tmp_path / "hub.db") as hub:
        in_a = [e.body for e in hub.read(hub.partition_for_key("a"), -1, 100) if e.partition_key == "a"]
    assert in_a == [lines[0], lines[2], lines[7]]


def test_from_file_without_final_newline_keeps_the_last_line(tmp_path: Path) -> None:
    source = tmp_path / "two.jsonl"
    source.write_bytes(b'{"x": 1}\n{"x": 2}')
    assert run_cli(tmp_path, "--from-file", str(source)) == 0
    assert sorted(e.body for e in hub_events(tmp_path / "hub.db")) == [b'{"x": 1}', b'{"x": 2}']


# --- arguments -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--count", "-5"], "--count"),
        (["--count", "ten"], "whole number"),
        (["--rate", "fast"], "--rate"),
        (["--bad-rate", "1.5"], "between 0 and 1"),
        (["--bad-rate", "0.6", "--late-rate", "0.6"], "at most 1"),
        (["--duration", "0"], "--duration"),
        (["--devices", "0"], "--devices"),
        (["--start-time", "yesterday"], "RFC 3339"),
        (["--start-time", "2026-11-01T00:00:00"], "offset"),
        (["--target", "kafka"], "invalid choice"),
        (["--from-file", "/no/such/file"], "no such file"),
        (["--from-file", __file__, "--bad-rate", "0.1"], "as-is"),
        (["--target", "eventhub", "--hub-path", "x.db"], "--hub-path"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_count_defaults_to_1000_unless_a_duration_is_given() -> None:
    assert parse_args([]).count == 1000
    assert parse_args(["--duration", "2"]).count is None


def test_duration_stops_sending_in_time(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "--duration", "0.5", "--rate", "200") == 0
    sent = len(hub_events(tmp_path / "hub.db"))
    assert 60 <= sent <= 110  # 0.5 s at 200 events/s, paced


def test_eventhub_target_without_connection_settings_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(environ={"PIPELINE_HOME": str(tmp_path)}, local_settings_file=tmp_path / "none")
    assert main(["--target", "eventhub", "--count", "1"], settings=settings) == 2
    assert "EVENTHUB_CONNECTION" in capsys.readouterr().err


# --- batching ---------------------------------------------------------------------------------


def test_pending_batches_go_out_after_the_flush_interval_or_the_pending_cap(tmp_path: Path) -> None:
    from localhub import LocalProducerClient
    from producer.sending import BatchingSender

    now = [0.0]
    with LocalProducerClient.from_path(tmp_path / "hub.db") as client:
        sender = BatchingSender(client, max_pending_events=10, flush_interval=0.5, clock=lambda: now[0])
        for i in range(3):
            sender.send(f"{i}".encode(), "k")
        sender.poll()
        assert client.hub.count() == 0  # still waiting for more
        now[0] = 0.6
        sender.poll()
        assert client.hub.count() == 3
        for i in range(10):
            sender.send(f"x{i}".encode(), f"key-{i % 3}")
        assert client.hub.count() == 13  # the cap flushed without waiting
        assert sender.sent == 13


def test_rate_and_duration_send_exactly_rate_times_duration(tmp_path: Path) -> None:
    assert run_cli(tmp_path, "--duration", "0.5", "--rate", "200") == 0
    assert len(hub_events(tmp_path / "hub.db")) == 100  # not 101: the event due at 0.5 s is not sent


def test_from_file_of_a_folder_says_it_is_a_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--from-file", str(tmp_path)])
    assert exit_info.value.code == 2
    assert (
        f"--from-file: {tmp_path} is a folder; give one file of events, one per line"
        in capsys.readouterr().err
    )


def test_a_line_too_large_to_send_is_named_by_its_line_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "events.jsonl"
    big = b'{"deviceId": "a", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    source.write_bytes(b"\n".join([b'{"n": 1}', big, b'{"n": 3}', big]) + b"\n")
    assert run_cli(tmp_path, "--from-file", str(source)) == 0
    assert sorted(e.body for e in hub_events(tmp_path / "hub.db")) == [b'{"n": 1}', b'{"n": 3}']
    out = " ".join(capsys.readouterr().out.split())
    assert "not sent, too large for an event batch: lines 2, 4 of the file" in out
