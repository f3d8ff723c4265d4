"""A local Functions host: runs ``function_app.app`` the way the Azure Functions host does.

The ``func`` host cannot run on this machine, so this package does its job for the two trigger
types the app uses, on the embedded event hub. Callers use :class:`LocalFunctionsHost`; the
parts, one concern each:

* :mod:`~pipeline.host.indexing`: the app's functions as the host indexes them (bindings with
  ``%SETTING%`` names resolved, the Python worker's load checks from
  :mod:`~pipeline.host.worker_checks`), failing with one line where Azure would load nothing;
* :mod:`~pipeline.host.host_json`: host.json's Event Hubs batch settings;
* :mod:`~pipeline.host.trigger_payload`: a batch as the worker hands it to the function
  (``EventHubEvent`` s with the host's trigger metadata);
* :mod:`~pipeline.host.retry`: the function's retry policy, applied in place (``-1``: until it
  succeeds);
* :mod:`~pipeline.host.event_hub_pump`: partitions, host.json's minimum batch and wait,
  invocations and checkpoints;
* :mod:`~pipeline.host.landed`: what an invocation landed, counted from the lake files;
* :mod:`~pipeline.host.timers`: timer functions on their NCRONTAB schedules;
* :mod:`~pipeline.host.app_settings`: the app settings in the environment for a host run;
* :mod:`~pipeline.host.local_host`: the façade, :class:`LocalFunctionsHost`;
* :mod:`~pipeline.host.state`: its counts and status line.
"""

from pipeline.host.errors import HostError
from pipeline.host.local_host import LocalFunctionsHost
from pipeline.host.state import HostStatus, IngestSummary
from pipeline.host.trigger_payload import build_event_batch, trigger_metadata

__all__ = [
    "HostError",
    "HostStatus",
    "IngestSummary",
    "LocalFunctionsHost",
    "build_event_batch",
    "trigger_metadata",
]
