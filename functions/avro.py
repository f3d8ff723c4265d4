"""Bronze batches as Avro object container files, written from the batch's columns.

The bytes follow the Avro 1.11 specification's binary encoding and object container format:
a header (magic, the schema file's JSON and the codec in the metadata map, a 16-byte sync
marker), then blocks of records, each deflate-compressed (raw RFC 1951, as the spec's
``deflate`` codec says) and closed by the marker. fastavro reads them back in the tests.

Why not fastavro's writer: it encodes a record at a time, about 5 µs per bronze record here,
more than everything else the Function does to an event. Here each field is encoded for the
whole column at once (lengths from a lookup table, strings with one ``str.encode`` map), and
the records are interleaved with a single ``bytes.join`` per block. Blocks are compressed with
ISA-L (``isal``), whose level-1 deflate took a quarter of zlib's time here, with smaller output;
any deflate reader (fastavro, Spark, Databricks) inflates it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from isal import isal_zlib

from functions.ingest_core import BronzeBatch

SCHEMA_FILE = Path(__file__).with_name("schemas") / "bronze.avsc"
_SCHEMA_JSON = json.dumps(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")), separators=(",", ":"))
_MAGIC = b"Obj\x01"
CODEC = "deflate"
# ISA-L's levels are 0 to 3; level 1 compressed bronze as well as 2 and 3, several times faster.
_DEFLATE_LEVEL = 1
# Records per block: big enough for deflate to find the repeats between records, small enough
# that a reader holds little at a time.
BLOCK_RECORDS = 1000
_EMPTY_MAP = b"\x00"  # a map with no entries: just the end-of-blocks count
_NULL_BRANCH, _STRING_BRANCH = b"\x00", b"\x02"  # union indexes 0 and 1, zigzag-encoded


def _uvarint(value: int) -> bytes:
    """An unsigned variable-length integer: 7 bits a byte, low bits first."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def encode_long(value: int) -> bytes:
    """Avro ``long``/``int``: zigzag (sign in the lowest bit), then a variable-length integer."""
    if not -(2**63) <= value < 2**63:
        raise ValueError(f"{value} does not fit an Avro long")
    return _uvarint((value << 1) ^ (value >> 63))


_TABLE_SIZE = 1 << 13
# encode_long(n) for 0 <= n < 8192: every string length and small number in one lookup.
_SMALL = [encode_long(n) for n in range(_TABLE_SIZE)]
# The two low 7-bit groups (continuation bits set) of a zigzagged value of 2**14 or more.
_LOW_GROUPS = [bytes([(z & 0x7F) | 0x80, (z >> 7) | 0x80]) for z in range(1 << 14)]


def encode_longs(values: Sequence[int]) -> list[bytes]:
    """:func:`encode_long` of every value: table lookups, and for large non-negative numbers
    (sequence numbers) the two low groups from a table and the rest from a per-batch cache."""
    if not values:
        return []
    if set(map(type, values)) != {int}:
        raise TypeError("an Avro long needs an int")
    low, high = min(values), max(values)
    if low >= 0 and high < _TABLE_SIZE:
        return list(map(_SMALL.__getitem__, values))
    if low < 0 or high >= 2**62:
        return list(map(encode_long, values))
    highs = {h: _uvarint(h) for h in {(v << 1) >> 14 for v in values}}
    low_groups, small = _LOW_GROUPS, _SMALL
    return [
        small[v] if v < _TABLE_SIZE else low_groups[(v << 1) & 0x3FFF] + highs[(v << 1) >> 14] for v in values
    ]


def _lengths(items: Iterable[bytes]) -> list[bytes]:
    sizes = list(map(len, items))
    if sizes and max(sizes) >= _TABLE_SIZE:
        return list(map(encode_long, sizes))
    return list(map(_SMALL.__getitem__, sizes))


def _utf8(values: Sequence[str]) -> list[bytes]:
    if set(map(type, values)) - {str}:
        raise TypeError("an Avro string needs a str")
    return list(map(str.encode, values))  # strict UTF-8: a lone surrogate raises


