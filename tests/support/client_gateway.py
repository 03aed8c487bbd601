"""A whole gateway for the client tests (aiapi, the chat page, README examples): the real app, fake Groq."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.fake_groq import FAKE_GROQ_KEY, FakeGroq
from tests.support.server import AppServer

ADMIN = "client-tests-admin-secret-0123"
FIRST_GROQ_MODEL, SECOND_GROQ_MODEL = "llama-3.3-70b-versatile", "openai/gpt-oss-120b"
LOCAL_MODEL = "local/SmolLM2-135M-Instruct"


@contextmanager
def gateway(workdir: Path, fake_groq: FakeGroq, **env: str) -> Iterator[AppServer]:
    """A started server with an admin secret and the fake Groq; `env` adds or overrides settings.

    The local model runs on llama.cpp: clients do not care which runner answers, and that
    server starts without importing torch (seconds instead of tens of seconds).
    """
    settings = {"GROQ_API_KEY": FAKE_GROQ_KEY, "GROQ_BASE_URL": fake_groq.base_url,
                "GROQ_MODELS": SECOND_GROQ_MODEL, "ADMIN_SECRET": ADMIN, "LOCAL_MAX_TOKENS": "16",
                "AUTH_MAX_FAILURES": "1000", "LOCAL_RUNNER": "llamacpp", **env}
    server = AppServer(workdir, {k: v for k, v in settings.items() if v is not None})
    try:
        yield server.start()
    finally:
        server.stop()


def current_key(server: AppServer, secret: str = ADMIN) -> str:
    """The client key, read as an admin would."""
    response = httpx.get(f"{server.base_url}/current-key", headers={"admin-secret": secret}, timeout=10)
    response.raise_for_status()
    return response.json()["api_key"]


def rotate_key(server: AppServer) -> str:
    """Replace the client key now; returns the new one."""
    response = httpx.post(f"{server.base_url}/rotate-key", headers={"admin-secret": ADMIN}, timeout=10)
    response.raise_for_status()
    return response.json()["api_key"]
