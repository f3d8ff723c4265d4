"""The lake layout: where the ingest Function's files go and what their names say.

Built and read here only (the ingest Function, its landing checks, the audit, the local readers
and the test fixtures all call these functions), so the names cannot drift apart::

    <container>/<stream>/ingest_date=YYYY-MM-DD/hour=HH/<stem>.<format>
    <stem> = p<partition>-<first seq:020d>-<last seq:020d>-<first enqueued>-<hub tag>[-<marker>-<digest>]...

Every part is something the hub assigned (docs/ingest.md "Files, names and the replay contract"):
the partition id, the batch's first and last sequence numbers, its first event's enqueued time
(UTC to the millisecond, ``20261122T074320500Z``; the date and hour folders come from it too) and
the hub's tag (8 hex digits). ``px<16 hex>`` stands in for ``p<partition>`` when the host did not
say which partition a batch came from. A suffix marks a second file for the same batch:
``-conflict-<digest>`` when the usual name held other events, ``-repair-<digest>`` for a damaged
file's events written again by ``pipeline repair``. Writers create files atomically under a name
starting with ``_``; readers skip such names and names starting with ``.``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from contract.bronze import FORMATS, as_utc

#: The folder levels under a stream: Hive-style, so Spark reads them as partition columns.
DATE_FOLDER = "ingest_date"
HOUR_FOLDER = "hour"
#: Marks a batch's second file whose usual name held other events (functions.landing).
CONFLICT_MARKER = "conflict"
#: Marks a damaged file's events written again beside it (pipeline repair).
REPAIR_MARKER = "repair"
SUFFIX_MARKERS = (CONFLICT_MARKER, REPAIR_MARKER)
#: Name prefixes of files that are not finished data files (writers' temps, hidden files).
UNFINISHED_PREFIXES = ("_", ".")

_PARTITION_ID = re.compile(r"[A-Za-z0-9_]{1,32}")
_DIGEST = re.compile(r"[0-9a-f]{16}")
_DIGEST_FORM = re.compile(r"x[0-9a-f]{16}")
_HUB_TAG = re.compile(r"[0-9a-f]{8}")
_EXTENSIONS = "|".join(re.escape(f) for f in sorted(FORMATS, key=len, reverse=True))
_NAME = re.compile(
    r"p(?:x(?P<digest>[0-9a-f]{16})|(?P<partition>[A-Za-z0-9_]{1,32}))"
    r"-(?P<first>\d{20})-(?P<last>\d{20})-(?P<time>\d{8}T\d{9}Z)-(?P<tag>[0-9a-f]{8})"
    rf"(?P<suffixes>(?:-(?:{'|'.join(SUFFIX_MARKERS)})-[0-9a-f]{{16}})*)\.(?P<format>{_EXTENSIONS})"
)
_FOLDER = re.compile(
    rf"(?P<stream>.+)/{DATE_FOLDER}=(?P<date>\d{{4}}-\d{{2}}-\d{{2}})/{HOUR_FOLDER}=(?P<hour>\d{{2}})"
)
_SUFFIX = re.compile(rf"-({'|'.join(SUFFIX_MARKERS)})-([0-9a-f]{{16}})")


def is_safe_partition_id(partition_id: str) -> bool:
    """Whether a partition id can stand in a file name as it is (else ``px<digest>`` stands in).

    Event Hubs' ids are numbers; an id that reads like the digest form (``x`` and 16 hex digits)
    gets the digest form, so that a name reads back one way only.
    """
    return _PARTITION_ID.fullmatch(partition_id) is not None and not _DIGEST_FORM.fullmatch(partition_id)


def batch_folder(stream: str, first_enqueued: datetime) -> str:
    """``<stream>/ingest_date=YYYY-MM-DD/hour=HH`` of a batch, from its first event's enqueued time.

    A naive time is taken as UTC, as the Functions host's naive times are.
    """
    moment = as_utc(first_enqueued)
    return f"{stream}/{DATE_FOLDER}={moment.date().isoformat()}/{HOUR_FOLDER}={moment.hour:02d}"


@dataclass(frozen=True)
class BatchName:
    """What the names of a batch's files say, whatever their format.

    Attributes:
        stream: The stream folder (first level under the container).
        partition_id: The partition id, or None when the host did not say (then ``digest`` is set).
        digest: 16 hex digits standing in for the partition id (``px<digest>``), else None.
        first_sequence_number: The batch's first sequence number (0 when the host gave none).
        last_sequence_number: Its last.
        first_enqueued: The first event's enqueued time, UTC, to the millisecond.
        hub_tag: The hub's tag (8 hex digits).
        suffixes: ``(marker, digest)`` of each suffix, in order (conflict, then repair).
    """

    stream: str
    partition_id: str | None
    digest: str | None
    first_sequence_number: int
    last_sequence_number: int
    first_enqueued: datetime
    hub_tag: str
    suffixes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if (self.partition_id is None) == (self.digest is None):
            raise ValueError("a batch is named by its partition id or by the digest standing in for it")
        if self.partition_id is not None and not is_safe_partition_id(self.partition_id):
            raise ValueError(f"partition id {self.partition_id!r} cannot stand in a file name")
        for digest in [self.digest or "0" * 16, *(d for _, d in self.suffixes)]:
            if not _DIGEST.fullmatch(digest):
                raise ValueError(f"{digest!r} is not 16 hex digits")
        if not _HUB_TAG.fullmatch(self.hub_tag):
            raise ValueError(f"hub tag {self.hub_tag!r} is not 8 hex digits")
        if any(marker not in SUFFIX_MARKERS for marker, _ in self.suffixes):
            raise ValueError(f"suffix markers are {', '.join(SUFFIX_MARKERS)}")
        if not 0 <= self.first_sequence_number <= self.last_sequence_number < 10**20:
            raise ValueError("sequence numbers go 0 <= first <= last < 10**20")
        if self.first_enqueued.tzinfo is None or self.first_enqueued.microsecond % 1000:
            raise ValueError("the first enqueued time is aware, to the millisecond")

    @property
    def folder(self) -> str:
        """``<stream>/ingest_date=YYYY-MM-DD/hour=HH``."""
        return batch_folder(self.stream, self.first_enqueued)

    @property
    def batch_stem(self) -> str:
        """The stem without suffixes: what the ingest Function names the batch."""
        partition = f"x{self.digest}" if self.partition_id is None else self.partition_id
        moment = as_utc(self.first_enqueued)
        stamp = f"{moment.year:04d}{moment:%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z"
        first, last = self.first_sequence_number, self.last_sequence_number
        return f"p{partition}-{first:020d}-{last:020d}-{stamp}-{self.hub_tag}"

    @property
    def stem(self) -> str:
        """The file name without its format extension."""
        return self.batch_stem + "".join(f"-{marker}-{digest}" for marker, digest in self.suffixes)

    @property
    def first_enqueued_ms(self) -> int:
        """The first event's enqueued time as epoch milliseconds."""
        return round(self.first_enqueued.timestamp() * 1000)

    @property
    def conflict_digest(self) -> str | None:
        """The digest of a conflict name (``-conflict-<digest>``), else None."""
        return next((digest for marker, digest in self.suffixes if marker == CONFLICT_MARKER), None)

    @property
    def is_repair(self) -> bool:
        """Whether this names a repair (its last suffix is ``-repair-<digest>``)."""
        return bool(self.suffixes) and self.suffixes[-1][0] == REPAIR_MARKER

    @property
    def batch(self) -> BatchName:
        """The name without suffixes: the batch's usual name."""
        return replace(self, suffixes=())

    @property
    def without_last_suffix(self) -> BatchName:
        """The name of the file this one is a second file of (a repair's damaged file)."""
        return replace(self, suffixes=self.suffixes[:-1])

    def with_suffix(self, marker: str, digest: str) -> BatchName:
        """The name of a second file of the same batch (same folder)."""
        return replace(self, suffixes=(*self.suffixes, (marker, digest)))

    def file(self, fmt: str) -> BatchFile:
        """The batch's file in a format."""
        return BatchFile(self, fmt)

    def path(self, fmt: str) -> str:
        """``<stream>/ingest_date=.../hour=../<stem>.<fmt>``: the file's path in its container."""
        return self.file(fmt).path


