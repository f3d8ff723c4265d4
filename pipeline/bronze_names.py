"""Bronze file names read back: which batch a file holds, and which files a repair superseded.

The ingest Function names a batch's file from what the hub assigned (``functions.ingest_core.
batch_file_stem``): ``p<partition>-<first seq>-<last seq>-<first enqueued>-<hub tag>.<ext>``,
with ``-conflict-<digest>`` when that name held other events (``functions.landing``).
``pipeline repair`` writes a damaged file's events again under ``<stem>-repair-<digest>.<ext>``
beside it and keeps the damaged file: from then on the repair supersedes it, and every reader
that counts events (the audit, ``status``) reads the repair instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from contract.bronze import FORMATS
from functions.landing import CONFLICT_MARKER

REPAIR_MARKER = "-repair-"
_SUFFIX = "|".join(re.escape(m.strip("-")) for m in (CONFLICT_MARKER, REPAIR_MARKER))
_EXTENSIONS = "|".join(re.escape(f) for f in sorted(FORMATS, key=len, reverse=True))
_NAME = re.compile(
    r"^p(?:x[0-9a-f]{16}|(?P<partition>[A-Za-z0-9_]{1,32}))"
    r"-(?P<first>\d{20})-(?P<last>\d{20})-(?P<time>\d{8}T\d{9}Z)-(?P<tag>[0-9a-f]{8})"
    rf"(?P<suffixes>(?:-(?:{_SUFFIX})-[0-9a-f]{{16}})*)\.(?P<format>{_EXTENSIONS})$"
)


@dataclass(frozen=True)
class BronzeName:
    """What a bronze or quarantine file's name says about the batch it holds.

    Attributes:
        path: The file's path inside its container (``<stream>/ingest_date=.../hour=../<name>``).
        partition: The partition id, or None when the host did not pass one (``px<digest>``).
        first_sequence_number: The batch's first sequence number.
        last_sequence_number: Its last.
        first_enqueued_ms: The first event's enqueued time, epoch milliseconds.
        tag: The hub's tag (``functions.ingest_core.hub_tag``).
        format: ``jsonl``, ``jsonl.gz`` or ``avro``.
    """

    path: str
    partition: str | None
    first_sequence_number: int
    last_sequence_number: int
    first_enqueued_ms: int
    tag: str
    format: str

    @property
    def stem(self) -> str:
        """The path without its format extension."""
        return self.path[: -len(self.format) - 1]

    @property
    def batch_stem(self) -> str:
        """The path without extension, conflict or repair suffix: what the Function named the batch."""
        stem = self.stem
        folder, _, name = stem.rpartition("/")
        for marker in (CONFLICT_MARKER, REPAIR_MARKER):
            name = name.split(marker, 1)[0]
        return f"{folder}/{name}" if folder else name

    @property
    def conflict_digest(self) -> str | None:
        """The digest of a conflict name (``-conflict-<digest>``, before any repair suffix)."""
        name = self.stem.rsplit("/", 1)[-1].split(REPAIR_MARKER, 1)[0]
        return name.split(CONFLICT_MARKER, 1)[1] if CONFLICT_MARKER in name else None

    @property
    def is_repair(self) -> bool:
        return REPAIR_MARKER in self.path.rsplit("/", 1)[-1]

    @classmethod
    def parse(cls, path: str) -> BronzeName | None:
        """Read a file's name; None when it is not one the ingest Function or a repair writes."""
        match = _NAME.match(path.rsplit("/", 1)[-1])
        if match is None:
            return None
        moment = datetime.strptime(match["time"][:-4], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
        return cls(
            path=path,
            partition=match["partition"],
            first_sequence_number=int(match["first"]),
            last_sequence_number=int(match["last"]),
            first_enqueued_ms=int(moment.timestamp()) * 1000 + int(match["time"][-4:-1]),
            tag=match["tag"],
            format=match["format"],
        )


def repair_path(path: str, digest: str) -> str:
    """The name a repair of the file at ``path`` is written under (same folder and format)."""
    name = BronzeName.parse(path)
    fmt = name.format if name else path.rsplit(".", 1)[-1]
    stem = path[: -len(fmt) - 1]
    return f"{stem}{REPAIR_MARKER}{digest}.{fmt}"


def superseded(paths: Iterable[str]) -> set[str]:
    """The files a repair supersedes: those with a ``<stem>-repair-<digest>`` file of their format
    beside them (a damaged repair is in turn superseded by its own repair)."""
    paths = list(paths)
    out = set()
    stems = {}
    for path in paths:
        name = BronzeName.parse(path)
        if name is not None:
            stems[(name.stem, name.format)] = path
    for path in paths:
        name = BronzeName.parse(path)
        if name is None or not name.is_repair:
            continue
        stem = name.stem
        marker = stem.rfind(REPAIR_MARKER)
        original = stems.get((stem[:marker], name.format))
        if original is not None:
            out.add(original)
    return out
