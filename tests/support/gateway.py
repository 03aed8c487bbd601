"""The whole app under uvicorn with Groq at the fake Groq, and its current client key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.fake_groq import FAKE_GROQ_KEY, FakeGroq
from tests.support.server import AppServer

ADMIN_SECRET = "gateway-admin-secret-0123456789"


@dataclass(frozen=True)
class Gateway:
    """A running server and the client key it accepts."""

    server: AppServer
    key: str

    @property
    def base_url(self) -> str:
        """Where the server listens (no `/v1`)."""
        return self.server.base_url


@contextmanager
def served(workdir: Path, fake_groq: FakeGroq, *, extra_args: tuple[str, ...] = (), **env: str) -> Iterator[Gateway]:
    """Serve from `workdir` with Groq at `fake_groq` (more settings in `env`, uvicorn flags in
    `extra_args`) until the block ends."""
    settings = {"GROQ_API_KEY": FAKE_GROQ_KEY, "GROQ_BASE_URL": fake_groq.base_url,
                "ADMIN_SECRET": ADMIN_SECRET, **env}
    with AppServer(workdir, settings, extra_args=extra_args) as server:
        response = httpx.get(f"{server.base_url}/current-key", headers={"admin-secret": ADMIN_SECRET},
                             timeout=10)
        assert response.status_code == 200, response.text
        yield Gateway(server=server, key=response.json()["api_key"])
