"""The README only shows commands that exist and explains every setting."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

import pytest

from settings import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
MAKEFILE = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")

pytestmark = [pytest.mark.e2e]


def _shown(pattern: str) -> list[str]:
    return sorted(set(re.findall(pattern, README)))


@pytest.mark.parametrize("command", _shown(r"python -m pipeline ([a-z]+)"))
def test_every_pipeline_command_in_the_readme_exists(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", command, "--help"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"python -m pipeline {command}" in result.stdout


def _producer_options() -> list[str]:
    lines = re.findall(r"python -m producer([^\n`#]*)", README)
    return sorted({option for line in lines for option in re.findall(r"--[a-z-]+", line)})


@pytest.mark.parametrize("option", _producer_options())
def test_every_producer_option_in_the_readme_exists(option: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "producer", "--help"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert option in result.stdout


@pytest.mark.parametrize("target", _shown(r"\bmake ([a-z0-9-]+)"))
def test_every_make_target_in_the_readme_exists(target: str) -> None:
    assert re.search(rf"^{re.escape(target)}:", MAKEFILE, re.MULTILINE), target


def test_every_setting_in_the_sample_is_explained() -> None:
    sample = json.loads((PROJECT_ROOT / "local.settings.sample.json").read_text(encoding="utf-8"))
    missing = [key for key in sample["Values"] if f"`{key}`" not in README]
    assert not missing


def test_every_linked_doc_exists() -> None:
    for link in _shown(r"\]\(((?:docs|contract)/[^)#]+)\)"):
        assert (PROJECT_ROOT / link).is_file(), link


def _commands() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every `python -m pipeline` command and subcommand with its parser (e.g. `sql script`)."""
    from pipeline.cli import build_parser

    found: list[tuple[str, argparse.ArgumentParser]] = []

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subcommands:
            found.append((prefix, parser))
        for action in subcommands:
            for name, sub in action.choices.items():
                walk(f"{prefix} {name}".strip(), sub)

    walk("", build_parser())
    return found


CLI_REFERENCE = README[README.index("### CLI reference") :]
CLI_REFERENCE = CLI_REFERENCE[: CLI_REFERENCE.index("\n### ", 1)]


@pytest.mark.parametrize(("command", "parser"), _commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_the_cli_reference_documents_every_command_and_option(
    command: str, parser: argparse.ArgumentParser
) -> None:
    rows = [line for line in CLI_REFERENCE.splitlines() if re.match(rf"\| `{re.escape(command)}[ `]", line)]
    assert rows, f"`{command}` is missing from the README's CLI reference"
    options = [o for a in parser._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
    missing = [option for option in options if not any(option in row for row in rows)]
    assert not missing, f"{command}: {missing} not in its row of the README's CLI reference"
