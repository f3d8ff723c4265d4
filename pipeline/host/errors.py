"""The error the local Functions host fails with, in one line, when it cannot run an app."""

from __future__ import annotations

from pipeline.cli import UserError


class HostError(UserError):
    """The app or host.json is not something the host can run; the message says what to fix."""