@dataclass(frozen=True)
class BatchFile:
    """One file of a batch: its name and format."""

    name: BatchName
    format: str

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"unknown format {self.format!r}; expected one of {', '.join(FORMATS)}")

    @property
    def path(self) -> str:
        """``<stream>/ingest_date=.../hour=../<stem>.<format>``: the file's path in its container."""
        return f"{self.name.folder}/{self.name.stem}.{self.format}"


def parse_path(path: str) -> BatchFile | None:
    """Read a batch file's path (``<stream>/ingest_date=.../hour=../<stem>.<format>``); None when
    it is not one the ingest Function or a repair writes: another name, or not in its own folder."""
    folder, _, file_name = path.rpartition("/")
    found, where = _NAME.fullmatch(file_name), _FOLDER.fullmatch(folder)
    if found is None or where is None:
        return None
    stamp = found["time"]
    moment = datetime.strptime(stamp[:-4], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    name = BatchName(
        stream=where["stream"],
        partition_id=found["partition"],
        digest=found["digest"],
        first_sequence_number=int(found["first"]),
        last_sequence_number=int(found["last"]),
        first_enqueued=moment.replace(microsecond=int(stamp[-4:-1]) * 1000),
        hub_tag=found["tag"],
        suffixes=tuple((m[1], m[2]) for m in _SUFFIX.finditer(found["suffixes"])),
    )
    return BatchFile(name, found["format"]) if name.folder == folder else None


def format_of(name: str) -> str:
    """The format a bronze or quarantine file name says (by its extension)."""
    for fmt in sorted(FORMATS, key=len, reverse=True):
        if name.endswith("." + fmt):
            return fmt
    raise ValueError(f"{name!r} is not a bronze or quarantine file name")


def is_data_file(path: str) -> bool:
    """Whether a lake path names a finished file of a bronze format (not a writer's temp file).

    Readers count such files whatever their stem (hand-made files, older names)."""
    name = path.rsplit("/", 1)[-1]
    return not name.startswith(UNFINISHED_PREFIXES) and any(name.endswith("." + fmt) for fmt in FORMATS)


def repair_of(file: BatchFile, digest: str) -> BatchFile:
    """Where ``pipeline repair`` writes a damaged file's events again (same folder and format)."""
    return file.name.with_suffix(REPAIR_MARKER, digest).file(file.format)


def superseded(paths: Iterable[str]) -> set[str]:
    """The files a repair supersedes: those with a ``<stem>-repair-<digest>`` file of their format
    beside them (a damaged repair is in turn superseded by its own repair)."""
    files = {path: file for path in paths if (file := parse_path(path)) is not None}
    by_name = {(file.name, file.format): path for path, file in files.items()}
    return {
        original
        for file in files.values()
        if file.name.is_repair
        and (original := by_name.get((file.name.without_last_suffix, file.format))) is not None
    }


def batch_name(path: str) -> BatchName | None:
    """The batch a file's path names; None when it is not one the ingest Function or a repair writes."""
    file = parse_path(path)
    return file.name if file is not None else None
