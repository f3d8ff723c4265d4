"""The Databricks Asset Bundle cannot be deployed from here: check it against the code instead.

The Databricks CLI (a Go binary from GitHub) cannot be installed here. What it checks is covered two
ways: every target's jobs load in Databricks' own typed job models (`databricks-bundles`, which
rejects unknown fields and bad enum values), and the CLI's target-mode, run_as and variable rules
are encoded below from its source (bundle/config/mutator/resourcemutator/validate_target_mode.go,
run_as.go, bundle/config/mutator/set_variables.go). The wheel build itself is
tests/integration/test_databricks_wheel.py.
"""

from __future__ import annotations

import copy
import glob
import importlib
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from databricks.bundles.jobs import Job

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "databricks.yml"
PLACEHOLDER = re.compile(r"\{\{job\.parameters\.([A-Za-z_]+)\}\}")
VARIABLE = re.compile(r"\$\{var\.([A-Za-z_]+)\}")


def load_bundle() -> tuple[dict[str, Any], dict[str, tuple[Path, dict[str, Any]]]]:
    bundle = yaml.safe_load(BUNDLE.read_text())
    jobs: dict[str, tuple[Path, dict[str, Any]]] = {}
    for pattern in bundle["include"]:
        for name in sorted(glob.glob(str(ROOT / pattern))):
            resource = yaml.safe_load(Path(name).read_text())
            for key, job in resource["resources"]["jobs"].items():
                jobs[key] = (Path(name), job)
    return bundle, jobs


def resolve(value: str, bundle: dict[str, Any]) -> str:
    return VARIABLE.sub(lambda m: str(bundle["variables"][m.group(1)]["default"]), value)


def scripts() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def tasks() -> list[tuple[str, Path, dict[str, Any], dict[str, Any]]]:
    _, jobs = load_bundle()
    return [(key, path, job, task) for key, (path, job) in jobs.items() for task in job["tasks"]]


def assigned_variables(bundle: dict[str, Any], target: str, cli_vars: dict[str, str]) -> dict[str, str]:
    """Each variable's value for a target as the CLI assigns it: `--var`, else the target's
    default, else the bundle's; a variable left without a value fails, used or not."""
    overrides = bundle["targets"][target].get("variables") or {}
    values = {}
    for name in cli_vars:
        if name not in bundle["variables"]:
            raise ValueError(f"variable {name} has not been defined")
    for name, declared in bundle["variables"].items():
        override = overrides.get(name)
        target_default = override.get("default") if isinstance(override, dict) else override
        for candidate in (cli_vars.get(name), target_default, declared.get("default")):
            if candidate is not None:
                values[name] = str(candidate)
                break
        else:
            raise ValueError(f"no value assigned to required variable {name}")
    return values


