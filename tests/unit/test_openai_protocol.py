"""The OpenAI-compatible API over the real app and container, with fake providers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.domain.errors import UpstreamRejected, UpstreamUnavailable
from tests.unit.fakes import ScriptedLLMProvider
from tests.unit.http_app import ADMIN, GROQ_MODELS, LOCAL_MODEL, Fakes, chat_body, make_client


def events(response: Any) -> list[Any]:
    lines = [line for line in response.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines), lines
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


# --- chat completions -------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/chat/completions", "/chat/completions"])
def test_chat_completion_shape_on_both_paths(client: TestClient, path: str) -> None:
    response = client.post(path, json=chat_body())

    body = response.json()
    assert response.status_code == 200, body
    assert response.headers["x-provider"] == "groq"
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "llama-3.3-70b-versatile"  # the model that answered, not gpt-3.5-turbo
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "hi from groq"}
    assert body["choices"][0]["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_unknown_model_names_go_to_the_default_route(client: TestClient, fakes: Fakes) -> None:
    client.post("/v1/chat/completions", json=chat_body(model="gpt-4o"))

    assert fakes.groq.requests[0].model is None


def test_a_named_groq_model_is_asked_for(client: TestClient, fakes: Fakes) -> None:
    response = client.post("/v1/chat/completions", json=chat_body(model="openai/gpt-oss-120b"))

    assert response.json()["model"] == "openai/gpt-oss-120b"
    assert fakes.groq.requests[0].model == "openai/gpt-oss-120b"


def test_the_local_model_id_routes_to_the_local_model(client: TestClient, fakes: Fakes) -> None:
    response = client.post("/v1/chat/completions", json=chat_body(model=LOCAL_MODEL))

    assert response.headers["x-provider"] == "local"
    assert response.json()["model"] == LOCAL_MODEL
    assert fakes.groq.requests == []


def test_parameters_reach_the_domain_request(client: TestClient, fakes: Fakes) -> None:
    client.post("/v1/chat/completions", json=chat_body(
        max_completion_tokens=40, max_tokens=99, temperature=0.3, top_p=0.9, seed=7, user="u1", n=1,
        stop=["a", "b", "c", "d", "e", "f"], response_format={"type": "json_object"},
        tools=[{"type": "function", "function": {"name": "f", "parameters": {}, "strict": True}}],
        tool_choice="auto"))

    sent = fakes.groq.requests[0]
    assert (sent.max_tokens, sent.temperature, sent.top_p, sent.seed, sent.user) == (40, 0.3, 0.9, 7, "u1")
    assert sent.stop == ("a", "b", "c", "d", "e", "f")  # the Groq adapter cuts to 4
    assert sent.response_format == {"type": "json_object"}
    assert sent.tools is not None and sent.tools[0]["function"]["strict"] is True
    assert sent.tool_choice == "auto"


def test_a_stop_string_is_one_stop_sequence(client: TestClient, fakes: Fakes) -> None:
    client.post("/v1/chat/completions", json=chat_body(stop="\n\n", max_tokens=5))

    assert fakes.groq.requests[0].stop == ("\n\n",)
    assert fakes.groq.requests[0].max_tokens == 5


def test_message_roles_parts_and_tool_calls_are_mapped(client: TestClient, fakes: Fakes) -> None:
    tool_call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    response = client.post("/v1/chat/completions", json=chat_body(messages=[
        {"role": "system", "content": "be brief"},
        {"role": "developer", "content": "really"},
        {"role": "user", "content": [{"type": "text", "text": "part one"},
                                     {"type": "text", "text": "part two"}]},
        {"role": "assistant", "content": None, "tool_calls": [tool_call]},
        {"role": "tool", "content": "42", "tool_call_id": "call_1"},
        {"role": "user", "content": " "},
    ]))

    assert response.status_code == 200, response.text
    messages = fakes.groq.requests[0].messages
    assert [m.role for m in messages] == ["system", "system", "user", "assistant", "tool", "user"]
    assert messages[2].content == "part one\npart two"
    assert messages[3].content == "" and messages[3].tool_calls == (tool_call,)
    assert messages[4].tool_call_id == "call_1"
    assert messages[5].content == " "


def test_continue_fields_are_accepted_and_ignored(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json=chat_body(
        frequency_penalty=0.1, presence_penalty=0.2, parallel_tool_calls=False,
        prediction={"type": "content", "content": "x"}, some_future_field={"a": 1}))

    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("extra", "param"), [
    ({"temperature": 5}, "temperature"),
    ({"temperature": -0.1}, "temperature"),
    ({"max_tokens": -1}, "max_tokens"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_completion_tokens": 0}, "max_completion_tokens"),
    ({"n": 3}, "n"),
    ({"top_p": 2}, "top_p"),
    ({"stop": 5}, "stop"),
    ({"stop": ["ok", 5]}, "stop[1]"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": None}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": [{"type": "audio", "data": "x"}]}]}, "messages[0].content[0]"),
    ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"stream_options": {"include_usage": "lots"}}, "stream_options.include_usage"),
])
def test_bad_parameters_are_400_naming_the_parameter(client: TestClient, extra: dict, param: str) -> None:
    response = client.post("/v1/chat/completions", json=chat_body(**extra))

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"}


def test_missing_messages_is_400(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", json={"model": "x"})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"


def test_an_image_part_is_400_naming_the_problem(client: TestClient, fakes: Fakes) -> None:
    response = client.post("/v1/chat/completions", json=chat_body(messages=[
        {"role": "system", "content": "s"},
        {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                     {"type": "image_url",
                                      "image_url": {"url": "data:image/png;base64,AAAA"}}]}]))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "messages[1].content[1]"
    assert "image" in error["message"].lower()
    assert fakes.groq.requests == []


def test_the_key_is_required_on_every_openai_endpoint(fakes: Fakes, tmp_path: Path) -> None:
    with make_client(fakes, tmp_path) as client:
        for method, path in [("POST", "/v1/chat/completions"), ("POST", "/completions"),
                             ("GET", "/v1/models"), ("GET", "/models"), ("GET", f"/v1/models/{LOCAL_MODEL}")]:
            response = client.request(method, path, json=chat_body(prompt="x"),
                                      headers={"authorization": "Bearer sk-wrong"})
            assert response.status_code == 401, path
            assert response.json()["error"]["code"] == "invalid_api_key"


def test_x_api_key_works_too(client: TestClient) -> None:
    key = client.headers.pop("authorization").removeprefix("Bearer ")

    response = client.post("/chat/completions", json=chat_body(), headers={"x-api-key": key})

    assert response.status_code == 200


def test_upstream_client_errors_pass_through_as_400(fakes: Fakes, tmp_path: Path) -> None:
    groq = ScriptedLLMProvider(name="groq", models=GROQ_MODELS, script=[
        UpstreamRejected("`logprobs` is not supported with this model", param="logprobs")])
    with make_client(fakes, tmp_path, groq=groq) as client:
        key = client.get("/current-key", headers={"admin-secret": ADMIN}).json()["api_key"]
        response = client.post("/v1/chat/completions", json=chat_body(), headers={"x-api-key": key})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "logprobs"
    assert fakes.local.requests == []


# --- streaming ----------------------------------------------------------------------------------

def test_chat_stream_with_usage_last(client: TestClient) -> None:
    with client.stream("POST", "/v1/chat/completions",
                       json=chat_body(stream=True, stream_options={"include_usage": True})) as response:
        chunks = events(response)

    assert response.headers["x-provider"] == "groq"
    assert response.headers["content-type"].startswith("text/event-stream")
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "hi from groq"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert len({c["id"] for c in chunks}) == 1


def test_chat_stream_without_include_usage_has_no_usage_chunk(client: TestClient) -> None:
    with client.stream("POST", "/chat/completions", json=chat_body(stream=True)) as response:
        chunks = events(response)

    assert all(c["choices"] for c in chunks)


def test_stream_fails_over_to_local_before_the_first_chunk(fakes: Fakes, tmp_path: Path) -> None:
    groq = ScriptedLLMProvider(name="groq", models=GROQ_MODELS, script=[UpstreamUnavailable("down")] * 3)
    with make_client(fakes, tmp_path, groq=groq) as client:
        key = client.get("/current-key", headers={"admin-secret": ADMIN}).json()["api_key"]
        with client.stream("POST", "/v1/chat/completions", json=chat_body(stream=True),
                           headers={"x-api-key": key}) as response:
            chunks = events(response)

    assert response.headers["x-provider"] == "local"
    assert {c["model"] for c in chunks} == {LOCAL_MODEL}
    assert len(fakes.sleep.delays) == 2


def test_stream_broken_after_the_first_chunk_ends_with_an_error_event(fakes: Fakes, tmp_path: Path) -> None:
    groq = ScriptedLLMProvider(name="groq", models=GROQ_MODELS, answer="one two three",
                               script=[(1, UpstreamUnavailable("Groq's stream ended before [DONE]"))])
    with make_client(fakes, tmp_path, groq=groq) as client:
        key = client.get("/current-key", headers={"admin-secret": ADMIN}).json()["api_key"]
        with client.stream("POST", "/v1/chat/completions", json=chat_body(stream=True),
                           headers={"x-api-key": key}) as response:
            chunks = events(response)

    assert response.status_code == 200
    assert chunks[1]["choices"][0]["delta"]["content"] == "one"
    assert chunks[-1]["error"]["code"] == "upstream_unavailable"
    assert groq.streams_closed == 1


def test_errors_before_the_first_chunk_are_plain_http_errors(fakes: Fakes, tmp_path: Path) -> None:
    groq = ScriptedLLMProvider(name="groq", models=GROQ_MODELS, script=[UpstreamRejected("bad", param="x")])
    with make_client(fakes, tmp_path, groq=groq) as client:
        key = client.get("/current-key", headers={"admin-secret": ADMIN}).json()["api_key"]
        response = client.post("/v1/chat/completions", json=chat_body(stream=True),
                               headers={"x-api-key": key})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "x"


# --- legacy completions -------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/completions", "/completions"])
def test_legacy_completion_shape(client: TestClient, fakes: Fakes, path: str) -> None:
    response = client.post(path, json={"model": "gpt-3.5-turbo-instruct", "prompt": "def add(a, b):",
                                       "max_tokens": 8, "stop": ["\n"], "suffix": "x"})

    body = response.json()
    assert response.status_code == 200, body
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["choices"][0]["text"] == "hi from groq"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert fakes.groq.requests[0].prompt == "def add(a, b):"
    assert fakes.groq.requests[0].messages == ()


def test_legacy_prompt_may_be_a_one_element_list(client: TestClient, fakes: Fakes) -> None:
    response = client.post("/v1/completions", json={"model": LOCAL_MODEL, "prompt": ["once upon"]})

    assert response.status_code == 200
    assert fakes.local.requests[0].prompt == "once upon"


@pytest.mark.parametrize(("prompt", "param"), [([1, 2, 3], "prompt"), (["a", "b"], "prompt"), ("", "prompt"),
                                               (5, "prompt")])
def test_legacy_prompts_we_cannot_take_are_400(client: TestClient, prompt: Any, param: str) -> None:
    response = client.post("/v1/completions", json={"model": "m", "prompt": prompt})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


def test_legacy_bad_parameter_is_400(client: TestClient) -> None:
    response = client.post("/completions", json={"model": "m", "prompt": "x", "temperature": 5})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "temperature"


def test_legacy_stream_with_usage(client: TestClient) -> None:
    with client.stream("POST", "/completions", json={"model": "starcoder", "prompt": "x", "stream": True,
                                                     "stream_options": {"include_usage": True}}) as response:
        chunks = events(response)

    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == "hi from groq"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


# --- models ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/models", "/models"])
def test_models_lists_groq_models_then_the_local_one(client: TestClient, path: str) -> None:
    body = client.get(path).json()

    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [*GROQ_MODELS, LOCAL_MODEL]
    assert [m["owned_by"] for m in body["data"]] == ["groq", "groq", "local"]
    assert all(m["object"] == "model" and isinstance(m["created"], int) for m in body["data"])


def test_models_without_a_groq_key_lists_only_the_local_model(fakes: Fakes, tmp_path: Path) -> None:
    with make_client(fakes, tmp_path, groq_api_key=None) as client:
        key = client.get("/current-key", headers={"admin-secret": ADMIN}).json()["api_key"]
        body = client.get("/v1/models", headers={"x-api-key": key}).json()

    assert [m["id"] for m in body["data"]] == [LOCAL_MODEL]


@pytest.mark.parametrize("path", [f"/v1/models/{LOCAL_MODEL}", "/models/openai/gpt-oss-120b"])
def test_one_model_by_an_id_with_a_slash(client: TestClient, path: str) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert response.json()["id"] == path.split("/models/", 1)[1]


def test_an_unknown_model_is_404_model_not_found(client: TestClient) -> None:
    response = client.get("/v1/models/gpt-4")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


# --- client disconnect --------------------------------------------------------------------------

async def test_client_disconnect_closes_the_provider_stream(fakes: Fakes, tmp_path: Path) -> None:
    """Drive the ASGI app directly: the client goes away after the first body chunk."""
    groq = ScriptedLLMProvider(name="groq", models=GROQ_MODELS, answer=" ".join(["word"] * 500),
                               chunk_delay=0.001)
    app = make_client(fakes, tmp_path, groq=groq).app
    container = app.state.container
    await container.init_resources()
    try:
        key = (container.key_service()).current().value
        body = json.dumps(chat_body(stream=True)).encode()
        first_body = asyncio.Event()
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if not sent:
                sent.append({})
                return {"type": "http.request", "body": body, "more_body": False}
            await first_body.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body" and message.get("body"):
                first_body.set()
            sent.append(message)

        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
                 "method": "POST", "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions",
                 "query_string": b"", "root_path": "", "scheme": "http", "server": ("127.0.0.1", 80),
                 "client": ("127.0.0.1", 5000),
                 "headers": [(b"content-type", b"application/json"),
                             (b"authorization", f"Bearer {key}".encode())]}
        await asyncio.wait_for(app(scope, receive, send), timeout=10)
    finally:
        await container.shutdown_resources()

    assert groq.streams_closed == 1
    assert groq.chunks_sent < 500
