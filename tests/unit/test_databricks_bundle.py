"""The Databricks Asset Bundle cannot be deployed from here: check it against the code instead."""

from __future__ import annotations

import glob
import importlib
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

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


@pytest.mark.slow
def test_the_bundle_artifact_build_makes_a_wheel_with_the_job_code_and_entry_points(tmp_path: Path) -> None:
    # Build from a copy: an in-tree build would leave build/ and *.egg-info in the checkout.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("contract", "spark"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "dist"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), str(source), "-q"]
    subprocess.run(command, check=True, cwd=tmp_path, capture_output=True, timeout=300)
    (wheel,) = out.glob("weather_pipeline-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
    assert {
        "spark/job.py",
        "spark/reprocess.py",
        "spark/transforms.py",
        "spark/delta_tables.py",
        "spark/bronze_source.py",
        "contract/event.v1.schema.json",
        "contract/bronze.avsc",
    } <= names
    # Only what runs on Databricks: no local session, test helpers or other top-level modules.
    assert {n.split("/")[0] for n in names if not n.startswith("weather_pipeline-")} == {"contract", "spark"}
    for name, target in scripts().items():
        assert f"{name} = {target}" in entry_points
