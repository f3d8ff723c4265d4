"""Reads gold changes after a Delta version with the ``deltalake`` package (no Spark).

The change data feed (``load_cdf``) is used when the table has it for the whole range;
otherwise the whole table is read at its current version (a snapshot the warehouse then
mirrors, deletes included). Works on a local path or on ADLS Gen2 (``abfss://`` /
``az://``) with an account key or a DefaultAzureCredential bearer token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from functions import credentials
from functions.sync_core import GOLD_COLUMNS, GoldRead
from settings import Settings

log = logging.getLogger(__name__)

STORAGE_SCOPE = "https://storage.azure.com/.default"
CDF_COLUMNS = ("_change_type", "_commit_version")
# History operations after which a change feed for the range may be incomplete (the feed may
# have been switched on, or the table replaced, inside the range): read a snapshot instead.
SNAPSHOT_OPERATIONS = frozenset(
    {"SET TBLPROPERTIES", "CREATE TABLE", "REPLACE TABLE", "CREATE OR REPLACE TABLE"}
)


def _parse_connection_string(connection_string: str) -> dict[str, str]:
    parts = (p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    return {k.strip().lower(): v.strip() for k, v in parts}


def storage_options_from_settings(
    settings: Settings, token_provider: Callable[[], str] | None = None, uri: str | None = None
) -> dict[str, str]:
    """Options for deltalake's object store, from settings only (secrets never from elsewhere).

    Order: a storage connection string (Azurite in tests), an account name and key, else a
    bearer token from DefaultAzureCredential (managed identity in Azure). Local paths need none.
    ``uri`` is the table they are for (default: gold; the audit reads silver with them too).
    """
    uri = settings.gold_table_uri if uri is None else uri
    if "://" not in uri or uri.startswith("file://"):
        return {}
    if settings.lake_connection_string:
        parts = _parse_connection_string(settings.lake_connection_string)
        options = {"account_name": parts.get("accountname", ""), "account_key": parts.get("accountkey", "")}
        endpoint = parts.get("blobendpoint", "")
        if endpoint:
            options["azure_storage_endpoint"] = endpoint.rstrip("/")
            if endpoint.startswith("http://"):
                # Azurite. Not use_emulator: object_store then ignores the endpoint for 127.0.0.1:10000.
                options["allow_http"] = "true"
        return options
    if settings.lake_account_name and settings.lake_account_key:
        return {"account_name": settings.lake_account_name, "account_key": settings.lake_account_key}
    options = {"bearer_token": (token_provider or _default_credential_token)()}
    if settings.lake_account_name:
        options["account_name"] = settings.lake_account_name
    return options


def _default_credential_token() -> str:
    return credentials.PROCESS_CREDENTIAL.token(STORAGE_SCOPE)


def _to_rows(table: Any, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    arrow = pa.table(table)
    present = [c for c in columns if c in arrow.column_names]
    rows: list[dict[str, Any]] = arrow.select(present).to_pylist()
    return rows


class DeltaGoldSource:
    """:class:`functions.sync_core.GoldSource` over a Delta table."""

    def __init__(self, table_uri: str, storage_options: Mapping[str, str] | None = None) -> None:
        self.table_uri = table_uri
        self.storage_options = dict(storage_options or {})

    def _open(self) -> DeltaTable | None:
        try:
            return DeltaTable(self.table_uri, storage_options=self.storage_options or None)
        except TableNotFoundError:
            return None

    def read_changes(self, after_version: int) -> GoldRead | None:
        """Gold changes after ``after_version`` (-1: all), or None when gold does not exist."""
        table = self._open()
        if table is None:
            return None
        current = table.version()
        if current <= after_version:
            return GoldRead(after_version, current, "cdf", [])
        if after_version >= 0 and self._cdf_covers(table, after_version + 1, current):
            try:
                feed = table.load_cdf(starting_version=after_version + 1, ending_version=current)
                rows = _to_rows(feed.read_all(), (*GOLD_COLUMNS, *CDF_COLUMNS))
                return GoldRead(after_version, current, "cdf", rows)
            except DeltaError as exc:
                # e.g. the range's change files were vacuumed: the snapshot is still exact.
                log.warning(
                    "change data feed unavailable for versions %d..%d (%s): reading a snapshot",
                    after_version + 1,
                    current,
                    exc,
                )
        rows = _to_rows(table.to_pyarrow_table(), GOLD_COLUMNS)
        return GoldRead(after_version, current, "snapshot", rows)

    @staticmethod
    def _cdf_covers(table: DeltaTable, start: int, end: int) -> bool:
        config = table.metadata().configuration or {}
        if str(config.get("delta.enableChangeDataFeed", "")).lower() != "true":
            return False
        for commit in table.history(limit=end - start + 1):
            version = commit.get("version")
            in_range = version is not None and start <= int(version) <= end
            if in_range and str(commit.get("operation", "")).upper() in SNAPSHOT_OPERATIONS:
                return False
        return True


def gold_source_from_settings(settings: Settings) -> DeltaGoldSource:
    """The gold reader the sync Function uses, configured from settings."""
    return DeltaGoldSource(settings.gold_table_uri, storage_options_from_settings(settings))
