"""Where `aiapi` finds the server and its credentials: flags first, then the environment."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_SECONDS = 300.0  # a first local answer includes loading the model


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """The server's URL, the admin secret and the client key (either may be unset)."""

    url: str = DEFAULT_URL
    admin_secret: str | None = None
    key: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    @property
    def base_url(self) -> str:
        """The URL with a scheme, without a trailing slash or `/v1`: paths are added to it."""
        url = self.url.strip().rstrip("/")
        if url and "://" not in url:
            url = f"http://{url}"  # `localhost:8000`, as people type it
        return url.removesuffix("/v1")

    @property
    def openai_base_url(self) -> str:
        """What OpenAI clients take as `base_url`."""
        return f"{self.base_url}/v1"