def substitute(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    if isinstance(value, str):
        return VARIABLE.sub(lambda m: variables[m.group(1)], value)
    return value


# What this file knows how to apply from a target, the way the CLI merges it into the bundle.
TARGET_KEYS = {"mode", "default", "workspace", "run_as", "variables"}


def target_jobs(bundle: dict[str, Any], target: str, cli_vars: dict[str, str]) -> dict[str, Job]:
    """The jobs a target deploys, loaded in Databricks' typed models (unknown fields fail)."""
    settings = bundle["targets"][target]
    assert set(settings) <= TARGET_KEYS, (
        f"teach target_jobs how the CLI applies {set(settings) - TARGET_KEYS}"
    )
    variables = assigned_variables(bundle, target, cli_vars)
    run_as = settings.get("run_as", bundle.get("run_as"))  # a target's run_as replaces the bundle's
    _, jobs = load_bundle()
    loaded = {}
    for key, (_, job) in jobs.items():
        job = copy.deepcopy(job)
        if run_as is not None:
            job.setdefault("run_as", run_as)  # the CLI's SetRunAs: jobs without their own get it
        loaded[key] = Job.from_dict(substitute(job, variables))
    return loaded


def documented_bundle_commands() -> list[tuple[str, dict[str, str]]]:
    """(target, --var assignments) of every `databricks bundle validate/deploy` the docs show."""
    commands = []
    for doc in (ROOT / "README.md", ROOT / "docs" / "spark.md"):
        text = doc.read_text().replace("\\\n", " ")
        for line in text.splitlines():
            if not re.match(r"\s*databricks bundle (validate|deploy)\b", line):
                continue
            words = shlex.split(line.split("#")[0].replace("<", "").replace(">", ""))
            target = words[words.index("-t") + 1] if "-t" in words else default_target()
            assignments = [words[i + 1] for i, word in enumerate(words) if word == "--var"]
            command = (target, dict(a.split("=", 1) for a in assignments))
            if command not in commands:
                commands.append(command)
    return commands


def command_id(command: tuple[str, dict[str, str]]) -> str:
    target, cli_vars = command
    return " ".join([f"-t {target}", *(f"--var {name}" for name in cli_vars)])


def default_target() -> str:
    bundle, _ = load_bundle()
    (name,) = [name for name, target in bundle["targets"].items() if target.get("default")]
    return str(name)


def target_mode_errors(bundle: dict[str, Any], target: str) -> list[str]:
    """The errors `databricks bundle validate -t <target>` reports for the target's mode and run_as
    (the CLI's rules, from its source; its root_path recommendation held as an error), plus this
    project's own rule for production."""
    settings = bundle["targets"][target]
    mode = settings.get("mode", "")
    workspace = settings.get("workspace") or {}
    run_as = settings.get("run_as", bundle.get("run_as"))
    errors = []
    if mode not in ("development", "production", ""):
        errors.append(f"unsupported value '{mode}' specified for 'mode'")
    if run_as is not None:
        identities = [run_as.get(k) for k in ("service_principal_name", "user_name") if run_as.get(k)]
        if len(identities) != 1:
            errors.append("run_as section must specify exactly one identity")
    if mode == "development":
        # Every workspace path a development target sets must be the deploying user's.
        for key in ("root_path", "file_path", "resource_path", "artifact_path", "state_path"):
            path = {**(bundle.get("workspace") or {}), **workspace}.get(key, "")
            if path and not path.startswith("~/") and "${workspace.current_user." not in path:
                errors.append(f"{key} must start with '~/' or contain the current username")
    if mode == "production":
        # The CLI: only the target's own workspace.root_path counts (isExplicitRootSet), so that
        # one copy of the target is deployed. Without it validation fails, or only recommends it
        # when every job has a run_as (or a service principal deploys).
        if not workspace.get("root_path"):
            errors.append("target with 'mode: production' must set 'workspace.root_path'")
        # This project (Databricks' advice for production): jobs run as a service principal
        # named by a variable, not as whoever deployed.
        if not (run_as and VARIABLE.fullmatch(str(run_as.get("service_principal_name", "")))):
            errors.append("production jobs must run_as a service_principal_name given by a variable")
    return errors


def test_bundle_defines_the_streaming_and_the_reprocess_job() -> None:
    _, jobs = load_bundle()
    entry_points = {task["python_wheel_task"]["entry_point"] for _, _, _, task in tasks()}
    assert set(jobs) == {"weather_stream", "weather_reprocess"}
    assert entry_points == {"weather-spark-stream", "weather-spark-reprocess"}


def test_every_variable_the_bundle_uses_is_declared() -> None:
    bundle, _ = load_bundle()
    used = set()
    for path in [BUNDLE, *(ROOT / "resources").glob("*.yml")]:
        used |= set(VARIABLE.findall(path.read_text()))
    assert used <= set(bundle["variables"])


def test_the_documented_validate_and_deploy_commands_cover_every_target() -> None:
    bundle, _ = load_bundle()
    assert {target for target, _ in documented_bundle_commands()} == set(bundle["targets"])


@pytest.mark.parametrize("command", documented_bundle_commands(), ids=command_id)
def test_every_documented_bundle_command_loads_its_targets_jobs_in_databricks_job_models(
    command: tuple[str, dict[str, str]],
) -> None:
    target, cli_vars = command
    bundle, _ = load_bundle()
    jobs = target_jobs(bundle, target, cli_vars)
    assert set(jobs) == {"weather_stream", "weather_reprocess"}
    assert target_mode_errors(bundle, target) == []
    if bundle["targets"][target].get("mode") == "production":
        principal = cli_vars["service_principal_id"]
        assert {job.as_dict()["run_as"]["service_principal_name"] for job in jobs.values()} == {principal}
        assert jobs["weather_stream"].as_dict()["schedule"]["pause_status"] == "UNPAUSED"


def test_the_job_models_refuse_a_misspelled_field() -> None:
    _, jobs = load_bundle()
    job = copy.deepcopy(jobs["weather_stream"][1])
    job["max_concurent_runs"] = job.pop("max_concurrent_runs")
    with pytest.raises(ValueError, match="max_concurent_runs"):
        Job.from_dict(job)


def test_the_production_target_has_its_own_root_path_under_the_deploying_identity() -> None:
    bundle, _ = load_bundle()
    production = [name for name, t in bundle["targets"].items() if t.get("mode") == "production"]
    assert production == ["prod"]
    root_path = bundle["targets"]["prod"]["workspace"]["root_path"]
    # The path the CLI itself advises: per deploying identity, bundle and target.
    assert (
        root_path
        == "/Workspace/Users/${workspace.current_user.userName}/.bundle/${bundle.name}/${bundle.target}"
    )


@pytest.mark.parametrize(
    "remove,error",
    [
        (("workspace",), "must set 'workspace.root_path'"),
        (("workspace", "root_path"), "must set 'workspace.root_path'"),
        (("run_as",), "must run_as a service_principal_name"),
        (("run_as", "service_principal_name"), "exactly one identity"),
    ],
)
def test_a_production_target_without_its_root_path_or_run_as_is_refused(
    remove: tuple[str, ...], error: str
) -> None:
    bundle, _ = load_bundle()
    assert target_mode_errors(bundle, "prod") == []
    broken = copy.deepcopy(bundle)
    *parents, key = remove
    node = broken["targets"]["prod"]
    for parent in parents:
        node = node[parent]
    del node[key]
    assert any(error in message for message in target_mode_errors(broken, "prod"))


def test_a_root_path_set_only_for_the_whole_bundle_does_not_satisfy_production_mode() -> None:
    bundle, _ = load_bundle()
    broken = copy.deepcopy(bundle)
    broken["workspace"] = broken["targets"]["prod"].pop("workspace")
    assert "target with 'mode: production' must set 'workspace.root_path'" in target_mode_errors(
        broken, "prod"
    )


def test_prod_without_the_service_principal_variable_fails_and_dev_needs_no_variable() -> None:
    bundle, _ = load_bundle()
    with pytest.raises(ValueError, match="no value assigned to required variable service_principal_id"):
        assigned_variables(bundle, "prod", {"storage_account": "weatherlake"})
    assert assigned_variables(bundle, "dev", {})["stream_schedule_pause_status"] == "PAUSED"
    prod = assigned_variables(bundle, "prod", {"service_principal_id": "app-id"})
    assert prod["stream_schedule_pause_status"] == "UNPAUSED"


@pytest.mark.parametrize("key,path,job,task", tasks(), ids=lambda v: v if isinstance(v, str) else "")
def test_job_clusters_run_databricks_runtime_17_3_lts(
    key: str, path: Path, job: dict[str, Any], task: dict[str, Any]
) -> None:
    bundle, _ = load_bundle()
    clusters = {c["job_cluster_key"]: c["new_cluster"] for c in job["job_clusters"]}
    cluster = clusters[task["job_cluster_key"]]
    assert resolve(cluster["spark_version"], bundle) == "17.3.x-scala2.13"
    assert cluster["spark_conf"]["spark.sql.session.timeZone"] == "UTC"


@pytest.mark.parametrize("key,path,job,task", tasks(), ids=lambda v: v if isinstance(v, str) else "")
def test_each_task_runs_a_declared_entry_point_that_exists(
    key: str, path: Path, job: dict[str, Any], task: dict[str, Any]
) -> None:
    wheel_task = task["python_wheel_task"]
    assert wheel_task["package_name"] == "weather_pipeline"  # pyproject's name, normalised for the wheel
    target = scripts()[wheel_task["entry_point"]]
    module_name, function_name = target.split(":")
    assert callable(getattr(importlib.import_module(module_name), function_name))
    wheels = [lib["whl"] for lib in task["libraries"] if "whl" in lib]
    assert wheels == ["../dist/*.whl"]
    bundle, _ = load_bundle()
    artifact_dir = (BUNDLE.parent / bundle["artifacts"]["weather_wheel"]["path"]).resolve()
    assert (path.parent / wheels[0]).parent.resolve() == artifact_dir / "dist"  # where the build writes
    assert (artifact_dir / "pyproject.toml").is_file()


@pytest.mark.parametrize("key,path,job,task", tasks(), ids=lambda v: v if isinstance(v, str) else "")
def test_job_parameters_are_exactly_what_the_job_code_parses(
    key: str, path: Path, job: dict[str, Any], task: dict[str, Any]
) -> None:
    bundle, _ = load_bundle()
    defaults = {p["name"]: resolve(str(p["default"]), bundle) for p in job["parameters"]}
    # Required dates have no default on purpose; give them one the way `bundle run --params` would.
    defaults.update({k: "2026-11-20" for k in ("from", "to") if k in defaults})
    arguments = [str(a) for a in task["python_wheel_task"]["parameters"]]
    referenced = {name for a in arguments for name in PLACEHOLDER.findall(a)}
    assert referenced == set(defaults), "every job parameter is passed, and only those"

    module_name = scripts()[task["python_wheel_task"]["entry_point"]].split(":")[0]
    parser = importlib.import_module(module_name).build_parser()
    options = {s for action in parser._actions for s in action.option_strings}
    flags = [a for a in arguments if a.startswith("--")]
    assert set(flags) <= options
    required = {s for action in parser._actions if action.required for s in action.option_strings}
    assert required <= set(flags)
    args = parser.parse_args([PLACEHOLDER.sub(lambda m: defaults[m.group(1)], a) for a in arguments])
    assert args.bronze_source == "autoloader"
    assert args.window_minutes == int(defaults["window_minutes"])
    assert args.bronze_path == defaults["bronze_path"] and args.gold_table == defaults["gold_table"]
