"""One writer per state folder: an OS lock on ``$PIPELINE_HOME/writer.lock``.

Two commands writing the same lake, checkpoint and warehouse at once (``run --once`` while ``run``
is running) would interleave Spark commits and syncs; the second one fails at once instead, with
one line naming the holder. The lock is ``fcntl.flock`` on an open file, so the OS releases it when
the holder exits, however it exits: a killed holder never leaves the folder locked, and the next
writer simply takes it over. The file stays (deleting it would let two writers lock two different
files); it holds who has the lock while it is held, and is emptied on release.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.cli import UserError

LOCK_NAME = "writer.lock"


class StateFolderBusy(UserError):
    """Another process holds the state folder's writer lock."""


@contextmanager
def state_lock(home: Path, command: str) -> Iterator[None]:
    """Hold the writer lock of ``home`` (created if missing) for the block.

    Raises:
        StateFolderBusy: Another process holds it; the message names its pid, command and start.
    """
    home.mkdir(parents=True, exist_ok=True)
    path = home / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateFolderBusy(_busy_message(home, _read_holder(fd))) from None
        holder = {"pid": os.getpid(), "command": command, "since": datetime.now(UTC).isoformat()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode() + b"\n", 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock


def holder(home: Path) -> dict[str, Any] | None:
    """Who holds the writer lock of ``home`` right now, or None when nobody does."""
    path = home / LOCK_NAME
    if not path.is_file():
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd) or {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_holder(fd: int) -> dict[str, Any] | None:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"null")
    except ValueError:  # the holder is between truncating and writing its line
        return None
    return data if isinstance(data, dict) else None


def _busy_message(home: Path, info: dict[str, Any] | None) -> str:
    if not info:
        who = "another process (it is just starting)"
    else:
        since = str(info.get("since", "?"))
        with suppress(ValueError):
            since = datetime.fromisoformat(since).strftime("%Y-%m-%d %H:%M:%S UTC")
        who = f"`{info.get('command', '?')}` (pid {info.get('pid', '?')}, since {since})"
        if isinstance(info.get("pid"), int) and not _alive(info["pid"]):
            who += "; that pid has exited, so a process it started still holds the lock"
    return (
        f"{home} is in use by {who}: one writer at a time; wait for it to finish or stop it "
        "(Ctrl-C), or use another PIPELINE_HOME"
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
