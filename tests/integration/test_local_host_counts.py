"""The host's valid and quarantined counts are what the invocations landed, not what they logged."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.host import LocalFunctionsHost
from tests.fixtures.local_host import make_settings, produce

pytestmark = pytest.mark.integration


@pytest.fixture()
def no_logging() -> Iterator[None]:
    """Logging switched off in the process: no log record of any batch exists."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def test_counts_come_from_the_landed_files_with_logging_switched_off(
    tmp_path: Path, no_logging: None
) -> None:
    settings = make_settings(tmp_path)
    sent = produce(settings, 400)
    bad = sum(1 for key, raw in sent.items() if key.startswith("bad-") or b'"temperature": 400' in raw)
    not_utf8 = sum(1 for key in sent if key.startswith("bad-"))

    summary = LocalFunctionsHost(settings).run_until_idle()

    assert (summary.valid, summary.quarantined) == (400 - bad, bad)
    assert summary.quarantined_by_reason == {"utf8": not_utf8, "range:temperature": bad - not_utf8}
