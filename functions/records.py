"""The records the ingest Function writes: one valid event (bronze), one rejected event (quarantine).

The shapes docs/architecture.md "Bronze records" documents, field for field in
:data:`contract.bronze.ENVELOPE` order. :class:`BronzeBatch` holds a batch's valid events as
columns, the shape the encoders (:mod:`functions.bronze`, :mod:`functions.avro`) write a whole
file from without a dict per event; it reads as a sequence of records.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypedDict, overload

import orjson


class BronzeRecord(TypedDict):
    """One valid event; ``Body`` is bytes here and text in JSON lines."""

    SequenceNumber: int
    Offset: str
    EnqueuedTimeUtc: str
    SystemProperties: Mapping[str, str]
    Properties: Mapping[str, str]
    Body: bytes
    PartitionId: str
    PartitionKey: str | None
    EventId: str
    IngestedTimeUtc: str


class QuarantineRecord(TypedDict):
    """One rejected event: the bronze envelope plus why, with the body as text or base64."""

    SequenceNumber: int
    Offset: str
    EnqueuedTimeUtc: str
    SystemProperties: Mapping[str, str]
    Properties: Mapping[str, str]
    Body: str
    BodyEncoding: str
    PartitionId: str
    PartitionKey: str | None
    EventId: str | None
    IngestedTimeUtc: str
    Reasons: list[str]


@dataclass(frozen=True, eq=False)
class BronzeBatch(Sequence[BronzeRecord]):
    """Valid events as columns, one per :class:`BronzeRecord` field, read as a sequence of records.

    The encoders in :mod:`functions.bronze` write a whole file from the columns without a dict
    per event (the hot path); indexing, iterating and comparing give the records themselves.
    """

    sequence_numbers: Sequence[int]
    offsets: Sequence[str]
    enqueued_times: Sequence[str]
    system_properties: Sequence[Mapping[str, str]]
    properties: Sequence[Mapping[str, str]]
    bodies: Sequence[bytes]
    partition_ids: Sequence[str]
    partition_keys: Sequence[str | None]
    event_ids: Sequence[str]
    ingested_times: Sequence[str]

    @classmethod
    def from_records(cls, records: Sequence[BronzeRecord]) -> BronzeBatch:
        """Columns from records (a BronzeBatch is returned as it is)."""
        if isinstance(records, BronzeBatch):
            return records
        return cls(*([r[name] for r in records] for name in _BRONZE_FIELDS))  # type: ignore[literal-required]

    def __len__(self) -> int:
        return len(self.bodies)

    @overload
    def __getitem__(self, index: int) -> BronzeRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[BronzeRecord]: ...

    def __getitem__(self, index: int | slice) -> BronzeRecord | list[BronzeRecord]:
        if isinstance(index, slice):
            return list(self)[index]
        return self._record(*(column[index] for column in self._columns()))

    def __iter__(self) -> Iterator[BronzeRecord]:
        return itertools.starmap(self._record, zip(*self._columns(), strict=True))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BronzeBatch({list(self)!r})"

    def _columns(self) -> list[Sequence[Any]]:
        return [getattr(self, name) for name in _COLUMN_NAMES]

    @staticmethod
    def _record(*values: Any) -> BronzeRecord:
        return dict(zip(_BRONZE_FIELDS, values, strict=True))  # type: ignore[return-value]


# The record fields in their documented order, and the BronzeBatch column holding each.
_BRONZE_FIELDS = tuple(BronzeRecord.__annotations__)
_COLUMN_NAMES = tuple(f.name for f in fields(BronzeBatch))


def string_map(values: Mapping[str, Any] | None) -> dict[str, str]:
    """Render property values as strings: text as is, bytes as UTF-8, anything else as JSON."""
    if not values:
        return {}
    if type(values) is dict:
        for value in values.values():
            if type(value) is not str:
                break
        else:
            return values  # already strings (the usual case, e.g. from JSON): no copy
    rendered: dict[str, str] = {}
    for key, value in values.items():
        if isinstance(value, str):
            rendered[str(key)] = value
        elif type(value) is int:  # the common case, and much cheaper than JSON
            rendered[str(key)] = str(value)
        elif isinstance(value, bytes | bytearray):
            rendered[str(key)] = bytes(value).decode("utf-8", errors="backslashreplace")
        else:
            rendered[str(key)] = orjson.dumps(value, default=str).decode()
    return rendered
