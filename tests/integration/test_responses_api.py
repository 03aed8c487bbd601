"""The Responses API under a real uvicorn, driven by the official `openai` SDK (`client.responses`)
and by raw requests. Groq is the fake server on loopback; the local model is the real embedded one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.support.fake_groq import Answer, FakeGroq, StreamError, tool_call_answer
from tests.support.gateway import Gateway, served

# The default GROQ_MODELS against the fake Groq's 2026 list: Llama 3.3 70B is retired, so the
# default route is the next preferred live model.
FIRST = "openai/gpt-oss-120b"
LOCAL_MODEL = "local/SmolLM2-135M-Instruct"
STREAM_ORDER = ["response.created", "response.in_progress", "response.output_item.added",
                "response.content_part.added", "response.output_text.delta", "response.output_text.done",
                "response.content_part.done", "response.output_item.done", "response.completed"]
WEATHER_TOOL = {"type": "function", "name": "get_weather", "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"]}, "strict": True}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_groq_server: FakeGroq) -> Iterator[Gateway]:
    with served(tmp_path_factory.mktemp("responses"), fake_groq_server, LOCAL_MAX_TOKENS="16",
                RESPONSES_MAX_STORED="50") as running:
        yield running


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key=gateway.key, max_retries=0,
                       timeout=120) as c:
        yield c


def raw_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of every server-sent event."""
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, json.loads(line.removeprefix("data: "))))
    return events


# --- on the fake Groq ----------------------------------------------------------------------------

def test_sdk_response_through_groq(client: openai.OpenAI, fake_groq: FakeGroq) -> None:
    fake_groq.script(Answer("Paris is the capital."))

    raw = client.responses.with_raw_response.create(
        model="gpt-5", instructions="Answer briefly.", input="Capital of France?", max_output_tokens=50,
        temperature=0.2, metadata={"ticket": "42"}, user="ada", store=False)
    response = raw.parse()

    assert raw.headers["x-provider"] == "groq"
    assert response.id.startswith("resp_") and response.object == "response"
    assert response.status == "completed"
    assert response.model == FIRST
    assert response.output_text == "Paris is the capital."
    assert response.output[0].type == "message" and response.output[0].role == "assistant"
    assert response.usage is not None and response.usage.total_tokens == \
        response.usage.input_tokens + response.usage.output_tokens > 0
    assert response.metadata == {"ticket": "42"}
    sent = fake_groq.requests[0]
    assert sent["messages"] == [{"role": "system", "content": "Answer briefly."},
                                {"role": "user", "content": "Capital of France?"}]
    assert sent["max_completion_tokens"] == 50 and sent["temperature"] == 0.2 and sent["user"] == "ada"


def test_sdk_stream_sends_the_events_in_order(client: openai.OpenAI, fake_groq: FakeGroq) -> None:
    fake_groq.script(Answer("streamed from Groq"))

    events = list(client.responses.create(model="gpt-5", input="hello", stream=True))

    types = [e.type for e in events]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    collapsed = [t for i, t in enumerate(types) if i == 0 or t != types[i - 1]]
    assert collapsed == STREAM_ORDER
    assert len(deltas) > 1 and "".join(deltas) == "streamed from Groq"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1].response
    assert completed.status == "completed" and completed.output_text == "streamed from Groq"
    assert completed.usage is not None and completed.usage.output_tokens > 0
    assert completed.model == FIRST
    assert fake_groq.requests[0]["stream"] is True
    assert client.responses.retrieve(completed.id).output_text == "streamed from Groq"  # stored by default


def test_follow_up_continues_the_stored_conversation(client: openai.OpenAI, fake_groq: FakeGroq) -> None:
    fake_groq.script(Answer("Nice to meet you, Ada."), Answer("Your name is Ada."))

    first = client.responses.create(model="gpt-5", instructions="Be kind.", input="My name is Ada.")
    follow_up = client.responses.create(model="gpt-5", input="What is my name?",
                                        previous_response_id=first.id)

    assert follow_up.output_text == "Your name is Ada."
    assert follow_up.previous_response_id == first.id
    assert fake_groq.requests[1]["messages"] == [
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Nice to meet you, Ada."},
        {"role": "user", "content": "What is my name?"}]  # instructions are not carried over
    assert client.responses.retrieve(first.id).output_text == "Nice to meet you, Ada."


def test_deleted_and_unknown_responses_are_404_naming_the_id(client: openai.OpenAI,
                                                             fake_groq: FakeGroq) -> None:
    fake_groq.script(Answer("kept for a moment"))
    kept = client.responses.create(model="gpt-5", input="hi")

    client.responses.delete(kept.id)
    with pytest.raises(openai.NotFoundError) as retrieved:
        client.responses.retrieve(kept.id)
    with pytest.raises(openai.NotFoundError) as followed:
        client.responses.create(model="gpt-5", input="and?", previous_response_id="resp_unknown123")

    assert kept.id in retrieved.value.message
    assert followed.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert "resp_unknown123" in followed.value.body["message"]  # type: ignore[index]
    assert followed.value.body["code"] == "response_not_found"  # type: ignore[index]
    assert len(fake_groq.requests) == 1


def test_store_false_keeps_nothing(client: openai.OpenAI, fake_groq: FakeGroq) -> None:
    fake_groq.script(Answer("not kept"), Answer("not kept either"))

    answered = client.responses.create(model="gpt-5", input="hi", store=False)
    streamed = list(client.responses.create(model="gpt-5", input="hi", store=False, stream=True))

    for response_id in (answered.id, streamed[-1].response.id):
        with pytest.raises(openai.NotFoundError):
            client.responses.retrieve(response_id)


