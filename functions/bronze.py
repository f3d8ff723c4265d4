"""Bronze and quarantine files: encoding (JSON lines, gzip, Avro) and reading them back.

The file layout and record fields are the ones docs/architecture.md "Bronze records" documents;
Spark reads what this module writes, so change them only together with that page.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import fastavro
import msgspec
import orjson
from isal import igzip

from contract.bronze import FORMATS, RECORD_FIELDS, RECORDS_IN_FILE
from functions.avro import avro_container, envelope_record
from functions.ingest_core import BronzeBatch, BronzeRecord, QuarantineRecord, string_map

# gzip's header carries a time stamp; a fixed one keeps a batch's file bytes a function of its
# records. ISA-L's gzip at level 1 (of 0-3): over 10x faster than zlib's default level 6 on
# bronze, files about 15% larger; any gzip reader reads them. (Avro: see functions.avro.)
_GZIP_LEVEL = 1


def file_name(file_stem: str, fmt: str) -> str:
    """The file name for a batch's file stem in a format (``p0-...-....jsonl``)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown bronze format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return f"{file_stem}.{fmt}"


# One bronze JSON line: the record's fields in their order (contract/bronze.py), with the body as
# text. msgspec encodes a Struct's pre-encoded keys faster than a dict's, and ``encode_lines``
# writes the whole file into one buffer: a fraction of a call per record.
_BronzeLine = msgspec.defstruct("BronzeLine", [(f.name, Any) for f in RECORD_FIELDS], gc=False)
_ENCODER = msgspec.json.Encoder()


def _bronze_jsonl(batch: BronzeBatch) -> bytes:
    lines = itertools.starmap(
        _BronzeLine,
        zip(
            batch.sequence_numbers,
            batch.offsets,
            batch.enqueued_times,
            _as_strings(batch.system_properties),
            _as_strings(batch.properties),
            map(bytes.decode, batch.bodies),  # valid bodies are UTF-8
            batch.partition_ids,
            batch.partition_keys,
            batch.event_ids,
            batch.ingested_times,
            itertools.repeat(len(batch), len(batch)),  # RecordsInFile
            strict=True,
        ),
    )
    return _ENCODER.encode_lines(list(lines))


def _as_strings(maps: Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, str]]:
    """Property values as JSON lines keep them: text (Avro keeps each value's type)."""
    return list(map(string_map, maps))


def encode_bronze(records: Sequence[BronzeRecord], fmt: str, file_stem: str = "") -> bytes:
    """Encode valid-event records in a bronze format.

    Args:
        records: The records, in batch order (a :class:`BronzeBatch` is the fast way).
        fmt: ``jsonl``, ``jsonl.gz`` or ``avro``.
        file_stem: The batch's file stem; it seeds Avro's sync marker so that the same batch
            always encodes to the same bytes.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown bronze format {fmt!r}; expected one of {', '.join(FORMATS)}")
    batch = BronzeBatch.from_records(records)
    if fmt == "avro":
        # A sync marker derived from the name keeps a batch's bytes a function of its records.
        marker = hashlib.md5(file_stem.encode(), usedforsecurity=False).digest()
        return avro_container(batch, marker)
    lines = _bronze_jsonl(batch)
    return lines if fmt == "jsonl" else igzip.compress(lines, compresslevel=_GZIP_LEVEL, mtime=0)


def encode_quarantine(records: Sequence[QuarantineRecord]) -> bytes:
    """Quarantine files are always JSON lines: people read, fix and replay them."""
    return _ENCODER.encode_lines(
        [
            dict(
                r, SystemProperties=string_map(r["SystemProperties"]), Properties=string_map(r["Properties"])
            )
            for r in records
        ]
    )


def decode_bronze(data: bytes, fmt: str) -> list[dict[str, Any]]:
    """Read a bronze file back as the envelope records it was written from (``Body`` as bytes).

    The file's own ``RecordsInFile`` is checked, not returned: a file that does not hold as
    many records as it was written with raises ``ValueError``.
    """
    if fmt == "avro":
        captured = list(fastavro.reader(io.BytesIO(data)))
        counts = [r.get(RECORDS_IN_FILE) for r in captured]  # type: ignore[union-attr]
        records = [envelope_record(r) for r in captured]  # type: ignore[arg-type]
    else:
        if fmt == "jsonl.gz":
            data = gzip.decompress(data)
        elif fmt != "jsonl":
            raise ValueError(f"unknown bronze format {fmt!r}; expected one of {', '.join(FORMATS)}")
        records = decode_jsonl(data)
        counts = [record.pop(RECORDS_IN_FILE, None) for record in records]
        for record in records:
            record["Body"] = record["Body"].encode("utf-8")
    written = {c for c in counts if c}  # files written before the field existed have none
    if written and written != {len(records)}:
        raise ValueError(f"a bronze file written with {sorted(written)} records holds {len(records)}")
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
