"""The generation lane: valid bodies answered before the router, everything else by the full stack, alike."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.domain.errors import UpstreamUnavailable
from app.entrypoints.http import lane
from app.entrypoints.http.auth import require_client_key
from tests.unit.http_app import Fakes, chat_body


@pytest.fixture
def laned(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the lane answered."""
    answered: list[str] = []
    run = lane._run

    async def spy(scope, receive, send):  # type: ignore[no-untyped-def]
        answered.append(scope["path"])
        await run(scope, receive, send)

    monkeypatch.setattr(lane, "_run", spy)
    return answered


def test_a_valid_body_takes_the_lane_and_answers_as_the_router_would(client: TestClient, laned: list[str],
                                                                     fakes: Fakes) -> None:
    answer = client.post("/v1/chat/completions", json=chat_body())
    seed = client.post("/chat", json={"prompt": "hi"})
    assert laned == ["/v1/chat/completions", "/chat"]
    assert answer.status_code == 200 and answer.headers["x-provider"] == "groq"
    assert answer.json()["choices"][0]["message"]["content"] == "hi from groq"
    assert seed.status_code == 200 and seed.headers["x-request-id"]

    fakes.groq.error = UpstreamUnavailable("down", kind="server_error")
    fakes.local.error = UpstreamUnavailable("down too", kind="server_error")
    failed = client.post("/v1/chat/completions", json=chat_body())
    assert len(laned) == 3
    assert failed.status_code == 503 and failed.json()["error"]["type"] == "api_error"  # errors.py's envelope


def test_a_body_the_lane_does_not_take_reaches_fastapi_as_sent(client: TestClient, laned: list[str]) -> None:
    wrong_shape = client.post("/v1/chat/completions", json={"messages": "not a list"})
    not_json = client.post("/v1/chat/completions", content=b"{nope",
                           headers={"content-type": "application/json"})
    form = client.post("/v1/chat/completions", data={"messages": "x"})
    assert laned == []
    assert wrong_shape.status_code == 400
    assert wrong_shape.json()["error"]["message"] == "Invalid value for 'messages': Input should be a valid list."
    assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]["message"]
    assert form.status_code == 400 and form.json()["error"]["message"] == "Content-Type must be application/json."


def test_dependency_overrides_send_every_request_through_the_router(client: TestClient, laned: list[str],
                                                                    tmp_path: Path) -> None:
    async def no_key() -> None:
        return None

    client.app.dependency_overrides[require_client_key] = no_key  # type: ignore[attr-defined]
    answer = client.post("/v1/chat/completions", json=chat_body())
    assert answer.status_code == 200 and laned == []
