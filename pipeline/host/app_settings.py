"""App settings as the functions' environment, exported for a host run as on Azure.

On Azure the app settings are environment variables of the worker process, set when it starts;
the functions read them with :func:`settings.load_settings` (the environment first, then
``local.settings.json``). The local host does the same around each of its runs (importing the
app, :meth:`~pipeline.host.LocalFunctionsHost.run_until_idle`, ``serve``, ``fire_timer``): its
settings go into ``os.environ`` when the run starts, and what was there before comes back when
it ends. Never per invocation: a run of hours exports them once.

A worker process holds one app's settings. So does this process: a run nested in another, or
beside it in another thread, with the same settings shares the export, and one with other
settings while the first goes on is refused with :class:`HostError` (it could only run with the
wrong ones). Runs one after the other may have different settings.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pipeline.host.errors import HostError
from settings import Settings


@dataclass
class _Export:
    values: dict[str, str]
    runs: int = 0
    replaced: dict[str, str | None] = field(default_factory=dict)  # name -> value before (None: unset)


_lock = threading.Lock()  # held only while a run starts or ends
_current: _Export | None = None


@contextmanager
def exported(settings: Settings) -> Iterator[None]:
    """Within the block, the process environment holds ``settings`` (see the module docstring).

    Raises:
        HostError: another run in this process holds other settings.
    """
    global _current
    values = dict(settings.values)
    with _lock:
        if _current is None:
            _current = _Export(values)
            for name, value in values.items():
                if os.environ.get(name) != value:
                    _current.replaced[name] = os.environ.get(name)
                    os.environ[name] = value
        elif _current.values != values:
            raise HostError(
                "a local Functions host with other settings is running in this process; one process "
                "runs one app with one set of app settings, as a worker does"
            )
        export = _current
        export.runs += 1
    try:
        yield
    finally:
        with _lock:
            export.runs -= 1
            if not export.runs:
                for name, previous in export.replaced.items():
                    if previous is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = previous
                _current = None
