"""The seed's flow against the real app under uvicorn: fake Groq, real local model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.fake_groq import FAKE_GROQ_KEY, Answer, FakeGroq
from tests.support.server import AppServer

pytestmark = pytest.mark.model
ADMIN = "e2e-admin-secret-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_groq_server: FakeGroq) -> Iterator[AppServer]:
    workdir = tmp_path_factory.mktemp("e2e")
    env = {"GROQ_API_KEY": FAKE_GROQ_KEY, "GROQ_BASE_URL": fake_groq_server.base_url, "ADMIN_SECRET": ADMIN,
           "LOCAL_MAX_TOKENS": "24"}
    with AppServer(workdir, env) as app:
        yield app


def admin_key(server: AppServer) -> str:
    response = httpx.get(f"{server.base_url}/current-key", headers={"admin-secret": ADMIN}, timeout=10)
    assert response.status_code == 200
    return response.json()["api_key"]


def test_seed_flow(server: AppServer, fake_groq: FakeGroq) -> None:
    key = admin_key(server)
    fake_groq.script(Answer("Groq says hi."))

    chat = httpx.post(f"{server.base_url}/chat", json={"prompt": "hello"}, headers={"x-api-key": key}, timeout=30)
    local = httpx.post(f"{server.base_url}/local-chat", json={"prompt": "Name a colour."},
                       headers={"x-api-key": key}, timeout=240)

    assert chat.status_code == 200
    assert chat.json()["choices"][0]["message"]["content"] == "Groq says hi."
    assert chat.headers["x-provider"] == "groq"
    assert local.status_code == 200, local.text
    assert local.json()["choices"][0]["message"]["content"].strip()
    assert local.json()["model"] == "local/SmolLM2-135M-Instruct"
    assert local.json()["usage"]["completion_tokens"] > 0


def test_wrong_key_is_401(server: AppServer) -> None:
    response = httpx.post(f"{server.base_url}/chat", json={"prompt": "hello"},
                          headers={"x-api-key": "sk-" + "x" * 38}, timeout=10)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_expired_key_is_401_once_the_file_says_so(server: AppServer) -> None:
    key = admin_key(server)
    key_file = server.workdir / "current_key.json"
    data = json.loads(key_file.read_text())
    data["expires_at"] = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    key_file.write_text(json.dumps(data))

    response = httpx.post(f"{server.base_url}/chat", json={"prompt": "hello"}, headers={"x-api-key": key},
                          timeout=10)

    assert response.status_code == 401
    assert admin_key(server) != key


def test_key_file_is_private(server: AppServer) -> None:
    admin_key(server)

    assert (Path(server.workdir) / "current_key.json").stat().st_mode & 0o077 == 0


def test_no_secret_reaches_the_log(server: AppServer) -> None:
    key = admin_key(server)
    httpx.post(f"{server.base_url}/chat", json={"prompt": "hello"}, headers={"x-api-key": key}, timeout=30)

    log = server.log()
    assert "client key valid until" in log  # the app's own log lines are captured
    assert FAKE_GROQ_KEY not in log
    assert ADMIN not in log
    assert key not in log
