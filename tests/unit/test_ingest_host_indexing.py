"""The local Functions host indexes apps like the real host, and fails loudly where it would not."""

from __future__ import annotations

import json
import re
import typing
from pathlib import Path

import azure.functions as func
import pytest

from pipeline.host import HostError, LocalFunctionsHost
from pipeline.host.host_json import EventHubsOptions, read_host_json
from pipeline.host.indexing import index_app
from pipeline.host.retry import RetryPolicy
from settings import PROJECT_ROOT, load_settings


@pytest.fixture()
def settings(tmp_path: Path):  # type: ignore[no-untyped-def]
    return load_settings(
        environ={
            "PIPELINE_HOME": str(tmp_path),
            "EVENTHUB_NAME": "telemetry",
            "SYNC_SCHEDULE": "*/10 * * * * *",
        },
        local_settings_file=tmp_path / "absent.json",
    )


def event_hub_app(**trigger: object) -> func.FunctionApp:
    app = func.FunctionApp()
    options = {
        "arg_name": "events",
        "event_hub_name": "%EVENTHUB_NAME%",
        "connection": "EVENTHUB_CONNECTION",
        "consumer_group": "%EVENTHUB_CONSUMER_GROUP%",
        "cardinality": "many",
        **trigger,
    }

    @app.function_name("eh")
    @app.retry(
        strategy="exponential_backoff",
        max_retry_count="3",
        minimum_interval="00:00:01",
        maximum_interval="00:00:03",
    )
    @app.event_hub_message_trigger(**options)  # type: ignore[arg-type]
    def eh(events: typing.List[func.EventHubEvent]) -> None:  # noqa: UP006 - what the worker accepts
        pass

    return app


