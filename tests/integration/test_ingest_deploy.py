"""Deployability: what `func azure functionapp publish` ships indexes on its own and declares its imports."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from settings import PROJECT_ROOT
from tests.fixtures.deploy import published_files

pytestmark = pytest.mark.integration

DEPLOYED_TOP_LEVEL = {
    "function_app.py",
    "functions",
    "contract",
    "settings.py",
    "host.json",
    "requirements.txt",
}
OUR_PACKAGES = {"function_app", "functions", "contract", "settings"}
LOCAL_ONLY = ["pipeline", "localhub", "producer", "spark", "tests", "bench"]


def test_funcignore_keeps_tests_local_state_and_local_tooling_out() -> None:
    top_level = {p.parts[0] for p in published_files()}

    assert top_level == DEPLOYED_TOP_LEVEL


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("publish")
    for relative in published_files():
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / relative, target / relative)
    return target


def test_function_app_indexes_from_the_published_files_alone(package_dir: Path) -> None:
    script = (
        "import json, sys\n"
        f"sys.path.insert(0, {str(package_dir)!r})\n"
        "import function_app\n"
        "functions = function_app.app.get_functions()\n"
        "print(json.dumps({\n"
        "    'functions': {f.get_function_name(): json.loads(f.get_function_json())['bindings'][0]['type']\n"
        "                  for f in functions},\n"
        "    'origin': function_app.__file__,\n"
        f"    'local_modules': sorted(m for m in sys.modules if m.split('.')[0] in {LOCAL_ONLY!r}),\n"
        "}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", script],
        cwd=package_dir,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(package_dir)},
    )

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["functions"]["ingest"] == "eventHubTrigger"
    assert "timerTrigger" in report["functions"].values()
    assert report["origin"].startswith(str(package_dir))
    assert report["local_modules"] == []


def _imports(source: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _distribution(module: str, owners: dict[str, list[str]]) -> str:
    top = module.split(".")[0]
    candidates = owners.get(top, [])
    if len(candidates) > 1:  # a namespace package such as azure.*: the longest matching name
        parts = module.lower().split(".")
        for size in range(len(parts), 0, -1):
            wanted = "-".join(parts[:size]).replace("_", "-")
            matching = [c for c in candidates if c.lower() == wanted]
            if matching:
                candidates = matching
                break
    assert candidates, f"no installed distribution provides {module}"
    return re.sub(r"[-_.]+", "-", candidates[0]).lower()


def test_requirements_txt_lists_every_package_the_deployed_code_imports(package_dir: Path) -> None:
    modules: set[str] = set()
    for source in package_dir.rglob("*.py"):
        modules |= _imports(source)
    third_party = {
        m
        for m in modules
        if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] not in OUR_PACKAGES
    }
    owners = importlib.metadata.packages_distributions()
    needed = {_distribution(m, owners) for m in third_party}
    lines = (PROJECT_ROOT / "requirements.txt").read_text().splitlines()
    declared = {
        re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[; ]", line.strip())[0]).lower()
        for line in lines
        if line.strip() and not line.startswith("#")
    }

    assert needed - declared == set()
