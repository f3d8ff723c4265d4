"""settings.py: local.settings.json as the Functions host reads it, and every rule checked up front."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from settings import Settings, SettingsError, load_settings


def _from_file(tmp_path: Path, text: str | bytes) -> Settings:
    path = tmp_path / "local.settings.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return load_settings(environ={}, local_settings_file=path)


def test_a_file_saved_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    document = json.dumps({"Values": {"SQL_TABLE": "from_bom_file"}}).encode()
    settings = _from_file(tmp_path, b"\xef\xbb\xbf" + document)
    assert settings.sql_table == "from_bom_file"


def test_null_leaves_the_default_and_numbers_and_booleans_read_as_text(tmp_path: Path) -> None:
    settings = _from_file(
        tmp_path, '{"Values": {"SQL_TABLE": null, "WINDOW_MINUTES": 15, "FLAG": true, "OFF": false}}'
    )
    assert settings.sql_table == "weather_summary"
    assert "SQL_TABLE" not in settings.values
    assert settings.window_minutes == 15
    assert (settings.get("FLAG"), settings.get("OFF")) == ("true", "false")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"Values": ["SQL_TABLE"]}', '"Values" in local.settings.json must be an object'),
        ('{"Values": "SQL_TABLE=x"}', "got a string"),
        ('["Values"]', "must hold a JSON object"),
        ('{"Values": {"SQL_TABLE": {"name": "x"}}}', "SQL_TABLE in local.settings.json must be a string"),
        ('{"Values": {"A": "1",}}', "local.settings.json is not valid JSON: "),
    ],
)
def test_a_malformed_local_settings_file_is_one_settings_error(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        _from_file(tmp_path, text)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    path = tmp_path / "local.settings.json"
    path.write_text('{"Values": {"SQL_TABLE": "from_file"}}', encoding="utf-8")
    settings = load_settings(environ={"SQL_TABLE": "from_env"}, local_settings_file=path)
    assert settings.sql_table == "from_env"


def _settings(tmp_path: Path, **values: str) -> Settings:
    return Settings(values={"PIPELINE_HOME": str(tmp_path / "home"), **values})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("BRONZE_FORMAT", "parquet", "BRONZE_FORMAT must be jsonl, jsonl.gz or avro, got 'parquet'"),
        ("WINDOW_MINUTES", "7", "WINDOW_MINUTES must be a number of minutes that divides a day evenly"),
        ("WINDOW_MINUTES", "five", "WINDOW_MINUTES must be a whole number, got 'five'"),
        ("LOCAL_HUB_PARTITIONS", "0", "LOCAL_HUB_PARTITIONS must be 1 to 1024 (as in Event Hubs), got 0"),
        ("SPARK_TRIGGER_SECONDS", "0", "SPARK_TRIGGER_SECONDS must be 1 or more, got 0"),
        ("SPARK_STALL_TIMEOUT_SECONDS", "-1", "SPARK_STALL_TIMEOUT_SECONDS must be 0 (off) or positive"),
        ("SQL_TABLE", "weather-summary", "SQL_TABLE must be a plain SQL identifier"),
        ("SQL_TABLE", "t" * 56, "at most 55 characters"),
        ("SQL_SCHEMA", "dbo; DROP TABLE x", "SQL_SCHEMA must be a plain SQL identifier"),
        ("BRONZE_CONTAINER", "Bronze", "BRONZE_CONTAINER must be a storage container name"),
        ("QUARANTINE_CONTAINER", "q", "QUARANTINE_CONTAINER must be a storage container name"),
        ("SYNC_SCHEDULE", "*/5 * * * *", "SYNC_SCHEDULE must be an NCRONTAB expression of six fields"),
    ],
)
def test_each_rule_names_the_setting_the_value_and_what_is_allowed(
    tmp_path: Path, name: str, value: str, message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        _settings(tmp_path, **{name: value}).validate([name])
    assert message in str(raised.value)


def test_validate_reports_every_bad_setting_in_one_line(tmp_path: Path) -> None:
    settings = _settings(tmp_path, BRONZE_FORMAT="csv", WINDOW_MINUTES="7", SQL_TABLE="ok_table")
    with pytest.raises(SettingsError) as raised:
        settings.validate(["BRONZE_FORMAT", "WINDOW_MINUTES", "SQL_TABLE", "EVENTHUB_NAME"])
    text = str(raised.value)
    assert text.startswith("BRONZE_FORMAT must be") and "; WINDOW_MINUTES must be" in text
    assert "SQL_TABLE" not in text and "\n" not in text


def test_validate_checks_only_the_settings_named(tmp_path: Path) -> None:
    _settings(tmp_path, BRONZE_FORMAT="csv").validate(["WINDOW_MINUTES", "SQL_TABLE"])


def test_defaults_are_all_valid(tmp_path: Path) -> None:
    from settings import _CHECKS

    _settings(tmp_path).validate(_CHECKS)


def test_a_state_folder_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(SettingsError) as raised:
        Settings(values={"PIPELINE_HOME": str(tmp_path / "file")}).validate(["PIPELINE_HOME"])
    assert str(raised.value) == (
        f"PIPELINE_HOME must be a folder (created when missing), but {tmp_path / 'file'} is a file"
    )
    inside = Settings(values={"PIPELINE_HOME": str(tmp_path / "file" / "home")})
    with pytest.raises(SettingsError, match=r"is inside .*file, which is a file"):
        _ = inside.local_hub_path


def test_a_state_folder_that_does_not_exist_yet_is_fine_and_not_created(tmp_path: Path) -> None:
    settings = Settings(values={"PIPELINE_HOME": str(tmp_path / "a" / "b")})
    settings.validate(["PIPELINE_HOME"])
    assert settings.home == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()


def test_a_schedule_of_six_fields_that_is_no_schedule_is_refused_before_a_command_runs() -> None:
    from pipeline.preflight import check_schedule

    check_schedule("0 */1 * * * *")
    with pytest.raises(SettingsError, match="'0 \\*/1 \\* \\* \\* mondays' is not a valid schedule"):
        check_schedule("0 */1 * * * mondays")