def test_app_without_functions_fails_with_one_clear_line(settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(HostError, match="registers no function") as error:
        LocalFunctionsHost(settings, func.FunctionApp())

    assert "\n" not in str(error.value)


def test_setting_names_in_bindings_resolve_from_settings_and_their_defaults(settings) -> None:  # type: ignore[no-untyped-def]
    [spec] = index_app(event_hub_app(), settings)

    assert spec.binding["eventHubName"] == "telemetry"  # from the settings given
    assert spec.binding["consumerGroup"] == "ingest"  # EVENTHUB_CONSUMER_GROUP's default
    assert spec.binding["connection"] == "EVENTHUB_CONNECTION"  # a setting name, left as is
    assert spec.retry == RetryPolicy("exponential_backoff", 3, minimum_interval=1.0, maximum_interval=3.0)


def test_binding_naming_an_unset_setting_fails(settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(HostError, match="NO_SUCH_SETTING"):
        index_app(event_hub_app(event_hub_name="%NO_SUCH_SETTING%"), settings)


def test_connection_holding_a_secret_instead_of_a_setting_name_fails(settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(HostError, match="must name an app setting"):
        index_app(event_hub_app(connection="Endpoint=sb://x/;SharedAccessKey=y"), settings)


def test_unsupported_trigger_fails(settings) -> None:  # type: ignore[no-untyped-def]
    app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

    @app.route("hello")
    def hello(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("hi")

    with pytest.raises(HostError, match="httpTrigger"):
        index_app(app, settings)


def test_timer_with_a_five_field_cron_fails(settings) -> None:  # type: ignore[no-untyped-def]
    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule="*/5 * * * *")
    def tick(timer: func.TimerRequest) -> None:
        pass

    with pytest.raises(HostError, match="six fields"):
        index_app(app, settings)


def test_exponential_retry_delays_double_and_stop_at_the_maximum() -> None:
    policy = RetryPolicy("exponential_backoff", 5, minimum_interval=2.0, maximum_interval=10.0)

    assert [policy.delay(retry) for retry in range(1, 7)] == [2.0, 4.0, 8.0, 10.0, 10.0, None]
    assert [RetryPolicy("fixed_delay", 2, delay_interval=3.0).delay(r) for r in (1, 2, 3)] == [3.0, 3.0, None]


def test_indefinite_retry_policy_never_runs_out_and_stays_at_its_maximum() -> None:
    policy = RetryPolicy("exponential_backoff", -1, minimum_interval=5.0, maximum_interval=300.0)

    assert policy.indefinite
    assert [policy.delay(r) for r in (1, 2, 6, 7, 1000, 10**9)] == [5.0, 10.0, 160.0, 300.0, 300.0, 300.0]


def test_retry_count_below_minus_one_fails_indexing(settings) -> None:  # type: ignore[no-untyped-def]
    app = func.FunctionApp()

    @app.retry(strategy="fixed_delay", max_retry_count="-2", delay_interval="00:00:01")
    @app.timer_trigger(arg_name="timer", schedule="0 * * * * *")
    def tick(timer: func.TimerRequest) -> None:
        pass

    with pytest.raises(HostError, match="-1 \\(indefinitely\\) or more"):
        index_app(app, settings)


def test_project_host_json_has_the_batch_settings_the_issue_asks_for() -> None:
    document = json.loads((PROJECT_ROOT / "host.json").read_text())
    hubs = document["extensions"]["eventHubs"]

    assert document["version"] == "2.0"
    assert document["extensionBundle"]["version"] == "[4.*, 5.0.0)"
    assert hubs["prefetchCount"] % hubs["maxEventBatchSize"] == 0
    assert hubs["batchCheckpointFrequency"] == 1
    assert hubs["initialOffsetOptions"]["type"] == "fromStart"
    # maxWaitTime only matters with a minimum batch above 1 (the extension ignores it otherwise).
    assert 1 < hubs["minEventBatchSize"] < hubs["maxEventBatchSize"]
    options = read_host_json()
    assert (options.min_event_batch_size, options.max_wait_time) == (hubs["minEventBatchSize"], 2.0)
    assert "Request" in document["logging"]["applicationInsights"]["samplingSettings"]["excludedTypes"]
    assert read_host_json().max_event_batch_size == hubs["maxEventBatchSize"]


@pytest.mark.parametrize(
    ("hubs", "complaint"),
    [
        ({"maxEventBatchSize": 0}, "maxEventBatchSize must be a positive whole number"),
        ({"minEventBatchSize": 0}, "minEventBatchSize must be a positive whole number"),
        ({"maxEventBatchSize": 100, "minEventBatchSize": 101}, "must not exceed maxEventBatchSize"),
        ({"maxWaitTime": "00:10:01"}, "maxWaitTime must be between 00:00:00 and 00:10:00"),
        ({"maxWaitTime": "soon"}, "maxWaitTime must be a timespan"),
    ],
)
def test_host_json_with_unusable_batch_settings_fails(tmp_path: Path, hubs: dict, complaint: str) -> None:
    path = tmp_path / "host.json"
    path.write_text(json.dumps({"version": "2.0", "extensions": {"eventHubs": hubs}}))

    with pytest.raises(HostError, match=re.escape(complaint)):
        read_host_json(path)


def test_host_json_defaults_are_the_event_hubs_extensions(tmp_path: Path) -> None:
    path = tmp_path / "host.json"
    path.write_text(json.dumps({"version": "2.0"}))

    assert read_host_json(path) == EventHubsOptions(100, 1, 60.0, "fromStart")


def test_project_app_indexes_an_event_hub_and_a_timer_function(settings) -> None:  # type: ignore[no-untyped-def]
    host = LocalFunctionsHost(settings)

    assert [f.name for f in host.event_hub_functions] == ["ingest"]
    assert all(f.binding["schedule"] == "*/10 * * * * *" for f in host.timer_functions)


def test_an_app_indexed_elsewhere_first_still_indexes_and_can_be_indexed_again(settings) -> None:  # type: ignore[no-untyped-def]
    app = event_hub_app()
    app.get_functions()  # e.g. other local tooling looked at the app first

    assert [s.name for s in index_app(app, settings)] == ["eh"]
    assert [f.get_function_name() for f in app.get_functions()] == ["eh"]


def test_app_the_python_worker_would_refuse_fails_indexing_with_the_workers_reason(settings) -> None:  # type: ignore[no-untyped-def]
    app = func.FunctionApp()

    @app.event_hub_message_trigger(arg_name="events", event_hub_name="hub", connection="EVENTHUB_CONNECTION")
    def eh(events: list[func.EventHubEvent]) -> None:
        pass

    with pytest.raises(HostError, match="would load no function") as error:
        LocalFunctionsHost(settings, app)

    reason = "cannot load the eh function: binding events has invalid non-type annotation list["
    assert reason in str(error.value)
    assert "\n" not in str(error.value)


def test_binding_annotation_of_a_type_its_converter_refuses_fails_indexing(settings) -> None:  # type: ignore[no-untyped-def]
    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule="0 * * * * *")
    def tick(timer: func.HttpRequest) -> None:
        pass

    with pytest.raises(HostError, match='type of timer binding "timerTrigger" does not match'):
        index_app(app, settings)


def test_parameter_without_a_binding_fails_indexing(settings) -> None:  # type: ignore[no-untyped-def]
    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule="0 * * * * *")
    def tick(timer: func.TimerRequest, extra: str) -> None:
        pass

    with pytest.raises(HostError, match=re.escape("declared in Python but not in the bindings: {'extra'}")):
        index_app(app, settings)
