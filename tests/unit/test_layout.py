"""The map holds: the import rules of docs/architecture.md, the names it cites, and the test folders.

Imports are read with ``ast`` (every ``import``, also those inside functions), so a rule broken
by a lazy import fails here too.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PACKAGES = ["contract", "functions", "spark", "pipeline", "producer", "localhub", "bench"]
MODULES = ["settings", "function_app"]  # the two project modules at the root
OURS = {*PACKAGES, *MODULES, "tests"}

# A part -> the other parts it may import (docs/architecture.md, "Packages and who imports whom").
MAY_IMPORT: dict[str, set[str]] = {
    "contract": set(),
    "localhub": set(),
    "settings": {"contract"},
    "functions": {"contract", "settings"},
    "function_app": {"functions", "contract", "settings"},
    "spark": {"contract"},
    "producer": {"contract", "settings", "localhub"},
    "pipeline": {"contract", "settings", "functions", "function_app", "spark", "producer", "localhub"},
    "bench": OURS - {"bench"},  # tests only for tests/fixtures (the servers, the bronze writer)
}

# Unit tests are pure and fast: no Java, no servers, no processes. pyspark.errors is exception
# classes only (no JVM), for how the CLI words a Java failure.
UNIT_MAY_NOT_IMPORT = ("pyspark", "subprocess", "tests.fixtures.spark", "tests.fixtures.servers")
UNIT_MAY_IMPORT = ("pyspark.errors",)
SERVER_FIXTURES = {"spark", "azurite", "postgres"}  # tests/conftest.py's, taken by argument name


def imported_modules(path: Path) -> Iterator[str]:
    """Every absolute module a file imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def files_of(part: str) -> list[Path]:
    return sorted((ROOT / part).rglob("*.py")) if part in PACKAGES else [ROOT / f"{part}.py"]


def imported_parts(part: str) -> dict[str, set[str]]:
    """The other project parts a part imports -> the files that import them."""
    found: dict[str, set[str]] = {}
    for path in files_of(part):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in OURS and top != part:
                found.setdefault(top, set()).add(path.relative_to(ROOT).as_posix())
    return found


@pytest.mark.parametrize("part", list(MAY_IMPORT))
def test_each_part_imports_only_what_the_map_allows(part: str) -> None:
    imported = imported_parts(part)
    forbidden = {other: sorted(files) for other, files in imported.items() if other not in MAY_IMPORT[part]}
    assert forbidden == {}, f"{part} may import only {sorted(MAY_IMPORT[part])}"


def test_the_import_reader_sees_the_imports_the_map_describes() -> None:
    # The rules above look for something: known edges must be found, or they would pass vacuously.
    assert {"contract", "settings"} <= set(imported_parts("functions"))
    assert "contract" in imported_parts("spark")
    assert {"functions", "spark", "localhub"} <= set(imported_parts("pipeline"))


def test_every_part_of_the_project_has_an_import_rule() -> None:
    parts = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()} - {"tests"}
    parts |= {p.stem for p in ROOT.glob("*.py")}
    assert parts == set(MAY_IMPORT)


def cited_names() -> set[str]:
    """Code names docs/architecture.md cites in backticks: paths (``functions/lake.py``, ``spark/``,
    ``ingest.py``) and dotted names (``pipeline.host.indexing``, ``functions.landing.land``)."""
    names = set()
    for text in re.findall(r"`([^`\n]+)`", ARCHITECTURE.read_text(encoding="utf-8")):
        name = re.split(r"[(\s]", text, maxsplit=1)[0]
        if re.fullmatch(r"[\w/]+\.py|[\w/]+/", name) or (name.split(".")[0] in OURS and "." in name):
            names.add(name)
    return names


def missing(name: str) -> str | None:
    """Why a cited name does not exist, or None when it does."""
    if "/" in name or name.endswith(".py"):  # from the root, or inside the package its row names
        places = [ROOT / name, *(ROOT / part / name for part in [*PACKAGES, "tests"])]
        if "/" not in name:
            places += [path for part in [*PACKAGES, "tests"] for path in (ROOT / part).rglob(name)]
        return None if any(place.exists() for place in places) else "no such file or folder"
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):  # the longest prefix that is a module
        base = ROOT.joinpath(*parts[:cut])
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.exists():
                rest = parts[cut:]
                return (
                    None if not rest or rest[0] in top_level_names(path) else f"{path.name} has no {rest[0]}"
                )
    return "no such module"


def top_level_names(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom | ast.Import):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
    return names


def test_every_module_and_name_the_architecture_page_cites_exists() -> None:
    names = cited_names()
    assert {"functions/ingest_core.py", "spark/transforms.py", "pipeline.host.indexing"} <= names
    assert {name: why for name in sorted(names) if (why := missing(name))} == {}


def test_no_test_module_imports_another() -> None:
    imports = {
        path.relative_to(ROOT).as_posix(): sorted(m for m in imported_modules(path) if is_test_module(m))
        for path in sorted((ROOT / "tests").rglob("*.py"))
    }
    assert {path: found for path, found in imports.items() if found} == {}, (
        "shared test code belongs in tests/fixtures/"
    )


def is_test_module(module: str) -> bool:
    return any(part.startswith("test_") for part in module.split(".")[:3]) and module.startswith("tests.")


def test_unit_tests_start_no_java_server_or_process() -> None:
    offending = {}
    for path in sorted((ROOT / "tests" / "unit").rglob("*.py")):
        found = [
            module
            for module in imported_modules(path)
            if any(module == bad or module.startswith(bad + ".") for bad in UNIT_MAY_NOT_IMPORT)
            and not any(module == ok or module.startswith(ok + ".") for ok in UNIT_MAY_IMPORT)
        ]
        found += [f"fixture {name}" for name in sorted(fixture_arguments(path) & SERVER_FIXTURES)]
        if found:
            offending[path.name] = sorted(set(found))
    assert offending == {}, "move them to tests/integration (pytestmark = pytest.mark.integration)"
    # The check looks for something: the integration helpers' imports are found.
    assert "subprocess" in set(imported_modules(ROOT / "tests" / "fixtures" / "cli.py"))
    assert "spark" in fixture_arguments(ROOT / "tests" / "integration" / "test_spark_transforms.py")


def fixture_arguments(path: Path) -> set[str]:
    return {
        arg.arg
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef)
        for arg in node.args.args
    }


def test_integration_modules_are_marked_integration() -> None:
    unmarked = [
        path.name
        for path in sorted((ROOT / "tests" / "integration").glob("test_*.py"))
        if not re.search(r"^pytestmark = .*pytest\.mark\.integration", path.read_text(), re.MULTILINE)
    ]
    assert unmarked == []


MAX_MODULE_LINES = 600  # a module a newcomer reads in one sitting (the house issue's rule)


def test_no_product_module_is_over_600_lines() -> None:
    sizes = {
        path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for part in [*PACKAGES, *MODULES]
        for path in files_of(part)
    }
    assert len(sizes) > 50  # the walk found the project
    assert {name: lines for name, lines in sizes.items() if lines > MAX_MODULE_LINES} == {}
