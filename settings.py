"""The one place that reads configuration.

Settings are read the way the Functions host reads them: the environment first, then the
``Values`` of ``local.settings.json`` next to this file, then the local defaults below. Every
setting is listed (with its local default) in ``local.settings.sample.json`` and the README.
Nothing else in the project reads ``os.environ``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent
LOCAL_SETTINGS_FILE = PROJECT_ROOT / "local.settings.json"


class SettingsError(ValueError):
    """A setting has a value the pipeline cannot use."""


def _local_settings_values(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise SettingsError(f"{path.name} is not valid JSON with a Values object: {exc}") from exc
    return {str(k): str(v) for k, v in values.items()}


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
        return Path(self.get("PIPELINE_HOME", str(PROJECT_ROOT / ".local"))).expanduser().resolve()

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
        return self.get_int("LOCAL_HUB_PARTITIONS", 4)

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
        return Path(self.get("LOCAL_LAKE_PATH", str(self.home / "lake"))).expanduser().resolve()

    @property
    def bronze_container(self) -> str:
        return self.get("BRONZE_CONTAINER", "bronze")

    @property
    def quarantine_container(self) -> str:
        return self.get("QUARANTINE_CONTAINER", "quarantine")

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
            raise SettingsError(f"WINDOW_MINUTES must divide a day evenly, got {minutes}")
        return minutes

    @property
    def spark_trigger_seconds(self) -> int:
        return self.get_int("SPARK_TRIGGER_SECONDS", 10)

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
        return self.get("SQL_SCHEMA", "dbo")

    @property
    def sql_table(self) -> str:
        return self.get("SQL_TABLE", "weather_summary")

    @property
    def sync_schedule(self) -> str:
        """NCRONTAB (six fields, seconds first) for the timer Function."""
        return self.get("SYNC_SCHEDULE", "0 */1 * * * *")

    # --- storage credentials for the deltalake reader in the sync Function --------------------
    @property
    def lake_account_name(self) -> str:
        return self.get("LAKE_ACCOUNT_NAME")

    @property
    def lake_account_key(self) -> str:
        return self.get("LAKE_ACCOUNT_KEY")


def load_settings(
    environ: Mapping[str, str] | None = None, local_settings_file: Path | None = None
) -> Settings:
    """Read settings: environment first, then local.settings.json ``Values``, then defaults."""
    merged = _local_settings_values(local_settings_file or LOCAL_SETTINGS_FILE)
    merged.update(os.environ if environ is None else environ)
    return Settings(values=merged)
