"""Lake storage adapters: one small interface, a local folder and Azure (ADLS Gen2 / Blob).

Every write is create-only and atomic: a reader sees a whole file or none, and writing a name
that exists leaves it unchanged (that is what makes a replayed batch a no-op). The Azure adapter
uses only Blob API calls, which a hierarchical-namespace (ADLS Gen2) account serves as well as
Azurite does, so the code path tested here is the one that runs in Azure.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from functions import credentials

if TYPE_CHECKING:
    from settings import Settings

_CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$")
_CONTENT_TYPES = {
    ".jsonl": "application/x-ndjson",
    ".gz": "application/gzip",
    ".avro": "application/avro",
}


class LakeStorage(ABC):
    """Where bronze and quarantine files go: containers of files named by slash paths."""

    @abstractmethod
    def create(self, container: str, path: str, data: bytes) -> bool:
        """Write a new file atomically, only if none exists at that path.

        Returns:
            True when this call wrote the file; False when it already existed (left unchanged).

        Raises:
            OSError or azure.core.exceptions.AzureError: the storage could not be written.
        """

    @abstractmethod
    def list(self, container: str, prefix: str = "") -> list[str]:
        """Paths of the finished files under ``prefix`` (no temp files), sorted."""

    @abstractmethod
    def read(self, container: str, path: str) -> bytes:
        """The whole content of one file."""

    @abstractmethod
    def describe(self) -> str:
        """Where the lake is, for status lines (never includes a secret)."""


def check_location(container: str, path: str) -> None:
    """Refuse container names and paths that could leave the lake (``..``, absolute, empty parts)."""
    if not _CONTAINER.match(container):
        raise ValueError(f"invalid container name {container!r}")
    parts = path.split("/")
    if not path or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise ValueError(f"invalid lake path {path!r}")


class LocalLake(LakeStorage):
    """A folder per container under ``root`` (``$PIPELINE_HOME/lake`` by default).

    Atomic create-only: the bytes go to a temp file whose name starts with ``_`` (Spark and the
    listing skip such files), then a hard link gives it its final name; ``link`` fails when the
    name exists, so a second writer never replaces a first.

    Durability: a written file survives a crash of the process (the page cache keeps it); with
    ``fsync=False`` (the default) not a power loss, which is the embedded hub's guarantee too
    (SQLite WAL with synchronous=NORMAL). ``fsync=True`` costs a few milliseconds per file.
    """

    def __init__(self, root: Path, *, fsync: bool = False) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self._known_dirs: set[Path] = set()

    def _file(self, container: str, path: str) -> Path:
        check_location(container, path)
        return self.root / container / path

    def create(self, container: str, path: str, data: bytes) -> bool:
        target = self._file(container, path)
        folder = target.parent
        if folder not in self._known_dirs:
            folder.mkdir(parents=True, exist_ok=True)
            self._known_dirs.add(folder)
        if target.exists():
            return False
        temp = folder / f"_{target.name}.{uuid.uuid4().hex}.tmp"
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            try:
                os.link(temp, target)
            except FileExistsError:
                return False
            return True
        finally:
            temp.unlink(missing_ok=True)

    def list(self, container: str, prefix: str = "") -> list[str]:
        base = self.root / container
        if not base.is_dir():
            return []
        found = []
        for file in base.rglob("*"):
            if file.is_file() and not file.name.startswith(("_", ".")):
                relative = file.relative_to(base).as_posix()
                if relative.startswith(prefix):
                    found.append(relative)
        return sorted(found)

    def read(self, container: str, path: str) -> bytes:
        return self._file(container, path).read_bytes()

    def describe(self) -> str:
        return f"local folder {self.root}"


class BlobLake(LakeStorage):
    """ADLS Gen2 (or Azurite) through the Blob API of the account.

    ``upload_blob(overwrite=False)`` sends ``If-None-Match: *``: the service refuses to replace an
    existing blob, and a blob becomes visible only when its upload is complete (a single Put
    Blob, or the final Put Block List for large ones), so the write is create-only and atomic.
    """

    def __init__(self, service: Any, *, where: str) -> None:
        self._service = service
        self._where = where
        self._ready_containers: set[str] = set()

    @classmethod
    def from_connection_string(cls, connection_string: str) -> BlobLake:
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(connection_string)
        return cls(service, where=f"blob storage {service.url}")

    @classmethod
    def from_account_url(cls, account_url: str, credential: Any = None) -> BlobLake:
        """Connect with ``credential`` or, by default, the process's ``DefaultAzureCredential``."""
        from azure.storage.blob import BlobServiceClient

        if credential is None:
            credential = credentials.PROCESS_CREDENTIAL.get()
        return cls(BlobServiceClient(account_url, credential=credential), where=f"blob storage {account_url}")

    def _ensure_container(self, container: str) -> None:
        from azure.core.exceptions import ResourceExistsError

        if container in self._ready_containers:
            return
        with contextlib.suppress(ResourceExistsError):
            self._service.create_container(container)
        self._ready_containers.add(container)

    def create(self, container: str, path: str, data: bytes) -> bool:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import ContentSettings

        check_location(container, path)
        self._ensure_container(container)
        content_type = _CONTENT_TYPES.get(Path(path).suffix, "application/octet-stream")
        try:
            self._service.get_container_client(container).upload_blob(
                name=path,
                data=data,
                overwrite=False,
                content_settings=ContentSettings(content_type=content_type),
            )
        except ResourceExistsError:
            return False
        return True

    def list(self, container: str, prefix: str = "") -> list[str]:
        from azure.core.exceptions import ResourceNotFoundError

        client = self._service.get_container_client(container)
        try:
            return sorted(client.list_blob_names(name_starts_with=prefix or None))
        except ResourceNotFoundError:
            return []

    def read(self, container: str, path: str) -> bytes:
        check_location(container, path)
        data: bytes = self._service.get_blob_client(container, path).download_blob().readall()
        return data

    def describe(self) -> str:
        return self._where


def lake_from_settings(settings: Settings) -> LakeStorage:
    """The lake the settings name: a connection string, else an account URL, else a local folder."""
    if settings.lake_connection_string:
        return BlobLake.from_connection_string(settings.lake_connection_string)
    if settings.lake_account_url:
        return BlobLake.from_account_url(settings.lake_account_url)
    return LocalLake(settings.local_lake_path)
