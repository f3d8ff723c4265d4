"""Bronze and quarantine files read back: record by record for `status`, as Arrow columns for the audit.

The local lake's files (:func:`lake_files`, :func:`read_records`) and any lake through
:mod:`functions.lake`'s adapter (:func:`lake_table`), so the audit works on the local folder and
on ADLS alike. A damaged file (cut, an unreadable Avro block) is read as far as it goes and named,
never raised.
"""

from __future__ import annotations

import io
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json
from isal import igzip

from contract.bronze import EXACT_ENQUEUED_TIME, RECORDS_IN_FILE
from contract.lake_layout import format_of, is_data_file, parse_path
from functions.lake import LakeStorage
from settings import Settings

_AVRO_MAGIC = b"Obj\x01"


# --- the local lake (bronze and quarantine files) -------------------------------------------------


def lake_files(settings: Settings, container: str) -> list[Path]:
    """Every finished data file of the stream in a container, oldest partition first."""
    root = settings.local_lake_path / container / settings.bronze_stream
    if not root.is_dir():
        return []
    files = [
        p
        for p in root.rglob("*")
        # Writers create a temp file starting with `_` and hard-link it into place: skip temps.
        if p.is_file() and is_data_file(p.name)
    ]
    return sorted(files)


def count_records(path: Path) -> int:
    """Number of readable records in one bronze or quarantine file."""
    return len(read_records(path.read_bytes(), format_of(path.name))[0])


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """Yield the readable records of one bronze or quarantine file as dicts (envelope field names;
    a damaged file yields what can be read of it)."""
    yield from read_records(path.read_bytes(), format_of(path.name))[0]


def read_records(data: bytes, fmt: str) -> tuple[list[dict[str, Any]], str | None]:
    """Every readable record of a bronze or quarantine file, and what stopped the reading.

    Never raises on damaged bytes: a JSON line that does not parse is skipped, an Avro file is read
    up to its first unreadable block, a cut gzip stream up to the cut.

    Returns:
        The records (JSON lines as parsed; Avro as envelope records, plus ``RecordsInFile`` when
        the file has it), and None when the whole file was read, else why not (one line).
    """
    if fmt == "avro":
        return _avro_records(data)
    problem = None
    if fmt == "jsonl.gz":
        data, problem = _gunzip(data)
    records, bad_lines = [], 0
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad_lines += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad_lines += 1
    if bad_lines:
        what = "line is not a JSON object" if bad_lines == 1 else "lines are not JSON objects"
        problem = problem or f"{bad_lines:,} {what} (a cut or damaged file)"
    return records, problem


def _gunzip(data: bytes) -> tuple[bytes, str | None]:
    """A gzip stream's content, or as much of it as comes before damage or a cut."""
    try:
        return igzip.decompress(data), None
    except Exception as exc:  # damaged bytes raise many kinds
        inflater = zlib.decompressobj(wbits=31)
        try:
            partial = inflater.decompress(data)
        except zlib.error:
            partial = b""
        return partial, f"gzip stream damaged or cut: {exc}"


def _avro_records(data: bytes) -> tuple[list[dict[str, Any]], str | None]:
    import fastavro

    from functions.avro import envelope_record

    records: list[dict[str, Any]] = []
    if not data.startswith(_AVRO_MAGIC):  # fastavro reads past a wrong magic; Spark does not
        return records, "Avro header unreadable: not an Avro object container file"
    try:
        for captured in fastavro.reader(io.BytesIO(data)):
            # A file without the pipeline's fields (not written by the Function) reads as it is.
            record = envelope_record(captured) if EXACT_ENQUEUED_TIME in captured else dict(captured)  # type: ignore[arg-type,operator]
            record[RECORDS_IN_FILE] = captured.get(RECORDS_IN_FILE)  # type: ignore[union-attr]
            records.append(record)
    except Exception as exc:  # fastavro raises many kinds on damaged bytes
        where = "header" if not records else f"block after record {len(records):,}"
        return records, f"Avro {where} unreadable: {type(exc).__name__}: {exc}"
    return records, None


def quarantine_reasons(settings: Settings) -> tuple[int, Counter[str]]:
    """Return (quarantined records, how many records carry each reason code)."""
    records = 0
    reasons: Counter[str] = Counter()
    for path in lake_files(settings, settings.quarantine_container):
        for record in iter_records(path):
            records += 1
            reasons.update(record.get("Reasons") or ["unknown"])
    return records, reasons


# --- columnar readers -----------------------------------------------------------------------------

#: Arrow types of the envelope fields :func:`lake_table` reads (bronze and quarantine records).
ENVELOPE_TYPES: dict[str, pa.DataType] = {
    "SequenceNumber": pa.int64(),
    "Offset": pa.string(),
    "EnqueuedTimeUtc": pa.string(),
    "PartitionId": pa.string(),
    "PartitionKey": pa.string(),
    "EventId": pa.string(),
    "IngestedTimeUtc": pa.string(),
    "Body": pa.string(),
    "BodyEncoding": pa.string(),
    RECORDS_IN_FILE: pa.int64(),
}
FILE_COLUMN = "file"
# The longest JSON line a bronze or quarantine file can hold (a 256 KiB body, base64 in quarantine,
# plus its envelope) fits one Arrow JSON block of this size.
_JSON_BLOCK_BYTES = 4 << 20
_READ_THREADS = 8  # files read at once: Blob downloads wait on the network, parsing releases the GIL


