"""The Azure lake adapter against a real storage server (Azurite): the same Blob calls as in Azure."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from functions.ingest import handle_batch
from functions.ingest_core import IngestConfig
from functions.lake import BlobLake, lake_from_settings
from functions.landing import BatchNameConflict
from pipeline.host import LocalFunctionsHost
from tests.fixtures.event_batches import good_body, worker_batch
from tests.fixtures.local_host import assert_each_event_landed_once, make_settings, produce

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_blob_lake_creates_once_and_never_replaces(azurite) -> None:  # type: ignore[no-untyped-def]
    lake = BlobLake.from_connection_string(azurite.connection_string)
    container = f"bronze{uuid.uuid4().hex[:8]}"
    path = "weather/ingest_date=2026-11-22/hour=07/p0-00000000000000000000-00000000000000000009.jsonl"

    assert lake.create(container, path, b"first\n") is True
    assert lake.create(container, path, b"second\n") is False

    assert lake.read(container, path) == b"first\n"
    assert lake.list(container) == [path]
    assert lake.list(container, "weather/ingest_date=2026-11-23") == []
    blob = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(
        container, path
    )
    assert blob.get_blob_properties().content_settings.content_type == "application/x-ndjson"


def test_missing_container_lists_as_empty(azurite) -> None:  # type: ignore[no-untyped-def]
    assert BlobLake.from_connection_string(azurite.connection_string).list("nothing-here") == []


def test_host_ingests_into_azure_storage_every_event_once(azurite, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    suffix = uuid.uuid4().hex[:8]
    settings = make_settings(
        tmp_path,
        LAKE_CONNECTION_STRING=azurite.connection_string,
        BRONZE_CONTAINER=f"bronze{suffix}",
        QUARANTINE_CONTAINER=f"quarantine{suffix}",
    )
    sent = produce(settings, 600)

    summary = LocalFunctionsHost(settings).run_until_idle()

    lake = lake_from_settings(settings)
    assert isinstance(lake, BlobLake)
    assert summary.events == 600 and summary.failed_invocations == 0
    assert not (tmp_path / "lake").exists()  # nothing went to the local folder
    assert_each_event_landed_once(sent, _Renamed(lake, suffix))


class _Renamed(BlobLake):
    """Reads the test's uniquely named containers under their usual names."""

    def __init__(self, inner: BlobLake, suffix: str) -> None:
        self.inner, self.suffix = inner, suffix

    def list(self, container: str, prefix: str = "") -> list[str]:
        return self.inner.list(container + self.suffix, prefix)

    def read(self, container: str, path: str) -> bytes:
        return self.inner.read(container + self.suffix, path)


def test_a_taken_name_in_blob_storage_is_checked_and_a_different_batch_lands_under_a_second_name(  # type: ignore[no-untyped-def]
    azurite,
) -> None:
    lake = BlobLake.from_connection_string(azurite.connection_string)
    suffix = uuid.uuid4().hex[:8]
    config = IngestConfig(bronze_container=f"bronze{suffix}", quarantine_container=f"quarantine{suffix}")
    first = handle_batch(worker_batch([good_body("first")]), lake, config)
    replay = handle_batch(worker_batch([good_body("first")]), lake, config)
    assert replay.written == {config.bronze_container: False} and replay.conflicts == {}

    with pytest.raises(BatchNameConflict):
        handle_batch(worker_batch([good_body("other")]), lake, config)

    names = lake.list(config.bronze_container)
    assert len(names) == 2
    [second] = [n for n in names if n != first.files[config.bronze_container]]
    assert "-conflict-" in second
    assert b'"other"' in lake.read(config.bronze_container, second)
    assert b'"first"' in lake.read(config.bronze_container, first.files[config.bronze_container])
