"""A broken or hostile Groq through the whole app: deadlines, malformed answers, odd headers.

Each case ends in a well-formed answer: the local model's (failover), Groq's
own client error, or a clean 503; never a 500 and never a hang.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.fake_groq import Answer, Drip, Fail, FakeGroq, Raw, RawStream, Stall, groq_error
from tests.support.gateway_rig import Rig, assert_openai_error, streamed_text

GROQ_MODEL = "openai/gpt-oss-120b"


@pytest.mark.parametrize("stream", [False, True])
def test_a_drip_fed_answer_is_cut_off_at_the_deadline_and_fails_over(fake_groq: FakeGroq, tmp_path: Path,
                                                                     stream: bool) -> None:
    fake_groq.script(Drip(interval=2.0))  # one byte every 2 s
    started = time.monotonic()
    with Rig(fake_groq.base_url, tmp_path, groq_timeout_seconds=2.0, groq_first_chunk_timeout_seconds=2.0,
             groq_stream_idle_timeout_seconds=2.0) as rig:
        if stream:
            response, events = rig.stream()
            assert streamed_text(events) == "hi from local"
        else:
            response = rig.chat()
            assert response.json()["choices"][0]["message"]["content"] == "hi from local"

    assert response.headers["x-provider"] == "local"
    assert len(fake_groq.requests) == 1  # a timeout is not retried
    assert time.monotonic() - started < 30


def test_the_request_deadline_bounds_all_attempts_together(fake_groq: FakeGroq, tmp_path: Path) -> None:
    # Each attempt takes 0.6 s and ends in a 500 (worth a retry); the deadline of 1 s ends the second
    # (or the first, on a machine slow enough to take a second for it).
    fake_groq.script(*[Stall(0.6, then=Fail(500))] * 3)
    with Rig(fake_groq.base_url, tmp_path, groq_timeout_seconds=5.0, groq_request_deadline_seconds=1.0,
             groq_max_retries=2) as rig:
        response = rig.chat()

    assert response.headers["x-provider"] == "local"
    assert 1 <= len(fake_groq.requests) < 3  # without the deadline all three attempts would run (1.8 s)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("shape", ['{"choices": ["x"]}', "123", '{"choices": [{"message": null}]}',
                                   '{"choices": [{"delta": {"content": {"a": 1}}}]}'])
def test_malformed_answers_fail_over_and_never_500(fake_groq: FakeGroq, tmp_path: Path, shape: str,
                                                  stream: bool) -> None:
    fake_groq.script(*[RawStream([f"data: {shape}"]) if stream else Raw(shape)] * 3)
    with Rig(fake_groq.base_url, tmp_path) as rig:
        response, events = rig.stream() if stream else (rig.chat(), [])

    assert response.status_code == 200, response.text
    assert response.headers["x-provider"] == "local"


def test_an_error_code_that_is_a_list_is_dropped_not_a_500(fake_groq: FakeGroq, tmp_path: Path) -> None:
    fake_groq.script(Fail(400, {"error": {"message": "bad thing", "type": ["x"], "code": ["a", "b"],
                                          "param": 7}}))
    with Rig(fake_groq.base_url, tmp_path) as rig:
        response = rig.chat()

    error = assert_openai_error(response, 400)
    assert (error["message"], error["code"], error["param"]) == ("bad thing", None, None)


@pytest.mark.parametrize("stream", [False, True])
def test_a_lone_surrogate_in_an_answer_reaches_the_client_as_a_replacement_character(
        fake_groq: FakeGroq, tmp_path: Path, stream: bool) -> None:
    fake_groq.script(Answer("caf\ud800 ok", reasoning=""))
    with Rig(fake_groq.base_url, tmp_path) as rig:
        response, events = rig.stream() if stream else (rig.chat(), [])

    assert response.status_code == 200, response.text
    text = streamed_text(events) if stream else response.json()["choices"][0]["message"]["content"]
    assert text == "caf\ufffd ok"


@pytest.mark.parametrize("header, retry_after", [("inf", "3600"), ("1e308", "3600"), ("nan", None), ("-3", None)])
def test_an_odd_retry_after_gives_a_clean_503(fake_groq: FakeGroq, tmp_path: Path, header: str,
                                             retry_after: str | None) -> None:
    fake_groq.script(*[Fail(503, groq_error("over capacity"), headers={"retry-after": header})] * 3)
    with Rig(fake_groq.base_url, tmp_path, fallback_to_local=False) as rig:
        response = rig.chat(model=GROQ_MODEL)

    assert_openai_error(response, 503)
    assert response.headers.get("retry-after") == retry_after