def encode_string(value: str) -> bytes:
    """Avro ``string``: its UTF-8 length, then the bytes."""
    if type(value) is not str:
        raise TypeError(f"an Avro string needs a str, not {type(value).__name__}")
    data = value.encode()
    return encode_long(len(data)) + data


def encode_string_map(value: Mapping[str, str]) -> bytes:
    """Avro ``map<string>``: one block of entries (count, then key and value), then 0."""
    if not value:
        return _EMPTY_MAP
    entries = [encode_string(k) + encode_string(v) for k, v in value.items()]
    return encode_long(len(entries)) + b"".join(entries) + _EMPTY_MAP


def _maps(values: Sequence[Mapping[str, str]]) -> Sequence[bytes]:
    if not any(values):
        return itertools.repeat(_EMPTY_MAP, len(values))  # type: ignore[return-value]
    # Events of a batch tend to carry equal properties, usually one after another: compare with
    # the previous map first, encode each distinct one once.
    encoded: list[bytes] = []
    previous: Mapping[str, str] | None = None
    data = _EMPTY_MAP
    for value in values:
        if value != previous:
            data = encode_string_map(value)
            previous = value
        encoded.append(data)
    return encoded


def _strings(values: Sequence[str]) -> Iterable[bytes]:
    """Whole encoded strings; a column of one value (partition id, ingestion time) encodes once."""
    if values and values.count(values[0]) == len(values):
        return itertools.repeat(encode_string(values[0]), len(values))
    return list(map(encode_string, values))


def _optional_strings(values: Sequence[str | None]) -> list[bytes]:
    if None in values and values.count(None) == len(values):
        return [_NULL_BRANCH] * len(values)
    return [_NULL_BRANCH if v is None else _STRING_BRANCH + encode_string(v) for v in values]


def header(marker: bytes) -> bytes:
    """The container header: magic, metadata (schema and codec), sync marker."""
    if len(marker) != 16:
        raise ValueError("an Avro sync marker is 16 bytes")
    metadata = [("avro.codec", CODEC.encode()), ("avro.schema", _SCHEMA_JSON.encode())]
    entries = b"".join(encode_string(k) + encode_long(len(v)) + v for k, v in metadata)
    return _MAGIC + encode_long(len(metadata)) + entries + _EMPTY_MAP + marker


def avro_container(batch: BronzeBatch, marker: bytes) -> bytes:
    """A bronze batch as one Avro container file (``functions/schemas/bronze.avsc``).

    Args:
        batch: The valid events of the batch.
        marker: The 16-byte sync marker (fixed per batch, so its bytes are a function of it).

    Raises:
        TypeError, ValueError: a value does not fit its schema type (e.g. a property that is
            not a string); nothing is written then.
    """
    count = len(batch)
    offsets, event_ids = _utf8(batch.offsets), _utf8(batch.event_ids)
    enqueued = _utf8(batch.enqueued_times)
    bodies = batch.bodies
    if set(map(type, bodies)) - {bytes}:
        raise TypeError("an Avro bytes field needs bytes")
    # The fields in schema order, one column each (most strings as two: lengths, then bytes).
    columns = (
        encode_longs(batch.sequence_numbers),
        _lengths(offsets),
        offsets,
        _lengths(enqueued),
        enqueued,
        _maps(batch.system_properties),
        _maps(batch.properties),
        _lengths(bodies),
        bodies,
        _strings(batch.partition_ids),
        _optional_strings(batch.partition_keys),
        _lengths(event_ids),
        event_ids,
        _strings(batch.ingested_times),
    )
    records = zip(*columns, strict=True)
    parts = [header(marker)]
    for first in range(0, count, BLOCK_RECORDS):
        size = min(BLOCK_RECORDS, count - first)
        raw = b"".join(itertools.chain.from_iterable(itertools.islice(records, size)))
        compressor = isal_zlib.compressobj(_DEFLATE_LEVEL, isal_zlib.DEFLATED, -15)
        data = compressor.compress(raw) + compressor.flush()
        parts += (encode_long(size), encode_long(len(data)), data, marker)
    return b"".join(parts)
