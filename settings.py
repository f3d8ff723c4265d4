"""The one place that reads configuration.

Settings are read the way the Functions host reads them: the environment first, then the
``Values`` of ``local.settings.json`` next to this file, then the local defaults below. Every
setting is listed (with its local default) in ``local.settings.sample.json`` and the README.
Nothing else in the project reads ``os.environ``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent
LOCAL_SETTINGS_FILE = PROJECT_ROOT / "local.settings.json"


# SQL identifiers the sync may create: its own tables add suffixes (`<table>_location`), so the
# table name leaves room for the longest one within the 64 characters functions/warehouse.py takes.
SQL_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
SQL_TABLE_MAX_LENGTH = 64 - len("_location")
# Azure Storage container names (the local lake refuses what ADLS would refuse).
CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")
MAX_HUB_PARTITIONS = 1024  # Event Hubs' largest partition count (Dedicated tier)


class SettingsError(ValueError):
    """A setting has a value the pipeline cannot use."""


def _local_settings_values(path: Path) -> dict[str, str]:
    """The ``Values`` of local.settings.json as strings; null (like "") leaves the default."""
    if not path.is_file():
        return {}
    try:
        # utf-8-sig: editors on Windows save JSON with a byte order mark; the Functions host takes it.
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise SettingsError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise SettingsError(f"{path.name} is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise SettingsError(
            f'{path.name} must hold a JSON object with a "Values" object, got {_kind(document)}'
        )
    values = document.get("Values")
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise SettingsError(
            f'"Values" in {path.name} must be an object of setting names to values, got {_kind(values)}'
        )
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            out[name] = str(value)
        else:
            raise SettingsError(
                f"{name} in {path.name} must be a string, number or boolean, got {_kind(value)}"
            )
    return out


def _kind(value: object) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _folder(name: str, path: Path) -> Path:
    """``path`` if it is a folder or can be created as one, else a SettingsError naming ``name``."""
    for existing in (path, *path.parents):
        if existing.exists():
            if not existing.is_dir():
                where = "is a file" if existing == path else f"is inside {existing}, which is a file"
                raise SettingsError(f"{name} must be a folder (created when missing), but {path} {where}")
            return path
    return path


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`load_settings`; properties give typed views."""

    values: Mapping[str, str]

    def get(self, name: str, default: str = "") -> str:
        """Return a raw setting: environment, then local.settings.json, then ``default``."""
        value = self.values.get(name)
        return default if value is None or value == "" else value

    def get_int(self, name: str, default: int) -> int:
        raw = self.get(name, str(default))
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None

    # --- local state ------------------------------------------------------------------------
    @cached_property
    def home(self) -> Path:
        """The one folder holding all local state: ``$PIPELINE_HOME`` or ``.local/``."""
        path = Path(self.get("PIPELINE_HOME", str(PROJECT_ROOT / ".local"))).expanduser().resolve()
        return _folder("PIPELINE_HOME", path)

    # --- Event Hubs -------------------------------------------------------------------------
    @property
    def eventhub_name(self) -> str:
        return self.get("EVENTHUB_NAME", "weather")

    @property
    def eventhub_consumer_group(self) -> str:
        return self.get("EVENTHUB_CONSUMER_GROUP", "ingest")

    @property
    def eventhub_connection(self) -> str:
        """Connection string (secret); empty means use the embedded hub or the namespace."""
        return self.get("EVENTHUB_CONNECTION")

    @property
    def eventhub_namespace(self) -> str:
        """Fully qualified namespace for identity-based (DefaultAzureCredential) connections."""
        return self.get("EVENTHUB_CONNECTION__fullyQualifiedNamespace")

    @property
    def local_hub_partitions(self) -> int:
        partitions = self.get_int("LOCAL_HUB_PARTITIONS", 4)
        if not 1 <= partitions <= MAX_HUB_PARTITIONS:
            raise SettingsError(
                f"LOCAL_HUB_PARTITIONS must be 1 to {MAX_HUB_PARTITIONS} (as in Event Hubs), got {partitions}"
            )
        return partitions

    @property
    def local_hub_path(self) -> Path:
        return self.home / "hub.db"

    @property
    def local_host_time_scale(self) -> float:
        """Multiplies the local Functions host's waits (retry delays, maxWaitTime); tests shorten them."""
        raw = self.get("LOCAL_HOST_TIME_SCALE", "1")
        try:
            scale = float(raw)
        except ValueError:
            scale = -1.0
        if not 0 < scale <= 1000:
            raise SettingsError(f"LOCAL_HOST_TIME_SCALE must be a number above 0 (1: real time), got {raw!r}")
        return scale

    # --- the lake (ADLS Gen2, or a local folder) ----------------------------------------------
    @property
    def lake_account_url(self) -> str:
        """``https://<account>.blob.core.windows.net`` for ADLS with DefaultAzureCredential."""
        return self.get("LAKE_ACCOUNT_URL")

    @property
    def lake_connection_string(self) -> str:
        """Storage connection string (secret; Azurite in tests). Empty: account URL or local."""
        return self.get("LAKE_CONNECTION_STRING")

    @property
    def local_lake_path(self) -> Path:
        # Not checked to be a folder: the local lake is storage, and the ingest Function waits for
        # storage it cannot write to (a file in the way included) until it can.
        return Path(self.get("LOCAL_LAKE_PATH", str(self.home / "lake"))).expanduser().resolve()

    @property
    def bronze_container(self) -> str:
        return self._container("BRONZE_CONTAINER", "bronze")

    @property
    def quarantine_container(self) -> str:
        return self._container("QUARANTINE_CONTAINER", "quarantine")

    def _container(self, name: str, default: str) -> str:
        value = self.get(name, default)
        if not CONTAINER_NAME.fullmatch(value):
            raise SettingsError(
                f"{name} must be a storage container name (3-63 lowercase letters, digits and single "
                f"hyphens), got {value!r}"
            )
        return value

    @property
    def bronze_stream(self) -> str:
        return self.get("BRONZE_STREAM", "weather")

    @property
    def bronze_format(self) -> str:
        """``jsonl`` (default), ``jsonl.gz`` or ``avro``."""
        value = self.get("BRONZE_FORMAT", "jsonl").lower()
        if value not in ("jsonl", "jsonl.gz", "avro"):
            raise SettingsError(f"BRONZE_FORMAT must be jsonl, jsonl.gz or avro, got {value!r}")
        return value

    # --- Spark / Delta ---------------------------------------------------------------------
    @property
    def silver_table_uri(self) -> str:
        return self.get("SILVER_TABLE_URI", str(self.local_lake_path / "silver" / "weather"))

    @property
    def silver_quarantine_table_uri(self) -> str:
        return self.get(
            "SILVER_QUARANTINE_TABLE_URI", str(self.local_lake_path / "silver" / "weather_quarantine")
        )

    @property
    def gold_table_uri(self) -> str:
        return self.get("GOLD_TABLE_URI", str(self.local_lake_path / "gold" / "weather_summary"))

    @property
    def checkpoint_location(self) -> str:
        return self.get("CHECKPOINT_LOCATION", str(self.local_lake_path / "_checkpoints" / "weather"))

    @property
    def window_minutes(self) -> int:
        minutes = self.get_int("WINDOW_MINUTES", 5)
        if minutes <= 0 or 1440 % minutes:
            raise SettingsError(
                f"WINDOW_MINUTES must be a number of minutes that divides a day evenly (1, 5, 15, 60, ...), "
                f"got {minutes}"
            )
        return minutes

    @property
    def spark_trigger_seconds(self) -> int:
        seconds = self.get_int("SPARK_TRIGGER_SECONDS", 10)
        if seconds < 1:
            raise SettingsError(f"SPARK_TRIGGER_SECONDS must be 1 or more, got {seconds}")
        return seconds

    @property
    def spark_stall_timeout_seconds(self) -> int:
        """A micro-batch with no progress for this long is stopped and replayed (0: never)."""
        seconds = self.get_int("SPARK_STALL_TIMEOUT_SECONDS", 900)
        if seconds < 0:
            raise SettingsError(f"SPARK_STALL_TIMEOUT_SECONDS must be 0 (off) or positive, got {seconds}")
        return seconds

    # --- SQL -------------------------------------------------------------------------------
    @property
    def sql_connection(self) -> str:
        """ODBC connection string (secret). Empty: the embedded SQLite warehouse."""
        return self.get("SQL_CONNECTION")

    @property
    def sqlite_path(self) -> Path:
        return self.home / "warehouse.db"

    @property
    def sql_schema(self) -> str:
        return _sql_identifier("SQL_SCHEMA", self.get("SQL_SCHEMA", "dbo"), 64)

    @property
    def sql_table(self) -> str:
        return _sql_identifier("SQL_TABLE", self.get("SQL_TABLE", "weather_summary"), SQL_TABLE_MAX_LENGTH)

    @property
    def sync_schedule(self) -> str:
        """NCRONTAB (six fields, seconds first) for the timer Function."""
        schedule = self.get("SYNC_SCHEDULE", "0 */1 * * * *")
        fields = schedule.split()
        # Only the shape here: settings.py is deployed, and the Functions host (locally
        # pipeline/host/indexing.py, with croniter) checks the expression itself when it indexes the timer.
        problem = "" if len(fields) == 6 else f"has {len(fields)} fields"
        if problem:
            raise SettingsError(
                f"SYNC_SCHEDULE must be an NCRONTAB expression of six fields, seconds first "
                f"(e.g. '0 */1 * * * *'): {schedule!r} {problem}"
            )
        return schedule

    # --- storage credentials for the deltalake reader in the sync Function --------------------
    @property
    def lake_account_name(self) -> str:
        return self.get("LAKE_ACCOUNT_NAME")

    @property
    def lake_account_key(self) -> str:
        return self.get("LAKE_ACCOUNT_KEY")

    # --- validation up front -------------------------------------------------------------------
    def validate(self, names: Iterable[str]) -> None:
        """Check the named settings' values all at once, before a command starts any work.

        Raises:
            SettingsError: One line naming each bad setting, its value and what is allowed.
        """
        problems: list[str] = []
        for name in names:
            check = _CHECKS.get(name)
            if check is None:
                continue  # free text (names, URIs, secrets): nothing to check locally
            try:
                check(self)
            except SettingsError as exc:
                if str(exc) not in problems:  # settings derived from PIPELINE_HOME fail with its error
                    problems.append(str(exc))
        if problems:
            raise SettingsError("; ".join(problems))


