"""The ingest hot path's column helpers: exact, faster equivalents of plain per-event code.

A batch travels as columns (one list per field, :class:`functions.ingest_core.EventColumns`), and
each helper here does for a whole column what a plain loop would do per event, in a few C-level
calls. Each docstring names the plain code it equals; tests/unit/test_ingest_batch_paths.py and
tests/unit/test_ingest_core.py prove the equalities on generated input. The speed idioms of the
ingest Function live here and nowhere else (the contract's are in :mod:`contract.fast_path`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from operator import attrgetter, itemgetter
from typing import Any, TypeVar

from contract.bronze import as_utc

T = TypeVar("T")

# ".000Z" to ".999Z": the millisecond tails of RFC 3339 times (see BatchTimeFormatter).
_MILLISECOND_TAILS = tuple(f".{ms:03d}Z" for ms in range(1000))


def all_of_type(values: Sequence[Any], kind: type) -> bool:
    """``all(type(v) is kind for v in values)`` for a non-empty column, in one C-level pass."""
    return set(map(type, values)) == {kind}


def utc_times(times: Sequence[datetime]) -> Sequence[datetime]:
    """``[as_utc(t) for t in times]``; the column itself when every time is UTC already."""
    if set(map(attrgetter("tzinfo"), times)) == {UTC}:
        return times
    return [as_utc(t) for t in times]


def taker(positions: list[int], length: int) -> Callable[[Sequence[T]], list[T]]:
    """``lambda column: [column[i] for i in positions]`` for columns of ``length`` values, one C
    call per column (and a plain copy when every position is taken)."""
    if len(positions) == length:
        return list
    if len(positions) > 1:
        pick = itemgetter(*positions)
        return lambda column: list(pick(column))
    return lambda column: [column[i] for i in positions]


class BatchTimeFormatter:
    """:func:`contract.bronze.rfc3339_ms` for the many close-together UTC times of one batch,
    about 3x faster.

    The date-and-seconds part is formatted once per distinct second (a batch spans a few), from
    the offset to the batch's first second; only the millisecond tail differs per event.
    """

    __slots__ = ("base", "seconds")

    def __init__(self, first: datetime) -> None:
        self.base = as_utc(first).replace(microsecond=0)
        self.seconds: dict[int, str] = {}

    def format_all(self, moments: Sequence[datetime]) -> list[str]:
        """Format aware UTC times (``tzinfo is UTC``) as ``rfc3339_ms`` does."""
        base, seconds, tails = self.base, self.seconds, _MILLISECOND_TAILS
        texts = []
        for moment in moments:
            delta = moment - base
            second = delta.days * 86400 + delta.seconds
            prefix = seconds.get(second)
            if prefix is None:
                prefix = seconds[second] = (base + timedelta(seconds=second)).isoformat()[:-6]
            texts.append(prefix + tails[delta.microseconds // 1000])
        return texts
