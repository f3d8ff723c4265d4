"""Bronze and quarantine files: encoding (JSON lines, gzip, Avro) and reading them back.

The file layout and record fields are the ones docs/architecture.md "Bronze records" documents;
Spark reads what this module writes, so change them only together with that page.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any

import fastavro
import orjson

from functions.ingest_core import BronzeRecord, QuarantineRecord

FORMATS = ("jsonl", "jsonl.gz", "avro")
QUARANTINE_FORMAT = "jsonl"
SCHEMA_FILE = Path(__file__).with_name("schemas") / "bronze.avsc"
AVRO_SCHEMA = fastavro.parse_schema(json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
# gzip's header carries a time stamp; a fixed one keeps a batch's file bytes a function of its
# records. Level 6 is gzip's default trade-off. Avro blocks use deflate (as Event Hubs Capture
# does) at level 1: a few percent larger than the default level, noticeably faster.
_GZIP_LEVEL = 6
_AVRO_CODEC = "deflate"
_AVRO_LEVEL = 1


def _bytes_as_text(value: Any) -> str:
    # orjson calls this for types it cannot encode: only the Body bytes of a bronze record.
    if isinstance(value, bytes):
        return value.decode("utf-8")
    raise TypeError(f"cannot encode {type(value).__name__} in a bronze record")


def file_name(file_stem: str, fmt: str) -> str:
    """The file name for a batch's file stem in a format (``p0-...-....jsonl``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown bronze format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return f"{file_stem}.{fmt}"


def encode_jsonl(records: Iterable[BronzeRecord] | Iterable[QuarantineRecord]) -> bytes:
    """One JSON object per line, UTF-8, each line ending in a newline."""
    dumps, option = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    return b"".join([dumps(r, default=_bytes_as_text, option=option) for r in records])