def _sql_identifier(name: str, value: str, max_length: int) -> str:
    if not SQL_IDENTIFIER.fullmatch(value) or len(value) > max_length:
        raise SettingsError(
            f"{name} must be a plain SQL identifier (a letter or _, then letters, digits or _; at most "
            f"{max_length} characters), got {value!r}"
        )
    return value


# The settings with rules, and the property that checks each one (Settings.validate).
_CHECKS: dict[str, Callable[[Settings], object]] = {
    "PIPELINE_HOME": lambda s: s.home,
    "LOCAL_HUB_PARTITIONS": lambda s: s.local_hub_partitions,
    "BRONZE_CONTAINER": lambda s: s.bronze_container,
    "QUARANTINE_CONTAINER": lambda s: s.quarantine_container,
    "BRONZE_FORMAT": lambda s: s.bronze_format,
    "WINDOW_MINUTES": lambda s: s.window_minutes,
    "SPARK_TRIGGER_SECONDS": lambda s: s.spark_trigger_seconds,
    "SPARK_STALL_TIMEOUT_SECONDS": lambda s: s.spark_stall_timeout_seconds,
    "SQL_SCHEMA": lambda s: s.sql_schema,
    "SQL_TABLE": lambda s: s.sql_table,
    "SYNC_SCHEDULE": lambda s: s.sync_schedule,
}


def debug_requested(environ: Mapping[str, str] | None = None) -> bool:
    """``PIPELINE_DEBUG`` is set (environment only: it must work when local.settings.json does not)."""
    value = (os.environ if environ is None else environ).get("PIPELINE_DEBUG", "")
    return value.strip().lower() not in ("", "0", "false", "no")


def load_settings(
    environ: Mapping[str, str] | None = None, local_settings_file: Path | None = None
) -> Settings:
    """Read settings: environment first, then local.settings.json ``Values``, then defaults."""
    merged = _local_settings_values(local_settings_file or LOCAL_SETTINGS_FILE)
    merged.update(os.environ if environ is None else environ)
    return Settings(values=merged)
