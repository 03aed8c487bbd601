"""Where `aiapi` finds the server and its credentials: flags first, then the environment."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_SECONDS = 300.0  # a first local answer includes loading the model


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """The server's base URL (no `/v1`), the admin secret and the client key, any of them unset."""

    url: str = DEFAULT_URL
    admin_secret: str | None = None
    key: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    @property
    def base_url(self) -> str:
        """The URL without a trailing slash or `/v1`: paths are added to it."""
        url = self.url.strip().rstrip("/")
        return url.removesuffix("/v1") if url.endswith("/v1") else url

    @property
    def openai_base_url(self) -> str:
        """What OpenAI clients take as `base_url`."""
        return f"{self.base_url}/v1"
