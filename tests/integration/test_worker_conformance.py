"""The real Azure Functions Python worker loads the published app and writes what the local host writes.

The worker library (``azure-functions-runtime``, Python >= 3.13) lives in ``.venv-worker``
(`make install`, or `make worker-env`); ``worker_driver.py`` runs under it, indexes the app with the
worker's own start-up handler and invokes it with host-shaped ``InvocationRequest``s. The same
events then go through :class:`pipeline.host.LocalFunctionsHost`, and both lakes must hold the
same bronze and quarantine files, record for record. Apps the worker refuses, the local host
must refuse too.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from azure.functions import FunctionApp

from contract.lake_layout import format_of
from functions.bronze import decode_bronze, decode_jsonl
from functions.lake import LakeStorage, LocalLake
from localhub import LocalConsumer, LocalEventHub
from pipeline.host import HostError, LocalFunctionsHost, trigger_metadata
from settings import PROJECT_ROOT, Settings
from tests.fixtures.deploy import published_files
from tests.fixtures.gold import Gold, expected, sqlite_rows, window
from tests.fixtures.local_host import make_settings, produce

pytestmark = pytest.mark.integration

WORKER_VENV = PROJECT_ROOT / ".venv-worker"
DRIVER = Path(__file__).with_name("worker_driver.py")


def worker_python() -> Path:
    python = WORKER_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(
            f"{python} is missing: the Functions worker conformance test needs the worker's own venv. "
            "Build it with `make worker-env` (needs a Python >= 3.13; see scripts/worker_env.py)",
            pytrace=False,
        )
    return python


def run_worker(app_dir: Path, environment: dict[str, str], invocations: list[Any] | None = None) -> Any:
    """Start the worker on ``app_dir`` with these app settings; return the driver's answer."""
    done = subprocess.run(
        [str(worker_python()), str(DRIVER)],
        input=json.dumps({"app_dir": str(app_dir), "invocations": invocations or []}),
        cwd=app_dir,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(app_dir), **environment},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def published_app(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `func azure functionapp publish` ships, in a folder of its own."""
    target = tmp_path_factory.mktemp("published")
    for relative in published_files():
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / relative, target / relative)
    return target


def host_invocations(settings: Settings, batch_size: int) -> list[dict[str, Any]]:
    """The host's ingest invocations for the hub's events: one per partition batch, bodies as binary."""
    hub = LocalEventHub(settings.local_hub_path, settings.eventhub_name)
    consumer = LocalConsumer(hub, settings.eventhub_consumer_group)
    invocations = []
    for partition in hub.partition_ids:
        received = consumer.receive_batch(partition, batch_size)
        if not received:
            continue
        metadata = trigger_metadata(received, settings.eventhub_name, settings.eventhub_consumer_group)
        invocations.append(
            {
                "function": "ingest",
                "input_data": {
                    "events": {"collection_bytes": [base64.b64encode(e.body).decode() for e in received]}
                },
                "trigger_metadata": {name: json.dumps(value) for name, value in metadata.items()},
            }
        )
    hub.close()
    return invocations


def records(lake: LakeStorage, container: str) -> dict[str, list[dict[str, Any]]]:
    """Each file's records, without the one field that is the clock (IngestedTimeUtc)."""
    found = {}
    for path in lake.list(container):
        data = lake.read(container, path)
        rows = decode_bronze(data, format_of(path)) if container == "bronze" else decode_jsonl(data)
        found[path] = [{k: v for k, v in row.items() if k != "IngestedTimeUtc"} for row in rows]
    return found


def test_real_worker_loads_the_published_app_and_writes_what_the_local_host_writes(
    published_app: Path, tmp_path: Path
) -> None:
    worker_home, local_home = tmp_path / "worker", tmp_path / "local"
    worker_settings, local_settings = make_settings(worker_home), make_settings(local_home)
    produce(local_settings, 400)  # some bad, with partition keys and properties
    invocations = host_invocations(local_settings, batch_size=1000)
    rows = [window("Oslo", 0, 1.5), window("Lima", 5, 21.25)]
    for settings in (worker_settings, local_settings):
        Gold(Path(settings.gold_table_uri)).write(rows)
    timer = {
        "function": "sync_gold_to_sql",
        "input_data": {"timer": {"json": json.dumps({"IsPastDue": False})}},
    }

    answer = run_worker(published_app, dict(worker_settings.values), [*invocations, timer])
    host = LocalFunctionsHost(local_settings)
    host.run_until_idle()
    host.fire_timer("sync_gold_to_sql")

    assert answer["init"] == {"ok": True, "message": None}, answer
    functions = {f["name"]: f for f in answer["functions"]}
    assert functions["ingest"]["bindings"] == {
        "events": {"type": "eventHubTrigger", "direction": 0, "data_type": 2}  # in, binary
    }
    # What the host receives as the retry policy: indefinitely (-1), 5 s doubling to 5 min.
    assert functions["ingest"]["retry"] == {
        "strategy": "exponential_backoff",
        "max_retry_count": -1,
        "minimum_interval": 5.0,
        "maximum_interval": 300.0,
        "delay_interval": None,
    }
    assert functions["sync_gold_to_sql"]["bindings"]["timer"]["type"] == "timerTrigger"
    assert len(invocations) > 1
    assert answer["invocations"] == [{"ok": True, "message": None}] * (len(invocations) + 1)
    worker_lake, local_lake = (
        LocalLake(worker_settings.local_lake_path),
        LocalLake(local_settings.local_lake_path),
    )
    for container in ("bronze", "quarantine"):
        written = records(worker_lake, container)
        assert written, container
        assert written == records(local_lake, container)
    assert sqlite_rows(worker_settings) == sqlite_rows(local_settings) == {expected(r) for r in rows}


# Apps the worker and the local host must judge alike: module source, then None when it loads, else
# what the worker's refusal says and what the local host's says.
SAMPLE_APPS = {
    "builtin_generic": (
        """
        import azure.functions as func

        app = func.FunctionApp()

        @app.event_hub_message_trigger(arg_name="events", event_hub_name="hub", connection="EH")
        def ingest(events: list[func.EventHubEvent]) -> None:
            pass
        """,
        ("binding events has invalid non-type annotation list[azure.functions._eventhub.EventHubEvent]",) * 2,
    ),
    "builtin_generic_postponed": (
        """
        from __future__ import annotations

        import azure.functions as func

        app = func.FunctionApp()

        @app.event_hub_message_trigger(arg_name="events", event_hub_name="hub", connection="EH")
        def ingest(events: list[func.EventHubEvent]) -> None:
            pass
        """,
        ("binding events has invalid non-type annotation list[azure.functions._eventhub.EventHubEvent]",) * 2,
    ),
    "typing_list_postponed": (
        """
        from __future__ import annotations

        import typing

        import azure.functions as func

        app = func.FunctionApp()

        @app.event_hub_message_trigger(arg_name="events", event_hub_name="hub", connection="EH")
        def ingest(events: typing.List[func.EventHubEvent]) -> None:
            pass
        """,
        None,
    ),
    "postponed_name_that_does_not_resolve": (
        """
        from __future__ import annotations

        from typing import TYPE_CHECKING

        import azure.functions as func

        if TYPE_CHECKING:
            from azure.functions import TimerRequest

        app = func.FunctionApp()

        @app.timer_trigger(arg_name="timer", schedule="0 * * * * *")
        def tick(timer: TimerRequest) -> None:
            pass
        """,
        ("NameError: name 'TimerRequest' is not defined",) * 2,
    ),
    "converter_refuses_the_type": (
        """
        import azure.functions as func

        app = func.FunctionApp()

        @app.timer_trigger(arg_name="timer", schedule="0 * * * * *")
        def tick(timer: func.HttpRequest) -> None:
            pass
        """,
        (
            "do not match the corresponding function parameter's Python type annotation HttpRequest",
            'type of timer binding "timerTrigger" does not match its Python annotation "HttpRequest"',
        ),
    ),
}


def load_app(folder: Path, name: str) -> FunctionApp:
    """Import ``folder/function_app.py`` under a name of its own, as the local host's caller would."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"sample_app_{name}", folder / "function_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app: FunctionApp = module.app
    return app


@pytest.mark.parametrize("name", sorted(SAMPLE_APPS))
def test_worker_and_local_host_load_or_refuse_an_app_alike(name: str, tmp_path: Path) -> None:
    source, refusal = SAMPLE_APPS[name]
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "function_app.py").write_text(textwrap.dedent(source))
    settings = make_settings(tmp_path / "home")

    answer = run_worker(folder, dict(settings.values))
    try:
        LocalFunctionsHost(settings, load_app(folder, name))
        local: str | None = None
    except HostError as exc:
        local = str(exc)

    if refusal is None:
        assert answer["init"] == {"ok": True, "message": None}, answer
        assert local is None
    else:
        worker_says, local_says = refusal
        assert not answer["init"]["ok"]
        assert worker_says in answer["init"]["message"]
        assert local is not None and local_says in local and "\n" not in local
