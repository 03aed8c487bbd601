"""The HTTP API with fakes behind the real container: envelopes, auth, shapes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.domain.errors import UpstreamAuthFailed
from tests.unit.http_app import ADMIN, Fakes, current_key, make_client


@pytest.fixture
def client(fakes: Fakes, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(fakes, tmp_path) as c:
        yield c


def test_current_key_returns_the_stored_key_and_its_expiry(client: TestClient, fakes: Fakes) -> None:
    body = client.get("/current-key", headers={"admin-secret": ADMIN}).json()

    assert fakes.store.load() is not None
    assert body["api_key"] == fakes.store.load().current.value
    assert body["api_key"].startswith("sk-")
    assert body["expiry"] == fakes.store.load().current.expires_at.isoformat()


def test_current_key_with_a_wrong_secret_is_401(client: TestClient) -> None:
    response = client.get("/current-key", headers={"admin-secret": "nope"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_admin_secret"


def test_current_key_is_closed_without_an_admin_secret(fakes: Fakes, tmp_path: Path) -> None:
    with make_client(fakes, tmp_path, admin_secret=None) as client:
        response = client.get("/current-key", headers={"admin-secret": ""})

    assert response.status_code == 403
    assert "ADMIN_SECRET" in response.json()["error"]["message"]


def test_chat_answers_with_a_chat_completion(client: TestClient) -> None:
    response = client.post("/chat", json={"prompt": "hello"}, headers={"x-api-key": current_key(client)})

    body = response.json()
    assert response.status_code == 200
    assert response.headers["x-provider"] == "groq"
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hi from groq"}
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


def test_bearer_token_is_accepted_too(client: TestClient) -> None:
    response = client.post("/local-chat", json={"prompt": "hello"},
                           headers={"authorization": f"Bearer {current_key(client)}"})

    assert response.status_code == 200
    assert response.json()["model"] == "local/SmolLM2-135M-Instruct"


def test_api_key_header_is_accepted_too(client: TestClient) -> None:
    response = client.post("/chat", json={"prompt": "hello"}, headers={"api-key": current_key(client)})

    assert response.status_code == 200


def test_chat_without_groq_key_says_the_local_model_answered(fakes: Fakes, tmp_path: Path) -> None:
    with make_client(fakes, tmp_path, groq_api_key=None) as client:
        response = client.post("/chat", json={"prompt": "hello"}, headers={"x-api-key": current_key(client)})

    assert response.json()["model"] == "local/SmolLM2-135M-Instruct"
    assert response.headers["x-provider"] == "local"
    assert fakes.groq.requests == []


def test_wrong_key_is_401_without_echoing_it(client: TestClient) -> None:
    key = current_key(client)
    wrong = key[:-8] + ("A" if key[-8] != "A" else "B") + key[-7:]

    response = client.post("/chat", json={"prompt": "hello"}, headers={"x-api-key": wrong})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert wrong not in response.text


def test_expired_key_is_401_and_replaced(client: TestClient, fakes: Fakes) -> None:
    key = current_key(client)
    fakes.clock.advance(days=7)

    response = client.post("/chat", json={"prompt": "hello"}, headers={"x-api-key": key})

    assert response.status_code == 401
    assert current_key(client) != key


@pytest.mark.parametrize(("kwargs", "param"), [
    ({"json": {}}, "prompt"),
    ({"json": {"prompt": ""}}, "prompt"),
    ({"json": {"prompt": "   "}}, "prompt"),
    ({"json": {"prompt": 42}}, "prompt"),
    ({"json": {"prompt": ["a"]}}, "prompt"),
    ({"content": b"{not json", "headers": {"content-type": "application/json"}}, None),
    ({"content": b"prompt=hi", "headers": {"content-type": "application/x-www-form-urlencoded"}}, None),
])
def test_bad_input_is_400_in_the_openai_envelope(client: TestClient, kwargs: dict, param: str | None) -> None:
    headers = {"x-api-key": current_key(client), **kwargs.pop("headers", {})}

    response = client.post("/chat", headers=headers, **kwargs)

    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert "Traceback" not in response.text


def test_unknown_fields_are_ignored(client: TestClient) -> None:
    response = client.post("/chat", json={"prompt": "hello", "temperature_x": 3},
                           headers={"x-api-key": current_key(client)})

    assert response.status_code == 200


def test_upstream_credential_failure_is_502_not_401(client: TestClient, fakes: Fakes) -> None:
    fakes.groq.error = UpstreamAuthFailed("The upstream provider rejected the server's credentials.")

    response = client.post("/chat", json={"prompt": "hello"}, headers={"x-api-key": current_key(client)})

    assert response.status_code == 502
    assert "credentials" in response.json()["error"]["message"]


def test_chat_streams_when_asked(client: TestClient) -> None:
    with client.stream("POST", "/chat", json={"prompt": "hello", "stream": True},
                       headers={"x-api-key": current_key(client)}) as response:
        lines = [line for line in response.iter_lines() if line]

    assert response.headers["content-type"].startswith("text/event-stream")
    assert lines[-1] == "data: [DONE]"
    assert '"content":"hi"' in lines[1]


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
