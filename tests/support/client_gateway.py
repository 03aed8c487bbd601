"""A whole gateway for the client tests (aiapi, the chat page, README examples): the real app, fake Groq."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.support.fake_groq import FAKE_GROQ_KEY, FakeGroq
from tests.support.server import AppServer

ADMIN = "client-tests-admin-secret-0123"
NEXT_GROQ_MODEL = "openai/gpt-oss-120b"  # GROQ_MODELS: a second Groq model to choose


@contextmanager
def gateway(workdir: Path, fake_groq: FakeGroq, **env: str | None) -> Iterator[AppServer]:
    """A started server with an admin secret and the fake Groq; `env` sets settings (None drops one).

    The local model runs on llama.cpp: clients do not care which runner answers, and that
    server starts without importing torch (seconds instead of tens of seconds).
    """
    settings = {"GROQ_API_KEY": FAKE_GROQ_KEY, "GROQ_BASE_URL": fake_groq.base_url,
                "GROQ_MODELS": NEXT_GROQ_MODEL, "ADMIN_SECRET": ADMIN, "LOCAL_MAX_TOKENS": "16",
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


def served_models(server: AppServer, secret: str = ADMIN) -> list[tuple[str, str]]:
    """(id, provider) of each model `GET /v1/models` lists, in its order.

    Tests compare with this rather than with fixed names: which Groq models a server
    lists is the server's business (configured ones, or Groq's live list).
    """
    response = httpx.get(f"{server.base_url}/v1/models", timeout=10,
                         headers={"Authorization": f"Bearer {current_key(server, secret)}"})
    response.raise_for_status()
    return [(m["id"], m["owned_by"]) for m in response.json()["data"]]


def groq_models(server: AppServer, secret: str = ADMIN) -> list[str]:
    """The Groq models the server lists, first the one its default route tries first."""
    return [model for model, provider in served_models(server, secret) if provider != "local"]


def local_model(server: AppServer, secret: str = ADMIN) -> str:
    """The local model's id (`local/...`)."""
    (model,) = [model for model, provider in served_models(server, secret) if provider == "local"]
    return model
