"""Before a command does anything: resolve its state folder and check every setting it uses.

A bad value is reported in one line before the first progress bar, folder or event, never halfway
through a run. Commands declare the settings they read (``uses``, see :mod:`pipeline.cli`).
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

from pipeline.cli import UserError
from settings import Settings, SettingsError, load_settings

# Settings each kind of command reads (a command adds up the groups it needs).
STATE = ("PIPELINE_HOME", "LOCAL_LAKE_PATH", "BRONZE_CONTAINER", "QUARANTINE_CONTAINER")
HUB = ("EVENTHUB_NAME", "EVENTHUB_CONSUMER_GROUP", "LOCAL_HUB_PARTITIONS")
INGEST = (*HUB, "BRONZE_FORMAT", "BRONZE_STREAM")
SPARK = ("BRONZE_FORMAT", "BRONZE_STREAM", "WINDOW_MINUTES", "SPARK_STALL_TIMEOUT_SECONDS")
SQL = ("SQL_CONNECTION", "SQL_SCHEMA", "SQL_TABLE")
SYNC = (*SQL, "GOLD_TABLE_URI")

_DRIVER = re.compile(r"(?:^|;)\s*driver\s*=\s*(\{[^}]*\}|[^;]*)", re.IGNORECASE)
DEMO_PREFIX = "demo-"


def prepare(args: argparse.Namespace) -> Settings:
    """The settings for this command (its ``--home``, if any), checked; also kept as ``args.settings``.

    ``args.uses`` names the settings the command reads (or is a function of ``args`` giving them);
    ``args.java`` says it starts Spark; ``args.check(args)`` cross-checks its arguments.
    """
    check = getattr(args, "check", None)
    if check is not None:
        check(args)
    settings = _with_home(load_settings(), args)
    uses = getattr(args, "uses", ())
    uses = tuple(uses(args) if callable(uses) else uses)
    settings.validate(uses)
    if "SYNC_SCHEDULE" in uses:
        check_schedule(settings.sync_schedule)
    if "WINDOW_MINUTES" in uses and getattr(args, "java", False):
        check_gold_window(settings)
    if "SQL_CONNECTION" in uses:
        check_sql_connection(settings)
    if getattr(args, "java", False):
        require_spark()
    args.settings = settings
    return settings


def check_schedule(schedule: str) -> None:
    """The timer's NCRONTAB expression, checked as the Functions host will (settings.py, which is
    deployed, checks only its six fields)."""
    from pipeline.host.indexing import is_ncrontab

    if not is_ncrontab(schedule):
        raise SettingsError(
            f"SYNC_SCHEDULE must be an NCRONTAB expression of six fields, seconds first "
            f"(e.g. '0 */1 * * * *'): {schedule!r} is not a valid schedule"
        )


def check_gold_window(settings: Settings) -> None:
    """Refuse, before Spark starts, a window size other than the one gold was built with (the job
    checks again when it starts; this says it before any work or output)."""
    from pipeline.layers import delta_table
    from spark.delta_tables import WINDOW_MINUTES_PROPERTY, window_size_mismatch

    table = delta_table(settings.gold_table_uri)
    if table is None:
        return
    recorded = (table.metadata().configuration or {}).get(WINDOW_MINUTES_PROPERTY)
    if recorded is not None and recorded != str(settings.window_minutes):
        raise SettingsError(window_size_mismatch(settings.gold_table_uri, recorded, settings.window_minutes))


def settings_for(args: argparse.Namespace) -> Settings:
    """``args.settings`` when the CLI prepared them, else prepared now (a handler called directly)."""
    settings = getattr(args, "settings", None)
    return settings if isinstance(settings, Settings) else prepare(args)


def require_java() -> None:
    """Local Spark needs ``java``; without it Spark fails later with a long JVM-launch traceback."""
    if shutil.which("java") is None:
        raise UserError("Java 17 is needed for local Spark: install a JDK 17 and put `java` on PATH")


def require_spark() -> None:
    """Java, and the Delta Lake and Avro jars `make install` fetched, before Spark is started."""
    require_java()
    from pipeline.spark_session import SparkJarsMissingError, spark_jars

    try:
        spark_jars()
    except SparkJarsMissingError as exc:
        raise UserError(str(exc)) from None


def check_sql_connection(settings: Settings) -> None:
    """A non-empty SQL_CONNECTION names a SQL Server or PostgreSQL ODBC driver installed here."""
    connection = settings.sql_connection
    if not connection:
        return
    from functions.warehouse import dialect_name_for

    dialect_name_for(connection)  # SettingsError unless SQL Server or PostgreSQL
    match = _DRIVER.search(connection)
    driver = match.group(1).strip().strip("{}").strip() if match else ""
    if "/" in driver:  # a driver library's path rather than a registered name
        if not Path(driver).is_file():
            raise SettingsError(f"SQL_CONNECTION names the ODBC driver file {driver}, which does not exist")
        return
    try:
        import pyodbc
    except ImportError as exc:
        raise SettingsError(
            f"SQL_CONNECTION needs an ODBC driver manager (unixODBC on Linux): {exc}"
        ) from None
    installed = pyodbc.drivers()
    if driver.lower() not in {name.lower() for name in installed}:
        raise SettingsError(
            f"SQL_CONNECTION names the ODBC driver {driver!r}, which is not installed here "
            f"(installed: {', '.join(installed) or 'none'}); install it, or name one of those"
        )


def _with_home(settings: Settings, args: argparse.Namespace) -> Settings:
    home: Path | None = getattr(args, "home", None)
    if getattr(args, "last_demo", False):
        return demo_settings(settings, last_demo(settings.home))
    if home is None or getattr(args, "command", None) == "demo":  # the demo's --home is its new folder
        return settings
    home = home.expanduser().resolve()
    if not home.is_dir():
        raise UserError(f"--home {home}: no such folder")
    return Settings(values={**settings.values, "PIPELINE_HOME": str(home)})


def last_demo(base: Path) -> Path:
    """The newest ``demo-*`` folder under ``base`` (their names sort by creation time)."""
    demos = sorted(p for p in base.glob(f"{DEMO_PREFIX}*") if p.is_dir()) if base.is_dir() else []
    if not demos:
        raise UserError(f"no {DEMO_PREFIX}* folder under {base}: run `make demo` first")
    return demos[-1]


def demo_settings(settings: Settings, home: Path) -> Settings:
    """Settings as the demo ran with them: everything under ``home``, embedded defaults only."""
    from pipeline.orchestrate import LOCATION_OVERRIDES

    values = {k: v for k, v in settings.values.items() if k not in LOCATION_OVERRIDES}
    return Settings(values={**values, "PIPELINE_HOME": str(home)})
