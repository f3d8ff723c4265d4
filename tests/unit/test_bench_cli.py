"""`python -m bench`: names the benchmarks it has, and refuses one it has not (instead of running none)."""

from __future__ import annotations

import pytest

from bench.__main__ import available, parse_args


def test_every_bench_script_is_a_name() -> None:
    assert {"e2e", "ingest", "producer", "spark", "sql"} <= set(available())


def test_help_lists_the_benchmarks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--help"])
    assert exit_info.value.code == 0
    assert ", ".join(available()) in " ".join(capsys.readouterr().out.split())


def test_an_unknown_name_exits_2_naming_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["e2e", "nosuch"])
    assert exit_info.value.code == 2
    assert f"no benchmark named 'nosuch': choose from {', '.join(available())}" in capsys.readouterr().err


def test_no_names_means_all() -> None:
    assert parse_args([]).names == []
    assert parse_args(["sql", "e2e"]).names == ["sql", "e2e"]
