"""Bronze and quarantine files: encoding (JSON lines, gzip, Avro) and reading them back.

The file layout and record fields are the ones docs/architecture.md "Bronze records" documents;
Spark reads what this module writes, so change them only together with that page.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Iterable, Sequence
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
        # A sync marker derived from the name keeps a batch's bytes a function of its records.
        marker = hashlib.md5(file_stem.encode(), usedforsecurity=False).digest()
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
