"""The functions see the host's settings as environment variables while it runs, as on Azure."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import azure.functions as func
import pytest

from pipeline.host import HostError, LocalFunctionsHost
from pipeline.host.app_settings import exported
from settings import Settings, load_settings

NAME = "PIPELINE_TEST_APP_SETTING"


def make_settings(home: Path, value: str) -> Settings:
    return load_settings(
        environ={"PIPELINE_HOME": str(home), NAME: value}, local_settings_file=home / "absent.json"
    )


def reading_app(seen: list[str | None]) -> func.FunctionApp:
    """A timer function that notes what the setting is while it runs (the way load_settings reads)."""
    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule="0 0 * * * *")
    def tick(timer: func.TimerRequest) -> None:
        seen.append(load_settings().get(NAME) or None)

    return app


def test_a_function_reads_the_hosts_settings_and_the_environment_is_put_back_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NAME, "before")
    seen: list[str | None] = []
    host = LocalFunctionsHost(make_settings(tmp_path, "the host's"), reading_app(seen))

    host.fire_timer()
    host.fire_timer()

    assert seen == ["the host's", "the host's"]
    assert os.environ[NAME] == "before"


def test_a_setting_the_environment_did_not_have_is_removed_again(tmp_path: Path) -> None:
    assert NAME not in os.environ
    seen: list[str | None] = []

    LocalFunctionsHost(make_settings(tmp_path, "only while running"), reading_app(seen)).fire_timer()

    assert seen == ["only while running"]
    assert NAME not in os.environ


def test_runs_with_the_same_settings_share_the_export_and_other_settings_are_refused_meanwhile(
    tmp_path: Path,
) -> None:
    first, same, other = (make_settings(tmp_path, v) for v in ("one", "one", "two"))
    inside, release = threading.Event(), threading.Event()

    def run() -> None:
        with exported(first):
            inside.set()
            release.wait(10)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        assert inside.wait(10)
        with exported(same):
            assert os.environ[NAME] == "one"
        assert os.environ[NAME] == "one"  # the first run still holds it
        with pytest.raises(HostError, match="other settings is running in this process"), exported(other):
            pass
    finally:
        release.set()
        runner.join(10)

    assert NAME not in os.environ
    with exported(other):  # one after the other: fine
        assert os.environ[NAME] == "two"