@dataclass(frozen=True)
class LakeRecords:
    """Records of many lake files as Arrow columns; ``table[FILE_COLUMN]`` indexes ``files``.

    ``damaged`` names the files that could not be read whole (index into ``files``: why not);
    ``table`` holds what could be read of them.
    """

    table: pa.Table
    files: list[str]
    damaged: dict[int, str] = field(default_factory=dict)


def lake_data_files(lake: LakeStorage, container: str, stream: str) -> list[str]:
    """The finished bronze or quarantine files of a stream in a container, sorted (temps skipped)."""
    names = lake.list(container, f"{stream}/")
    return [n for n in names if is_data_file(n)]


def lake_table(lake: LakeStorage, container: str, stream: str, fields: Sequence[str]) -> LakeRecords:
    """Chosen envelope fields of every record in a stream's files, plus the file each came from.

    JSON lines (and gzip'd) are parsed by Arrow's JSON reader, typing only the fields asked for
    (:data:`ENVELOPE_TYPES`); Avro is read by field name. A field a record lacks reads as null;
    ``Body`` reads as text (Avro bodies are decoded as UTF-8, which valid bodies are). A damaged
    file never fails the read: what can be read of it is kept, and it is named in ``damaged``.
    """
    files = lake_data_files(lake, container, stream)
    schema = pa.schema([(name, ENVELOPE_TYPES[name]) for name in fields])

    def read(index: int) -> tuple[pa.Table, str | None]:
        path = files[index]
        table, problem = _records_table(lake.read(container, path), format_of(path), schema)
        return table.append_column(FILE_COLUMN, pa.array(np.full(table.num_rows, index, np.int32))), problem

    with ThreadPoolExecutor(_READ_THREADS) as pool:
        results = list(pool.map(read, range(len(files))))
    empty = schema.empty_table().append_column(FILE_COLUMN, pa.array([], pa.int32()))
    damaged = {i: problem for i, (_, problem) in enumerate(results) if problem is not None}
    return LakeRecords(pa.concat_tables([empty, *(t for t, _ in results)]), files, damaged)


def _records_table(data: bytes, fmt: str, schema: pa.Schema) -> tuple[pa.Table, str | None]:
    """One file's records as columns, and None, or what could be read and why not all."""
    if fmt != "avro":
        text: bytes | None = data
        if fmt == "jsonl.gz":
            try:
                text = igzip.decompress(data)
            except Exception:  # damaged bytes: read_records keeps what it can
                text = None
        if text is not None and not text.strip():
            return schema.empty_table(), None
        if text is not None:
            try:
                table = pa_json.read_json(
                    io.BytesIO(text),
                    read_options=pa_json.ReadOptions(block_size=_JSON_BLOCK_BYTES),
                    parse_options=pa_json.ParseOptions(
                        explicit_schema=schema, unexpected_field_behavior="ignore"
                    ),
                )
                return table, None
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                pass  # a damaged line (a cut file): read line by line below
    records, problem = read_records(data, fmt)
    columns = {}
    for name in schema.names:
        values = [r.get(name) for r in records]
        if name == "Body":
            values = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
        columns[name] = _typed(values, schema.field(name).type)
    return pa.table(columns, schema=schema), problem


def _typed(values: list[Any], kind: pa.DataType) -> pa.Array:
    """Values as an Arrow array of ``kind``; a value of another type (a damaged record) is null."""
    try:
        return pa.array(values, kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        wanted: type | tuple[type, ...] = int if pa.types.is_integer(kind) else str
        kept = [v if isinstance(v, wanted) and not isinstance(v, bool) else None for v in values]
        return pa.array(kept, kind)


_RFC3339_MS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"


def plausible_records(records: pa.Table, files: list[str], damaged: set[int]) -> pa.Table:
    """Records of damaged files only where they are what their file's name says they can be.

    The bytes after a damaged place in an Avro block can still decode as records, with made-up
    values: such a record is not counted as an event (its partition, sequence number outside the
    name's range, or enqueued time would be taken at face value otherwise). Whole files are kept.
    """
    if not damaged or not records.num_rows:
        return records
    suspect = pc.is_in(records[FILE_COLUMN], value_set=pa.array(sorted(damaged), pa.int32()))
    good = pc.match_substring_regex(pc.fill_null(records["EnqueuedTimeUtc"], ""), _RFC3339_MS)
    for index in damaged:
        file = parse_path(files[index])
        if file is None or file.name.partition_id is None:
            continue
        name = file.name
        in_file = pc.equal(records[FILE_COLUMN], index)
        fits = pc.and_(
            pc.equal(pc.fill_null(records["PartitionId"], ""), name.partition_id),
            pc.and_(
                pc.greater_equal(records["SequenceNumber"], name.first_sequence_number),
                pc.less_equal(records["SequenceNumber"], name.last_sequence_number),
            ),
        )
        good = pc.and_(good, pc.or_(pc.invert(in_file), pc.fill_null(fits, False)))
    return records.filter(pc.or_(pc.invert(suspect), good))
