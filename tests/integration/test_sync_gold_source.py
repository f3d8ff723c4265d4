"""Reading gold changes with deltalake: local paths and ADLS-shaped storage (Azurite)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from azure.storage.blob import BlobServiceClient
from deltalake import write_deltalake

from functions.gold_source import DeltaGoldSource, gold_source_from_settings, storage_options_from_settings
from settings import load_settings
from tests.fixtures.gold import GOLD_SCHEMA, Gold, window

pytestmark = pytest.mark.integration


def test_missing_gold_reads_as_none(tmp_path):
    assert DeltaGoldSource(str(tmp_path / "nothing")).read_changes(-1) is None


def test_first_read_is_a_snapshot_then_the_change_feed(tmp_path):
    gold = Gold(tmp_path / "gold")
    gold.write([window("Oslo", 0, 1.0), window("Rome", 0, 2.0)])
    first = gold.source.read_changes(-1)
    assert first is not None
    assert (first.mode, first.from_version, first.to_version, len(first.rows)) == ("snapshot", -1, 0, 2)
    gold.merge([window("Oslo", 0, 5.0)])
    gold.delete("Rome")
    later = gold.source.read_changes(0)
    assert later is not None
    assert (later.mode, later.from_version, later.to_version) == ("cdf", 0, 2)
    kinds = sorted((r["location"], r["_change_type"]) for r in later.rows)
    assert kinds == [("Oslo", "update_postimage"), ("Oslo", "update_preimage"), ("Rome", "delete")]


def test_nothing_new_reads_as_an_empty_change_set(tmp_path):
    gold = Gold(tmp_path / "gold")
    gold.write([window("Oslo", 0, 1.0)])
    read = gold.source.read_changes(0)
    assert read is not None
    assert (read.to_version, list(read.rows)) == (0, [])


def test_a_table_without_change_feed_is_read_as_a_snapshot(tmp_path):
    gold = Gold(tmp_path / "gold", change_feed=False)
    gold.write([window("Oslo", 0, 1.0)])
    gold.merge([window("Rome", 0, 2.0)])
    read = gold.source.read_changes(0)
    assert read is not None
    assert read.mode == "snapshot"
    assert sorted(r["location"] for r in read.rows) == ["Oslo", "Rome"]


def test_switching_the_change_feed_on_mid_range_falls_back_to_a_snapshot(tmp_path):
    from deltalake import DeltaTable

    gold = Gold(tmp_path / "gold", change_feed=False)
    gold.write([window("Oslo", 0, 1.0)])
    DeltaTable(gold.uri).alter.set_table_properties({"delta.enableChangeDataFeed": "true"})
    gold.merge([window("Rome", 0, 2.0)])
    read = gold.source.read_changes(0)
    assert read is not None and read.mode == "snapshot"
    later = gold.source.read_changes(1)
    assert later is not None and later.mode == "cdf"


def test_storage_options_come_from_settings_only():
    local = load_settings(environ={"GOLD_TABLE_URI": "/tmp/gold"})
    assert storage_options_from_settings(local) == {}
    keyed = load_settings(
        environ={"GOLD_TABLE_URI": "abfss://gold@acct.dfs.core.windows.net/weather_summary",
                 "LAKE_ACCOUNT_NAME": "acct", "LAKE_ACCOUNT_KEY": "k"}
    )  # fmt: skip
    assert storage_options_from_settings(keyed) == {"account_name": "acct", "account_key": "k"}
    identity = load_settings(
        environ={
            "GOLD_TABLE_URI": "abfss://gold@acct.dfs.core.windows.net/weather_summary",
            "LAKE_ACCOUNT_NAME": "acct",
        }
    )
    assert storage_options_from_settings(identity, token_provider=lambda: "tok") == {
        "bearer_token": "tok",
        "account_name": "acct",
    }


def test_gold_on_blob_storage_is_read_with_the_settings_connection_string(azurite):
    BlobServiceClient.from_connection_string(azurite.connection_string).create_container("gold")
    uri = "az://gold/weather_summary"
    rows = [window("Oslo", 0, 1.0), window("Rome", 5, 2.0)]
    # use_emulator would send deltalake to 127.0.0.1:10000 whatever the endpoint says.
    options = azurite.storage_options
    write_deltalake(
        uri,
        pa.Table.from_pylist(rows, schema=GOLD_SCHEMA),
        storage_options=options,
        configuration={"delta.enableChangeDataFeed": "true"},
    )
    settings = load_settings(
        environ={"GOLD_TABLE_URI": uri, "LAKE_CONNECTION_STRING": azurite.connection_string}
    )
    read = gold_source_from_settings(settings).read_changes(-1)
    assert read is not None
    assert sorted(r["location"] for r in read.rows) == ["Oslo", "Rome"]
