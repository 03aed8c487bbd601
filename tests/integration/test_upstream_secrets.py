"""No secret out: an upstream that echoes the server's key in every field and header of its errors.

The real app and Groq adapter in-process against the fake Groq; every log
record of every logger is captured. The key must appear in no response (body
or headers) and in no log line, whatever the status and however the error
arrives (an HTTP error, or mid-stream as an error event).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.fake_groq import FAKE_GROQ_KEY, EchoKey, FakeGroq
from tests.support.gateway_rig import LogCapture, Rig

NAMED_GROQ_MODEL = "openai/gpt-oss-120b"
SECRETS = (FAKE_GROQ_KEY, FAKE_GROQ_KEY[4:20], f"Bearer {FAKE_GROQ_KEY}")


def leaks(response: httpx.Response) -> list[str]:
    """The secrets found in a response's body or headers."""
    seen = response.text + "".join(f"{k}: {v}\n" for k, v in response.headers.items())
    return [s for s in SECRETS if s in seen]


@pytest.mark.parametrize("status", [400, 413, 422, 404, 429, 500])
@pytest.mark.parametrize("fallback", [False, True])
def test_an_echoed_key_reaches_no_response_and_no_log(fake_groq: FakeGroq, tmp_path: Path, status: int,
                                                      fallback: bool) -> None:
    fake_groq.script(*[EchoKey(status)] * 8)  # enough for the retries of both requests
    with LogCapture() as logs, Rig(fake_groq.base_url, tmp_path, groq_model=NAMED_GROQ_MODEL,
                                   fallback_to_local=fallback) as rig:
        answered = rig.chat(model=NAMED_GROQ_MODEL)
        streamed, _ = rig.stream(model=NAMED_GROQ_MODEL)

    assert fake_groq.requests, "the fake Groq was not asked"
    for response in (answered, streamed):
        assert response.status_code < 500 or response.status_code == 503, response.text
        assert leaks(response) == []
    if status in (400, 413, 422):  # Groq's client errors are passed on: what is left of them
        error = answered.json()["error"]
        assert answered.status_code == status
        assert error["message"].startswith("Rejected [redacted]")
        assert error["param"] is None and error["code"] is None
    assert [line for line in logs.lines if any(s in line for s in SECRETS)] == []


@pytest.mark.parametrize("form", ["event", "data"])
def test_an_echoed_key_in_a_stream_error_reaches_no_event_and_no_log(fake_groq: FakeGroq, tmp_path: Path,
                                                                     form: str) -> None:
    fake_groq.script(EchoKey(in_stream=form))
    with LogCapture() as logs, Rig(fake_groq.base_url, tmp_path, groq_model=NAMED_GROQ_MODEL) as rig:
        response, events = rig.stream(model=NAMED_GROQ_MODEL)

    assert response.status_code == 200
    assert "error" in events[-1]
    assert "stopped the stream early" in events[-1]["error"]["message"]
    assert leaks(response) == []
    assert [line for line in logs.lines if any(s in line for s in SECRETS)] == []