def encode_bronze(records: Sequence[BronzeRecord], fmt: str, file_stem: str = "") -> bytes:
    """Encode valid-event records in a bronze format.

    Args:
        records: The records, in batch order.
        fmt: ``jsonl``, ``jsonl.gz`` or ``avro``.
        file_stem: The batch's file stem; it seeds Avro's sync marker so that the same batch
            always encodes to the same bytes.
    """
    if fmt == "jsonl":
        return encode_jsonl(records)
    if fmt == "jsonl.gz":
        return gzip.compress(encode_jsonl(records), compresslevel=_GZIP_LEVEL, mtime=0)
    if fmt == "avro":
        marker = hashlib.md5(file_stem.encode(), usedforsecurity=False).digest()
        try:
            return _avro_header(marker) + b"".join(_avro_blocks(records, marker))
        except (AttributeError, IndexError, KeyError, TypeError, ValueError, OverflowError):
            # A record the fast encoder does not expect: fastavro encodes it or says what is wrong.
            return _fastavro_file(records, marker)
    raise ValueError(f"unknown bronze format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _fastavro_file(records: Sequence[BronzeRecord], marker: bytes) -> bytes:
    buffer = io.BytesIO()
    fastavro.writer(
        buffer,
        AVRO_SCHEMA,
        records,
        codec=_AVRO_CODEC,
        codec_compression_level=_AVRO_LEVEL,
        sync_marker=marker,
    )
    return buffer.getvalue()


# The Avro object container file, written here for the bronze schema alone: fastavro's generic
# writer costs about 5 µs per record, this about 1.5. The bytes are exactly fastavro's (its
# header, its 16,000-byte block threshold, its deflate framing; tests/unit/test_ingest_bronze.py
# compares the two), so a reader cannot tell them apart.
_AVRO_BLOCK_BYTES = 16_000  # fastavro's default sync_interval: a block ends once it reaches it
# Zigzag varints of 0..2**14-1 (string and bytes lengths, small longs), precomputed.
_VARINTS = tuple(
    bytes(
        [
            (z >> shift) & 0x7F | (0x80 if z >> (shift + 7) else 0)
            for shift in range(0, max(z.bit_length(), 1), 7)
        ]
    )
    for z in (n << 1 for n in range(1 << 14))
)


def _avro_long(value: int) -> bytes:
    """Avro's zigzag varint of a 64-bit signed integer."""
    if 0 <= value < 1 << 14:
        return _VARINTS[value]
    if not -(1 << 63) <= value < 1 << 63:
        raise OverflowError(f"{value} does not fit an Avro long")
    zigzag = (value << 1) ^ (value >> 63)
    out = bytearray()
    while zigzag > 0x7F:
        out.append(zigzag & 0x7F | 0x80)
        zigzag >>= 7
    out.append(zigzag)
    return bytes(out)


def _avro_string(value: str) -> bytes:
    data = value.encode("utf-8")
    return _avro_long(len(data)) + data


def _avro_string_map(values: Mapping[str, str]) -> bytes:
    if not values:
        return b"\x00"
    if any(type(v) is not str for v in values.values()):
        raise TypeError("bronze map values are strings")
    items = b"".join([_avro_string(k) + _avro_string(v) for k, v in values.items()])
    return _avro_long(len(values)) + items + b"\x00"


@lru_cache(maxsize=64)
def _avro_header(marker: bytes) -> bytes:
    return _fastavro_file([], marker)  # no records: the header alone


_RECORD_FIELDS = itemgetter(
    "SequenceNumber",
    "Offset",
    "EnqueuedTimeUtc",
    "SystemProperties",
    "Properties",
    "Body",
    "PartitionId",
    "PartitionKey",
    "EventId",
    "IngestedTimeUtc",
)


def _avro_blocks(records: Sequence[BronzeRecord], marker: bytes) -> Iterator[bytes]:
    """The data blocks of a bronze Avro file, deflated, each followed by the sync marker."""
    long, string, string_map, varints, fields = (
        _avro_long,
        _avro_string,
        _avro_string_map,
        _VARINTS,
        _RECORD_FIELDS,
    )
    maps: dict[tuple[tuple[str, str], ...], bytes] = {(): b"\x00"}  # a batch's maps mostly repeat
    constants: dict[tuple[str, str], tuple[bytes, bytes]] = {}  # PartitionId, IngestedTimeUtc
    block: list[bytes] = []
    size = count = 0
    for record in records:
        number, offset, enqueued, system, properties, body, partition, key, event_id, ingested = fields(
            record
        )
        if type(number) is not int or type(body) is not bytes:
            raise TypeError("SequenceNumber is an int and Body bytes")
        system_items, property_items = tuple(system.items()), tuple(properties.items())
        encoded_system = maps.get(system_items)
        if encoded_system is None:
            encoded_system = maps[system_items] = string_map(system)
        encoded_properties = maps.get(property_items)
        if encoded_properties is None:
            encoded_properties = maps[property_items] = string_map(properties)
        fixed = constants.get((partition, ingested))
        if fixed is None:
            fixed = constants[(partition, ingested)] = (string(partition), string(ingested))
        offset, enqueued, event_id = offset.encode(), enqueued.encode(), event_id.encode()
        encoded_record = b"".join(
            [
                long(number),
                varints[len(offset)],  # IndexError past 16 KiB: the generic writer takes over
                offset,
                varints[len(enqueued)],
                enqueued,
                encoded_system,
                encoded_properties,
                long(len(body)),
                body,
                fixed[0],
                b"\x00" if key is None else b"\x02" + string(key),
                varints[len(event_id)],
                event_id,
                fixed[1],
            ]
        )
        block.append(encoded_record)
        size += len(encoded_record)
        count += 1
        if size >= _AVRO_BLOCK_BYTES:
            yield _avro_block(block, count, marker)
            block, size, count = [], 0, 0
    if count:
        yield _avro_block(block, count, marker)


def _avro_block(records: list[bytes], count: int, marker: bytes) -> bytes:
    # Avro's deflate is raw DEFLATE: zlib's stream without its 2-byte header. fastavro also cuts
    # one byte (not four) of the trailing checksum; readers ignore the other three. Same here.
    data = zlib.compress(b"".join(records), _AVRO_LEVEL)[2:-1]
    return _avro_long(count) + _avro_long(len(data)) + data + marker


def encode_quarantine(records: Sequence[QuarantineRecord]) -> bytes:
    """Quarantine files are always JSON lines: people read, fix and replay them."""
    return encode_jsonl(records)


def decode_bronze(data: bytes, fmt: str) -> list[dict[str, Any]]:
    """Read a bronze file back; ``Body`` is bytes in every format."""
    if fmt == "avro":
        return [dict(r) for r in fastavro.reader(io.BytesIO(data))]  # type: ignore[arg-type]
    if fmt == "jsonl.gz":
        data = gzip.decompress(data)
    elif fmt != "jsonl":
        raise ValueError(f"unknown bronze format {fmt!r}; expected one of {', '.join(FORMATS)}")
    records = decode_jsonl(data)
    for record in records:
        record["Body"] = record["Body"].encode("utf-8")
    return records


def decode_jsonl(data: bytes) -> list[dict[str, Any]]:
    """Read a JSON lines file (quarantine files, or uncompressed bronze) as dicts."""
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def format_of(name: str) -> str:
    """The format a bronze or quarantine file name says (by its extension)."""
    for fmt in sorted(FORMATS, key=len, reverse=True):
        if name.endswith("." + fmt):
            return fmt
    raise ValueError(f"{name!r} is not a bronze or quarantine file name")
