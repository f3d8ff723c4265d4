"""Each rule has one home: a second copy of one, somewhere else in the code, fails here.

Cheap textual checks over the code that builds and reads the pipeline's data (not the tests,
which write expected values out by hand): each pattern below is a rule's spelling that only
its home may hold.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE = ["contract", "functions", "spark", "pipeline", "producer", "localhub", "bench", "tests/fixtures"]
CODE_FILES = ["settings.py", "function_app.py"]
# Fixtures that are tests' expected values written out by hand (the contract's table of bodies and
# their reasons, a state folder built in the documented layout), not code that builds the data.
BY_HAND = {"tests/fixtures/contract_cases.py", "tests/fixtures/state_home.py"}

# rule: (its home, the spellings only the home may hold, what to call instead)
RULES = {
    "lake layout": (
        "contract/lake_layout.py",
        r"ingest_date=|[\"'/]hour=|%Y%m%dT|:020d|\\d\{20\}|-conflict-|-repair-",
        "contract.lake_layout (BatchName, parse_path, format_of, is_data_file)",
    ),
    "SQL identifier": (
        "contract/sql_names.py",
        r"A-Za-z_\]\[A-Za-z0-9_\]|\[A-Za-z_\]\[\\w",
        "contract.sql_names (is_identifier, identifier_problem)",
    ),
    "bronze formats": (
        "contract/bronze.py",
        r"""["']jsonl["'],\s*["']jsonl\.gz["']|["']jsonl\.gz["'],\s*["']avro["']""",
        "contract.bronze.FORMATS",
    ),
    "reason codes": (
        "contract/",
        r"""f?["'](missing|type|range|length|enum|pattern|format|utf8|null_key|non_finite):"""
        r"""|["']bronze_(malformed|rescued|incomplete|unreadable)["']""",
        "the constants of contract.event, contract.bronze and contract.gold",
    ),
}


def code_lines() -> list[tuple[str, int, str]]:
    files = [p for folder in CODE for p in sorted((ROOT / folder).rglob("*.py"))]
    files = [p for p in files if p.relative_to(ROOT).as_posix() not in BY_HAND]
    files += [ROOT / name for name in CODE_FILES]
    return [
        (path.relative_to(ROOT).as_posix(), number, line)
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if not line.lstrip().startswith("#")
    ]


@pytest.mark.parametrize("rule", list(RULES))
def test_a_rule_is_spelled_only_in_its_home(rule: str) -> None:
    home, spelling, instead = RULES[rule]
    pattern = re.compile(spelling)
    copies = [
        f"{path}:{number}"
        for path, number, line in code_lines()
        if pattern.search(line) and not path.startswith(home)
    ]
    assert copies == [], f"a second copy of the {rule}: use {instead}"


@pytest.mark.parametrize("rule", list(RULES))
def test_each_rules_home_holds_its_spelling(rule: str) -> None:
    # The checks above look for something: the home itself must match, or they would pass vacuously.
    home, spelling, _ = RULES[rule]
    pattern = re.compile(spelling)
    assert any(path.startswith(home) and pattern.search(line) for path, _, line in code_lines()), rule