def test_function_call_round_trip(client: openai.OpenAI, fake_groq: FakeGroq) -> None:
    fake_groq.script(tool_call_answer("get_weather", '{"city": "Paris"}', call_id="call_w1"),
                     Answer("It is 18 degrees in Paris."))
    tools: list[Any] = [WEATHER_TOOL, {"type": "web_search"}]

    asked = client.responses.create(model="gpt-5", input="Weather in Paris?", tools=tools,
                                    tool_choice="auto", parallel_tool_calls=False)
    call: Any = asked.output[0]
    answered = client.responses.create(
        model="gpt-5", previous_response_id=asked.id, tools=tools,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "18C, sunny"}])

    assert call.type == "function_call" and call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    assert call.call_id == "call_w1"
    assert answered.output_text == "It is 18 degrees in Paris."
    first, second = fake_groq.requests
    assert [t["function"]["name"] for t in first["tools"]] == ["get_weather"]  # web_search dropped
    assert first["tools"][0]["function"]["strict"] is True
    assert first["tool_choice"] == "auto" and first["parallel_tool_calls"] is False
    assert second["messages"][-2]["tool_calls"][0]["id"] == "call_w1"
    assert second["messages"][-1] == {"role": "tool", "content": "18C, sunny", "tool_call_id": "call_w1"}


def test_streamed_function_call_then_items_sent_back(client: openai.OpenAI, fake_groq: FakeGroq) -> None:
    fake_groq.script(tool_call_answer("get_weather", '{"city": "Oslo"}', call_id="call_o1"),
                     Answer("Cold in Oslo."))

    with client.responses.stream(model="gpt-5", input="Weather in Oslo?", tools=[WEATHER_TOOL],
                                 store=False) as stream:
        events = list(stream)
        asked = stream.get_final_response()
    call = asked.output[0]
    answered = client.responses.create(model="gpt-5", store=False, tools=[WEATHER_TOOL], input=[
        {"role": "user", "content": "Weather in Oslo?"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        call.model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": "call_o1", "output": "-3C"}])

    types = [e.type for e in events]
    assert "response.function_call_arguments.delta" in types
    assert types[-3:] == ["response.function_call_arguments.done", "response.output_item.done",
                          "response.completed"]
    assert call.type == "function_call" and call.arguments == '{"city": "Oslo"}'  # type: ignore[union-attr]
    assert answered.output_text == "Cold in Oslo."
    assert fake_groq.requests[1]["messages"] == [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_o1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
        {"role": "tool", "content": "-3C", "tool_call_id": "call_o1"}]


def test_failure_after_the_stream_began_is_response_failed(gateway: Gateway, fake_groq: FakeGroq) -> None:
    fake_groq.script(StreamError(chunks=2))

    headers = {"authorization": f"Bearer {gateway.key}"}
    with httpx.stream("POST", f"{gateway.base_url}/responses", headers=headers,
                      json={"model": "gpt-5", "input": "hello", "stream": True}, timeout=30) as response:
        events = raw_events(response)

    names = [name for name, _ in events]
    assert response.status_code == 200
    assert all(name == data["type"] for name, data in events)
    assert "response.output_text.delta" in names
    assert names[-1] == "response.failed" and "response.completed" not in names
    failed = events[-1][1]["response"]
    assert failed["status"] == "failed" and failed["error"]["message"]
    stored = httpx.get(f"{gateway.base_url}/v1/responses/{failed['id']}", headers=headers, timeout=10)
    assert stored.status_code == 404


def test_bad_input_is_a_400_naming_the_part(client: openai.OpenAI, fake_groq: FakeGroq) -> None:
    image = {"role": "user", "content": [{"type": "input_text", "text": "What is this?"},
                                         {"type": "input_image", "image_url": "data:image/png;base64,iVBO"}]}

    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="gpt-5", input=[image])  # type: ignore[list-item]
    with pytest.raises(openai.BadRequestError) as out_of_range:
        client.responses.create(model="gpt-5", input="hi", temperature=3)

    assert caught.value.body["param"] == "input[0].content[1]"  # type: ignore[index]
    assert out_of_range.value.body["param"] == "temperature"  # type: ignore[index]
    assert fake_groq.requests == []


def test_wrong_key_is_401(gateway: Gateway) -> None:
    wrong = openai.OpenAI(base_url=f"{gateway.base_url}/v1", api_key="sk-" + "y" * 38, max_retries=0,
                          timeout=10)

    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.responses.create(model="gpt-5", input="hi")

    assert "y" * 38 not in str(caught.value)


# --- on the local model --------------------------------------------------------------------------

@pytest.mark.model
def test_sdk_responses_on_the_local_model(client: openai.OpenAI, fake_groq: FakeGroq) -> None:
    raw = client.responses.with_raw_response.create(model=LOCAL_MODEL, input="Name a colour.",
                                                    max_output_tokens=8)
    first = raw.parse()
    events = list(client.responses.create(model=LOCAL_MODEL, input="And another one?", stream=True,
                                          previous_response_id=first.id))
    follow_up = events[-1].response

    assert raw.headers["x-provider"] == "local"
    assert first.model == LOCAL_MODEL and first.output_text.strip()
    assert first.usage is not None and 0 < first.usage.output_tokens <= 8
    assert events[0].type == "response.created" and follow_up.status in ("completed", "incomplete")
    assert follow_up.output_text.strip() and follow_up.model == LOCAL_MODEL
    # The follow-up's prompt holds the first exchange, so it is longer than the first prompt.
    assert follow_up.usage is not None and follow_up.usage.input_tokens > first.usage.input_tokens
    assert fake_groq.requests == []
