"""Run one CLI command: settings checked first, the writer lock, and every expected failure as one line.

Expected failures are those a user can cause or fix: bad settings, files and folders (OS errors),
the SQL target (ODBC, SQLite), Azure sign-in, Spark start-up, Delta tables, Ctrl-C. Each ends in
``error: <what failed and what to do>`` on stderr and exit code 1 (130 for Ctrl-C). Anything else
is a bug and keeps its traceback. ``--debug`` / ``PIPELINE_DEBUG=1`` prints the traceback of
expected failures too.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from typing import Any

from pipeline import history
from pipeline.cli import Interrupted, UserError
from settings import Settings, SettingsError

INTERRUPTED = "interrupted: stopped; nothing is lost (a replay is a no-op): run the command again to continue"
DEBUG_HINT = " (--debug shows the traceback)"


def run_command(args: argparse.Namespace, command_line: str) -> int:
    """Run the parsed command ``args`` and return its exit code; print failures as one line."""
    from pipeline.preflight import prepare
    from pipeline.statelock import state_lock

    if not getattr(args, "debug", False):
        # DefaultAzureCredential logs every credential it tried (a dozen lines) before it raises;
        # the raise is reported below in one line.
        logging.getLogger("azure.identity").setLevel(logging.ERROR)
    settings: Settings | None = None
    try:
        settings = prepare(args)
        if not getattr(args, "writes", False):
            return int(args.handler(args) or 0)
        with state_lock(settings.home, command_line):
            history.record_run(settings, command_line)
            return int(args.handler(args) or 0)
    except Interrupted as exc:
        _trace_if(args)
        _say(f"interrupted: {exc}")
        return 130
    except KeyboardInterrupt:
        _trace_if(args)
        _say(INTERRUPTED)
        return 130
    except BrokenPipeError:
        # `... | head`: the reader left; say nothing more on a pipe that is gone.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as exc:
        message = describe(exc, settings)
        if message is None:
            raise  # a bug: keep the whole traceback for the report
        _trace_if(args)
        _say(f"error: {message}")
        return 1


def describe(exc: BaseException, settings: Settings | None = None) -> str | None:
    """One line saying what failed and what to do, or None when ``exc`` is not an expected failure."""
    if isinstance(exc, UserError | SettingsError):
        return str(exc)
    kinds = {f"{cls.__module__}.{cls.__name__}" for cls in type(exc).__mro__}
    if "spark.delta_tables.WindowSizeMismatchError" in kinds:
        return str(exc)  # says which size gold holds and how to rebuild
    if "pipeline.spark_session.SparkJarsMissingError" in kinds:
        return str(exc)
    text = first_line(exc)
    if "azure.core.exceptions.ClientAuthenticationError" in kinds:
        if "azure.identity._exceptions.CredentialUnavailableError" in kinds or text.startswith(
            "DefaultAzureCredential failed"
        ):
            return _no_credential(settings)
        return f"Azure sign-in failed: {text}"
    if "pyodbc.Error" in kinds:
        return f"the SQL target (SQL_CONNECTION) failed: {odbc_message(exc)}"
    if "sqlite3.Error" in kinds:
        # The embedded hub (hub.db) and the local warehouse (warehouse.db) are both SQLite.
        where = f" in {settings.home}" if settings is not None else ""
        hint = " (another process is writing it: try again)" if "locked" in text else ""
        return f"SQLite (hub.db or warehouse.db{where}) failed: {text}{hint}"
    if kinds & {"pyspark.errors.exceptions.base.PySparkException", "py4j.protocol.Py4JError"}:
        if getattr(exc, "getCondition", lambda: None)() == "JAVA_GATEWAY_EXITED":
            return (
                "Spark could not start (its Java process exited): check `java -version` says 17, and "
                "the lines above for the JVM's own message" + DEBUG_HINT
            )
        return f"Spark failed: {_java_line(exc) or text}" + DEBUG_HINT
    if "_internal.DeltaError" in kinds:  # deltalake's exceptions, all DeltaError
        return f"a Delta table could not be read or written: {text}" + DEBUG_HINT
    if isinstance(exc, OSError):
        return _os_error(exc)
    return None


def odbc_message(exc: BaseException) -> str:
    """The driver's message of a pyodbc error, without the ``[01000] [unixODBC][Driver Manager]`` tags."""
    raw = str(exc.args[1]) if len(exc.args) > 1 else str(exc)
    message = raw.splitlines()[0] if raw else type(exc).__name__
    while message.startswith("["):
        closing = message.find("]")
        if closing < 0:
            break
        message = message[closing + 1 :].lstrip()
    return message


def _no_credential(settings: Settings | None) -> str:
    users = []
    if settings is not None:
        from functions.warehouse import needs_access_token

        if settings.sql_connection and needs_access_token(settings.sql_connection):
            users.append("SQL_CONNECTION has no UID/PWD")
        if settings.lake_account_url and not settings.lake_connection_string:
            users.append("LAKE_ACCOUNT_URL is set")
        if settings.eventhub_namespace and not settings.eventhub_connection:
            users.append("EVENTHUB_CONNECTION__fullyQualifiedNamespace is set")
    why = f" ({', '.join(users)}, so it signs in as you)" if users else ""
    return (
        f"Azure sign-in failed: DefaultAzureCredential found no credential{why}; run `az login`, "
        "run where a managed identity is available, or give the setting its own credentials"
    )


def _os_error(exc: OSError) -> str:
    if exc.filename is None:
        return first_line(exc)
    what = exc.strerror or type(exc).__name__
    names = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
    return f"{what}: {names} (check PIPELINE_HOME and the paths in your settings)"


def _java_line(exc: BaseException) -> str | None:
    """The Java exception's own line in a py4j error (``: java.lang.X: message``)."""
    for line in str(exc).splitlines()[1:]:
        if line.startswith(": "):
            return line[2:].strip()
    return None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _say(line: str) -> None:
    sys.stdout.flush()
    print(line, file=sys.stderr, flush=True)


def _trace_if(args: Any) -> None:
    if getattr(args, "debug", False):
        traceback.print_exc()
