"""Failover from Groq to the local model, with the real Groq adapter over loopback HTTP.

Most tests run the real app and container in-process, with the fake Groq server
on a loopback port, a fake local model (the point is failover, not generation),
a fake clock and a sleep that does not wait. The last ones run the real app
under uvicorn with the real local model and Groq unreachable.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.fake_groq import (
    ENTERPRISE_LLAMA,
    FAKE_GROQ_KEY,
    Answer,
    BrokenStream,
    Fail,
    FakeGroq,
    Stall,
    StreamError,
    groq_error,
)
from tests.support.gateway_rig import (
    ADMIN,
    LOCAL_MODEL,
    Rig,
    assert_openai_error,
    sse_events,
    streamed_text,
)
from tests.support.net import free_port
from tests.support.server import AppServer
# The default route against the 2026 list: llama-3.3-70b-versatile is gone, the next two are live.
FIRST, SECOND = "openai/gpt-oss-120b", "openai/gpt-oss-20b"
LLAMA = "llama-3.3-70b-versatile"
HTML_503 = "<html><head><title>503 Service Temporarily Unavailable</title></head><body>nginx</body></html>"


@pytest.fixture
def rig(fake_groq: FakeGroq, tmp_path: Path) -> Iterator[Rig]:
    with Rig(fake_groq.base_url, tmp_path) as r:
        yield r


def test_groq_answers_when_it_is_up(rig: Rig, fake_groq: FakeGroq) -> None:
    fake_groq.script(Answer("Groq here."))

    response = rig.chat()

    assert response.headers["x-provider"] == "groq"
    assert response.json()["choices"][0]["message"]["content"] == "Groq here."
    assert response.json()["model"] == FIRST


def test_groq_down_connection_refused_is_served_locally(tmp_path: Path) -> None:
    with Rig(f"http://127.0.0.1:{free_port()}/openai/v1", tmp_path) as rig:
        response = rig.chat()
        streamed, events = rig.stream()

    assert response.status_code == 200
    assert response.headers["x-provider"] == "local"
    assert response.json()["model"] == LOCAL_MODEL
    assert streamed.headers["x-provider"] == "local" and streamed_text(events) == "hi from local"
    assert len(rig.sleep.delays) == 2 + 2  # bounded retries, for each request


def test_500_is_retried_then_groq_answers(rig: Rig, fake_groq: FakeGroq) -> None:
    fake_groq.script(Fail(500, groq_error("internal", type_="internal_server_error")), Answer("second try"))

    response = rig.chat()

    assert response.headers["x-provider"] == "groq"
    assert response.json()["choices"][0]["message"]["content"] == "second try"
    assert len(fake_groq.requests) == 2
    assert len(rig.sleep.delays) == 1


def test_503_with_an_html_body_fails_over_after_the_retries(rig: Rig, fake_groq: FakeGroq) -> None:
    fake_groq.script(*[Fail(503, HTML_503)] * 3)

    response = rig.chat()
    answer = response.json()

    assert response.headers["x-provider"] == "local"
    assert answer["choices"][0]["message"]["content"] == "hi from local"
    assert len(fake_groq.requests) == 3


def test_503_with_fallback_off_and_a_named_groq_model_is_a_clean_503(
        fake_groq: FakeGroq, tmp_path: Path) -> None:
    fake_groq.script(*[Fail(503, HTML_503)] * 3)
    with Rig(fake_groq.base_url, tmp_path, fallback_to_local=False) as rig:
        response = rig.chat(model=FIRST)

    error = assert_openai_error(response, 503)
    assert error["code"] == "upstream_unavailable"
    assert "<html>" not in error["message"]
    assert rig.local.requests == []


def test_429_with_a_short_retry_after_is_waited_for(rig: Rig, fake_groq: FakeGroq) -> None:
    rate_limited = Fail(429, groq_error("Rate limit reached", code="rate_limit_exceeded", type_="requests"),
                        headers={"retry-after": "2"})
    fake_groq.script(rate_limited, Answer("after the wait"))

    response = rig.chat()

    assert response.headers["x-provider"] == "groq"
    assert rig.sleep.delays == [2.0]


def test_429_with_a_long_retry_after_fails_over_at_once(rig: Rig, fake_groq: FakeGroq) -> None:
    fake_groq.script(Fail(429, groq_error("Rate limit reached", code="rate_limit_exceeded", type_="tokens"),
                          headers={"retry-after": "120"}))

    response = rig.chat()

    assert response.headers["x-provider"] == "local"
    assert rig.sleep.delays == []
    assert len(fake_groq.requests) == 1


def test_a_stalled_response_times_out_and_fails_over_without_retry(rig: Rig, fake_groq: FakeGroq) -> None:
    fake_groq.script(Stall(3))  # longer than GROQ_TIMEOUT_SECONDS=1

    response = rig.chat()

    assert response.status_code == 200
    assert response.headers["x-provider"] == "local"
    assert len(fake_groq.requests) == 1


def test_a_stalled_stream_fails_over_before_its_first_byte(rig: Rig, fake_groq: FakeGroq) -> None:
    fake_groq.script(Stall(3))

    response, events = rig.stream()

    assert response.headers["x-provider"] == "local"
    assert streamed_text(events) == "hi from local"


def test_a_stream_that_breaks_midway_ends_with_an_error_event(rig: Rig, fake_groq: FakeGroq) -> None:
    fake_groq.script(BrokenStream(chunks=2))  # "Hello from fake Groq!" cut after two words

    response, events = rig.stream()

    assert response.status_code == 200
    assert response.headers["x-provider"] == "groq"
    assert streamed_text(events) == "Hello from "
    assert events[-1]["error"]["type"] == "api_error"
    assert rig.local.requests == []  # no failover once bytes went out


def test_a_mid_stream_error_event_ends_the_stream_cleanly(rig: Rig, fake_groq: FakeGroq) -> None:
    fake_groq.script(StreamError(chunks=1))

    response, events = rig.stream(stream_options={"include_usage": True})

    assert response.status_code == 200
    assert streamed_text(events) == "Hello "
    assert "error" in events[-1]


def test_a_stream_that_breaks_before_its_first_token_is_retried(rig: Rig, fake_groq: FakeGroq) -> None:
    fake_groq.script(BrokenStream(chunks=0), Answer("retried fine"))

    response, events = rig.stream()

    assert response.headers["x-provider"] == "groq"
    assert streamed_text(events) == "retried fine"


def test_a_listed_model_that_answers_404_is_retired_and_the_next_one_answers(
        fake_groq: FakeGroq, tmp_path: Path) -> None:
    fake_groq.serve(ENTERPRISE_LLAMA)  # listed at start...
    with Rig(fake_groq.base_url, tmp_path) as rig:
        fake_groq.retire(LLAMA)  # ...then gone: a 404 `model_not_found`
        response = rig.chat()
        streamed, events = rig.stream()
        later = rig.chat()

    assert response.headers["x-provider"] == "groq"
    assert response.json()["model"] == later.json()["model"] == FIRST
    assert {e["model"] for e in events} == {FIRST}
    assert fake_groq.chat_models() == [LLAMA, FIRST, FIRST, FIRST]  # the retired model is asked once
    assert fake_groq.model_list_calls == 2  # at start, and again when Groq said a model was gone


def test_every_groq_model_retired_is_served_locally(fake_groq: FakeGroq, tmp_path: Path) -> None:
    for model in (FIRST, SECOND):
        fake_groq.retire(model)
    with Rig(fake_groq.base_url, tmp_path) as rig:
        response = rig.chat()

    assert response.headers["x-provider"] == "local"
    assert fake_groq.requests == []  # nothing left to ask: no round trip


def test_groq_client_errors_pass_through_and_never_fall_back(rig: Rig, fake_groq: FakeGroq) -> None:
    fake_groq.script(Fail(400, groq_error(f"`logprobs` is not supported (key {FAKE_GROQ_KEY})",
                                          param="logprobs")))

    response = rig.chat()

    error = assert_openai_error(response, 400)
    assert error["param"] == "logprobs"
    assert FAKE_GROQ_KEY not in response.text
    assert rig.local.requests == []


def test_the_circuit_opens_after_the_threshold_and_closes_after_a_good_probe(
        fake_groq: FakeGroq, tmp_path: Path) -> None:
    fake_groq.script(*[Fail(500)] * 2)
    with Rig(fake_groq.base_url, tmp_path, groq_max_retries=0, circuit_failure_threshold=2,
             circuit_cooldown_seconds=30) as rig:
        first, second = rig.chat(), rig.chat()
        calls_when_open = len(fake_groq.requests)
        while_open = rig.chat()
        streamed_while_open, _ = rig.stream()
        calls_after_open = len(fake_groq.requests)
        rig.clock.advance(seconds=30)
        probe = rig.chat()
        after = rig.chat()

    answered_by = [r.headers["x-provider"] for r in (first, second, while_open, streamed_while_open)]
    assert answered_by == ["local"] * 4
    assert calls_after_open == calls_when_open == 2  # open: Groq is not called at all
    assert probe.headers["x-provider"] == "groq"
    assert after.headers["x-provider"] == "groq"


def test_a_failed_probe_reopens_the_circuit(fake_groq: FakeGroq, tmp_path: Path) -> None:
    fake_groq.script(Fail(502), Fail(503, HTML_503))
    with Rig(fake_groq.base_url, tmp_path, groq_max_retries=0, circuit_failure_threshold=1,
             circuit_cooldown_seconds=10) as rig:
        rig.chat()
        rig.clock.advance(seconds=10)
        probe = rig.chat()
        rig.clock.advance(seconds=5)
        still_open = rig.chat()

    assert probe.headers["x-provider"] == "local"
    assert still_open.headers["x-provider"] == "local"
    assert len(fake_groq.requests) == 2  # the first failure and the probe


def test_open_circuit_with_fallback_off_is_503_with_retry_after(fake_groq: FakeGroq, tmp_path: Path) -> None:
    fake_groq.script(Fail(500))
    with Rig(fake_groq.base_url, tmp_path, groq_max_retries=0, circuit_failure_threshold=1,
             circuit_cooldown_seconds=30, fallback_to_local=False) as rig:
        rig.chat(model=FIRST)
        rig.clock.advance(seconds=12)
        response = rig.chat(model=FIRST)

    assert_openai_error(response, 503)
    assert response.headers["retry-after"] == "18"
    assert len(fake_groq.requests) == 1


# --- the real app under uvicorn, real local model, Groq unreachable -----------------------------

@pytest.mark.model
def test_real_app_serves_locally_when_groq_is_unreachable(tmp_path: Path) -> None:
    env = {"GROQ_API_KEY": FAKE_GROQ_KEY, "GROQ_BASE_URL": f"http://127.0.0.1:{free_port()}/openai/v1",
           "ADMIN_SECRET": ADMIN, "LOCAL_MAX_TOKENS": "8", "GROQ_RETRY_BASE_SECONDS": "0.05",
           "CIRCUIT_FAILURE_THRESHOLD": "1", "CIRCUIT_COOLDOWN_SECONDS": "600"}
    server = AppServer(tmp_path, env)
    try:
        server.start()
        key = httpx.get(f"{server.base_url}/current-key", headers={"admin-secret": ADMIN}, timeout=10).json()[
            "api_key"]
        headers = {"authorization": f"Bearer {key}"}
        body = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "Say hi."}]}
        response = httpx.post(f"{server.base_url}/v1/chat/completions", json=body, headers=headers,
                              timeout=240)
        with httpx.stream("POST", f"{server.base_url}/chat/completions", json={**body, "stream": True},
                          headers=headers, timeout=120) as streamed:
            events = sse_events(streamed.iter_lines())
        log = server.log()
    finally:
        server.stop()

    assert response.status_code == 200, response.text
    assert response.headers["x-provider"] == "local"
    assert response.json()["model"] == LOCAL_MODEL
    assert response.json()["choices"][0]["message"]["content"].strip()
    assert streamed.headers["x-provider"] == "local"
    assert streamed_text(events).strip()
    assert "circuit open" in log  # the second request skipped Groq
    assert FAKE_GROQ_KEY not in log and key not in log
