"""One Azure credential per process.

``DefaultAzureCredential`` caches its tokens and refreshes them shortly before they expire, but
only within one instance: building one per connection or per sync walks the credential chain
and asks Entra ID (or the managed identity endpoint) for a new token every time. Every Azure
client of the Function app takes its credential from :data:`PROCESS_CREDENTIAL`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential


def default_azure_credential() -> TokenCredential:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


class SharedCredential:
    """Builds a credential on first use, once, and hands that one to every caller (thread-safe)."""

    def __init__(self, factory: Callable[[], TokenCredential] = default_azure_credential) -> None:
        self._factory = factory
        self._credential: TokenCredential | None = None
        self._lock = threading.Lock()

    def get(self) -> TokenCredential:
        with self._lock:
            if self._credential is None:
                self._credential = self._factory()
            return self._credential

    def token(self, scope: str) -> str:
        """A bearer token for ``scope``, from the credential's cache while it is valid."""
        return self.get().get_token(scope).token


PROCESS_CREDENTIAL = SharedCredential()
