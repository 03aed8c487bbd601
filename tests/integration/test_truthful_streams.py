"""Groq's streams reach the client as they are: a stream Groq stopped early ends with an error event, never a
normal finish; usage, tool calls and reasoning pass through. The real app and adapter against the fake Groq."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.fake_groq import Answer, EndsEarly, FakeGroq, StreamError
from tests.support.gateway_rig import Rig, streamed_text

GROQ_MODEL = "openai/gpt-oss-120b"
TOOL_CALLS = [{"id": "call_a", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "sea"}'}},
              {"id": "call_b", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "sky"}'}}]


@pytest.fixture
def rig(fake_groq: FakeGroq, tmp_path: Path) -> Iterator[Rig]:
    with Rig(fake_groq.base_url, tmp_path) as r:
        yield r


def finishes(events: list[dict[str, Any]]) -> list[str]:
    return [c["finish_reason"] for e in events for c in e.get("choices", []) if c.get("finish_reason")]


@pytest.mark.parametrize("failure, says", [
    (StreamError(chunks=2, form="x_groq"), "Groq stopped the stream early: internal error mid-stream"),
    (StreamError(chunks=2, form="event"), "Groq stopped the stream early: internal error mid-stream"),
    (StreamError(chunks=2, form="data"), "Groq stopped the stream early: internal error mid-stream"),
    (EndsEarly(chunks=2, missing="done"), "Groq's stream ended before [DONE]"),
    (EndsEarly(chunks=2, missing="finish"), "Groq's stream ended without a finish_reason"),
])
def test_a_stream_groq_stopped_early_ends_with_an_error_event(rig: Rig, fake_groq: FakeGroq, failure: object,
                                                             says: str) -> None:
    fake_groq.script(failure)

    response, events = rig.stream(stream_options={"include_usage": True})

    assert response.status_code == 200 and response.headers["x-provider"] == "groq"
    assert streamed_text(events) == "Hello from "
    assert events[-1]["error"]["message"].startswith(says)
    assert events[-1]["error"]["type"] == "api_error"
    assert finishes(events) == []  # nothing looks like a complete answer
    assert rig.local.requests == []


def test_usage_from_groqs_last_chunk_is_forwarded(rig: Rig, fake_groq: FakeGroq) -> None:
    fake_groq.script(Answer("one two three", reasoning=""))

    _, events = rig.stream(stream_options={"include_usage": True})

    assert events[-1]["choices"] == []
    assert events[-1]["usage"] == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    assert finishes(events) == ["stop"]


def test_streamed_tool_calls_pass_through_with_their_indexes(rig: Rig, fake_groq: FakeGroq) -> None:
    fake_groq.script(Answer(tool_calls=TOOL_CALLS, finish_reason="tool_calls", reasoning=""))

    _, events = rig.stream(tools=[{"type": "function", "function": {"name": "lookup", "parameters": {}}}])

    pieces = [p for e in events for c in e["choices"] for p in c["delta"].get("tool_calls", [])]
    assert [p["index"] for p in pieces] == [0, 0, 0, 1, 1, 1]
    assert [p.get("id") for p in pieces if "id" in p] == ["call_a", "call_b"]
    assert "".join(p["function"]["arguments"] for p in pieces if p["index"] == 0) == '{"q": "sea"}'
    assert finishes(events) == ["tool_calls"]
    assert fake_groq.requests[0]["tools"][0]["function"]["name"] == "lookup"


def test_reasoning_reaches_the_client_in_its_own_field(rig: Rig, fake_groq: FakeGroq) -> None:
    fake_groq.script(Answer("Paris.", reasoning="France's capital is Paris."),
                     Answer("Paris.", reasoning="France's capital is Paris."))

    answered = rig.chat(model=GROQ_MODEL)
    _, events = rig.stream(model=GROQ_MODEL)

    message = answered.json()["choices"][0]["message"]
    assert (message["content"], message["reasoning"]) == ("Paris.", "France's capital is Paris.")
    deltas = [c["delta"] for e in events for c in e["choices"]]
    assert "".join(d.get("reasoning", "") for d in deltas) == "France's capital is Paris. "
    assert streamed_text(events) == "Paris."


def test_reasoning_options_are_forwarded(rig: Rig, fake_groq: FakeGroq) -> None:
    response = rig.chat(model=GROQ_MODEL, reasoning_effort="high", reasoning_format="hidden",
                        include_reasoning=False)

    sent = fake_groq.requests[0]
    assert (sent["reasoning_effort"], sent["reasoning_format"], sent["include_reasoning"]) == ("high", "hidden", False)
    assert "reasoning" not in response.json()["choices"][0]["message"]


def test_an_unknown_reasoning_format_is_a_400(rig: Rig, fake_groq: FakeGroq) -> None:
    response = rig.chat(model=GROQ_MODEL, reasoning_format="verbose")

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "reasoning_format"
    assert fake_groq.requests == []
