"""What the state folder remembers about its own runs, for the report: two append-only JSON-lines files.

``$PIPELINE_HOME/lag.jsonl``: one sample of each stage's lag per line, appended by continuous
``run`` (the live status line shows the same figures). ``$PIPELINE_HOME/runs.jsonl``: one line per
command that wrote to the folder (when it started, what, with which settings; secrets masked).
Both are only ever appended to; a line cut short by a crash is skipped when read.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from settings import PROJECT_ROOT, Settings

LAG_FILE = "lag.jsonl"
RUNS_FILE = "runs.jsonl"
SAMPLE_SETTINGS = PROJECT_ROOT / "local.settings.sample.json"

# Parts of a connection string (ODBC, storage, Event Hubs) or URI that let one in.
_SECRET_PART = re.compile(
    r"(?i)\b(pwd|password|accountkey|sharedaccesskey|sharedaccesssignature|sig|token|clientsecret)"
    r"(\s*=\s*)(\{[^}]*\}|[^;&]*)"
)
_SECRET_NAME = re.compile(r"(?i)(key|secret|password|token|connection$)")


def append(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON object as a line (one write, so concurrent appenders do not interleave)."""
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record, default=str) + "\n")


def read(path: Path) -> list[dict[str, Any]]:
    """Every object in a JSON-lines file (none when it does not exist); broken lines are skipped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a line cut short by a crash mid-write
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def documented_settings() -> list[str]:
    """Every setting the project documents, in the order of local.settings.sample.json."""
    try:
        values = json.loads(SAMPLE_SETTINGS.read_text(encoding="utf-8"))["Values"]
    except (OSError, ValueError, KeyError):
        return []
    return [str(name) for name in values]


def mask(name: str, value: str) -> str:
    """``value`` fit to show: passwords and keys in connection strings and URIs become ``***``."""
    if not value:
        return value
    masked = _SECRET_PART.sub(lambda m: f"{m.group(1)}{m.group(2)}***", value)
    if masked == value and "=" not in value and _SECRET_NAME.search(name):
        return "***"  # a bare secret (an account key): nothing in it is fit to show
    return masked


def settings_snapshot(settings: Settings) -> dict[str, str]:
    """The documented settings as set (environment or local.settings.json), secrets masked.

    A setting left empty is absent: its default applied.
    """
    return {name: mask(name, settings.get(name)) for name in documented_settings() if settings.get(name)}


def record_run(settings: Settings, command: str) -> None:
    """Note in ``runs.jsonl`` that ``command`` started writing to the state folder, and how."""
    append(
        settings.home / RUNS_FILE,
        {
            "at_utc": datetime.now(UTC).isoformat(),
            "command": command,
            "pid": os.getpid(),
            "settings": settings_snapshot(settings),
        },
    )
