"""`pipeline sql init` against a target that refuses the connection: the real ODBC driver fails, one line."""

from __future__ import annotations

import pytest

from pipeline.commands import sql
from pipeline.failures import describe
from settings import load_settings
from tests.fixtures.cli import parser_with

pytestmark = pytest.mark.integration


def test_sql_init_with_an_unreachable_target_is_one_clear_error():
    settings = load_settings(
        environ={
            "SQL_CONNECTION": "Driver={PostgreSQL Unicode};Server=127.0.0.1;Port=1;Database=x;Uid=u;Pwd="
        }
    )
    args = parser_with(sql).parse_args(["sql", "init"])
    args.settings = settings
    with pytest.raises(Exception) as raised:
        args.handler(args)
    message = describe(raised.value, settings)
    assert message is not None and message.startswith("the SQL target (SQL_CONNECTION) failed: ")
    assert "\n" not in message
