"""Live models: the gateway reads Groq's model list and routes to what Groq serves today.

The real app and adapter (in-process, and once under uvicorn with default
settings) against the fake Groq serving the late-2026 list, where the seed's
Llama 3 70B models are retired.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.fake_groq import ENTERPRISE_LLAMA, FAKE_GROQ_KEY, Fail, FakeGroq, Stall
from tests.support.gateway_rig import ADMIN, LOCAL_MODEL, LogCapture, Rig
from tests.support.server import AppServer

LLAMA, OSS_120B, OSS_20B, QWEN = "llama-3.3-70b-versatile", "openai/gpt-oss-120b", "openai/gpt-oss-20b", \
    "qwen/qwen3.8-27b"


def test_default_settings_are_answered_by_groq_with_one_call_per_request(fake_groq: FakeGroq,
                                                                       tmp_path: Path) -> None:
    env = {"GROQ_API_KEY": FAKE_GROQ_KEY, "GROQ_BASE_URL": fake_groq.base_url, "ADMIN_SECRET": ADMIN}
    server = AppServer(tmp_path, env)
    try:
        server.start(timeout=180)  # generous: a loaded 2-core machine imports torch slowly
        key = httpx.get(f"{server.base_url}/current-key", headers={"admin-secret": ADMIN}, timeout=60).json()[
            "api_key"]
        answers = [httpx.post(f"{server.base_url}/chat", json={"prompt": "hello"}, headers={"x-api-key": key},
                              timeout=60) for _ in range(3)]
        log = server.log()
    finally:
        server.stop()

    assert [a.headers["x-provider"] for a in answers] == ["groq"] * 3
    assert [a.json()["model"] for a in answers] == [OSS_120B] * 3
    assert fake_groq.chat_models() == [OSS_120B] * 3  # no round trip for the retired default
    assert log.count("Groq default route:") == 1
    assert (f"Groq default route: {OSS_120B} (the first model of GROQ_MODELS that Groq serves to this "
            f"account; not served: {LLAMA})") in log
    assert FAKE_GROQ_KEY not in log


def test_while_the_list_is_late_the_preference_list_is_tried_and_a_retired_model_remembered(
        fake_groq: FakeGroq, tmp_path: Path) -> None:
    fake_groq.script_models(Stall(8))  # Groq's /models hangs: start-up must not wait for it
    started = time.monotonic()
    with LogCapture() as logs, Rig(fake_groq.base_url, tmp_path, groq_timeout_seconds=10) as rig:
        start_seconds = time.monotonic() - started
        listed = [m["id"] for m in rig.client.get("/v1/models").json()["data"]]
        first, second, third = rig.chat(), rig.chat(), rig.stream()[0]

    assert start_seconds < 8  # it did not wait for the list
    assert listed == [LLAMA, OSS_120B, OSS_20B, LOCAL_MODEL]  # until the list comes: GROQ_MODELS
    assert [r.headers["x-provider"] for r in (first, second, third)] == ["groq"] * 3
    assert fake_groq.chat_models() == [LLAMA, OSS_120B, OSS_120B, OSS_120B]  # one call per request after the first
    assert any(f"Groq default route: {LLAMA}, the first of GROQ_MODELS not known to be retired (the model "
               "list did not arrive within 3 s" in line for line in logs.lines)


def test_a_failed_list_at_start_is_said_and_retried_later(fake_groq: FakeGroq, tmp_path: Path) -> None:
    fake_groq.script_models(Fail(500, {"error": {"message": "internal"}}))
    with LogCapture() as logs, Rig(fake_groq.base_url, tmp_path) as rig:
        rig.chat()
        rig.clock.advance(seconds=60)
        rig.chat()  # the list is due again: read in the background
        deadline = time.monotonic() + 5
        while fake_groq.model_list_calls < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        listed = [m["id"] for m in rig.client.get("/v1/models").json()["data"]]

    assert any("the model list could not be read (Groq is unavailable: internal)" in line for line in logs.lines)
    assert listed == [OSS_120B, OSS_20B, QWEN, LOCAL_MODEL]


@pytest.mark.parametrize("alias", ["llama3-70b-8192", "llama-3.1-70b-versatile", LLAMA])
def test_the_seeds_names_are_aliases_of_the_preferred_live_model(rig: Rig, fake_groq: FakeGroq,
                                                                 alias: str) -> None:
    response = rig.chat(model=alias)

    assert response.headers["x-provider"] == "groq"
    assert response.json()["model"] == OSS_120B  # the model that answered, not the name asked for
    assert fake_groq.chat_models() == [OSS_120B]


@pytest.mark.parametrize("asked, answered", [(QWEN, QWEN), (OSS_20B, OSS_20B), ("gpt-4o", OSS_120B),
                                             ("whisper-large-v3", OSS_120B), (None, OSS_120B)])
def test_a_served_model_is_used_and_anything_else_goes_to_the_default_route(
        rig: Rig, fake_groq: FakeGroq, asked: str | None, answered: str) -> None:
    response = rig.client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "hi"}], **({"model": asked} if asked else {})})

    assert response.json()["model"] == answered
    assert fake_groq.chat_models() == [answered]


def test_models_lists_the_live_groq_chat_models_with_their_context_and_the_local_one(rig: Rig) -> None:
    data = rig.client.get("/v1/models").json()["data"]

    assert [(m["id"], m["owned_by"], m.get("context_window")) for m in data] == [
        (OSS_120B, "groq", 131072), (OSS_20B, "groq", 131072), (QWEN, "groq", 131042),
        (LOCAL_MODEL, "local", None)]
    assert rig.client.get(f"/v1/models/{QWEN}").json()["context_window"] == 131042


def test_an_account_that_still_has_llama_gets_it(fake_groq: FakeGroq, tmp_path: Path) -> None:
    fake_groq.serve(ENTERPRISE_LLAMA)
    with Rig(fake_groq.base_url, tmp_path) as rig:
        response = rig.chat(model="llama3-70b-8192")

    assert response.json()["model"] == LLAMA
    assert fake_groq.chat_models() == [LLAMA]


def test_groq_model_goes_first(fake_groq: FakeGroq, tmp_path: Path) -> None:
    with Rig(fake_groq.base_url, tmp_path, groq_model=OSS_20B) as rig:
        response = rig.chat()

    assert response.json()["model"] == OSS_20B


def test_the_list_is_read_again_when_it_is_older_than_the_refresh_interval(fake_groq: FakeGroq,
                                                                           tmp_path: Path) -> None:
    with Rig(fake_groq.base_url, tmp_path, groq_models_refresh_seconds=600) as rig:
        fake_groq.serve({"id": "openai/gpt-oss-safeguard-20b", "owned_by": "OpenAI", "context_window": 131072})
        rig.clock.advance(seconds=599)
        rig.chat()
        calls_before = fake_groq.model_list_calls
        rig.clock.advance(seconds=1)
        rig.chat()
        deadline = time.monotonic() + 5
        while fake_groq.model_list_calls < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        listed = [m["id"] for m in rig.client.get("/v1/models").json()["data"]]

    assert calls_before == 1
    assert fake_groq.model_list_calls == 2
    assert "openai/gpt-oss-safeguard-20b" in listed


def test_when_groq_serves_none_of_the_list_the_local_model_answers_and_the_log_says_why(
        fake_groq: FakeGroq, tmp_path: Path) -> None:
    with LogCapture() as logs, Rig(fake_groq.base_url, tmp_path, groq_models=f"{LLAMA},llama-3.1-8b-instant") as rig:
        response = rig.chat()

    assert response.headers["x-provider"] == "local"
    assert fake_groq.requests == []
    assert any("Groq serves none of GROQ_MODELS" in line and OSS_120B in line for line in logs.lines)


@pytest.fixture
def rig(fake_groq: FakeGroq, tmp_path: Path):  # type: ignore[no-untyped-def]
    with Rig(fake_groq.base_url, tmp_path) as r:
        yield r
