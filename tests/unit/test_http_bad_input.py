"""Malformed and hostile input on the wire gets a clear 400 in the envelope, never a 500;
the OpenAPI document says what the API answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.domain.errors import ContextTooLong
from app.entrypoints.http.completions.wire import TextCompletion
from app.entrypoints.http.errors import ErrorResponse
from app.entrypoints.http.wire import ChatCompletion
from tests.unit.http_app import LOCAL_MODEL, Fakes, chat_body, current_key, make_client

JSON = {"content-type": "application/json"}


def error_of(response: Any, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    return ErrorResponse.model_validate(response.json()).error.model_dump()


@pytest.mark.parametrize("path", ["/chat", "/v1/chat/completions", "/v1/completions"])
def test_an_empty_body_says_so(client: TestClient, path: str) -> None:
    error = error_of(client.post(path, content=b"", headers=JSON))

    assert "empty" in error["message"]
    assert "None" not in error["message"]
    assert error["param"] is None


@pytest.mark.parametrize("body", [b"[]", b'"hello"', b"42"])
def test_a_body_that_is_not_an_object_says_so(client: TestClient, body: bytes) -> None:
    error = error_of(client.post("/v1/chat/completions", content=body, headers=JSON))

    assert "JSON object" in error["message"]


def test_a_text_part_without_text_names_the_missing_text(client: TestClient, fakes: Fakes) -> None:
    error = error_of(client.post("/v1/chat/completions", json=chat_body(
        messages=[{"role": "user", "content": [{"type": "text", "text": "ok"}, {"type": "text"}]}])))

    assert error["param"] == "messages[0].content[1].text"
    assert "`text`" in error["message"] and "not supported" not in error["message"]
    assert fakes.groq.requests == []


@pytest.mark.parametrize(("path", "body"), [
    ("/chat", b'{"prompt": "hi \\ud800"}'),
    ("/chat", b'{"prompt": "\\udc00 trailing"}'),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "\\ud800"}]}'),
    ("/v1/completions", b'{"prompt": "x\\ud83d"}'),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x"}], "tools": [{"a": "\\ud800"}]}'),
])
def test_a_lone_surrogate_is_400_not_500(client: TestClient, fakes: Fakes, path: str, body: bytes) -> None:
    error = error_of(client.post(path, content=body, headers=JSON))

    assert "not valid JSON" in error["message"] and "pairs" in error["message"]
    assert fakes.groq.requests == []


def test_a_surrogate_pair_is_one_character(client: TestClient, fakes: Fakes) -> None:
    response = client.post("/chat", content=b'{"prompt": "smile \\ud83d\\ude00"}', headers=JSON)

    assert response.status_code == 200
    assert fakes.groq.requests[0].messages[0].content == "smile \N{GRINNING FACE}"


@pytest.mark.parametrize("where", ["tools", "tool_choice", "unknown_field"])
def test_deep_nesting_is_400(client: TestClient, fakes: Fakes, where: str) -> None:
    nested = "[" * 5000 + "]" * 5000
    body = f'{{"messages": [{{"role": "user", "content": "x"}}], "{where}": {nested}}}'.encode()

    error = error_of(client.post("/v1/chat/completions", content=body, headers=JSON))

    assert "nested" in error["message"]
    assert fakes.groq.requests == []


def test_moderate_nesting_in_a_tool_schema_is_served(client: TestClient, fakes: Fakes) -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(40):
        schema = {"type": "object", "properties": {"inner": schema}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]

    response = client.post("/v1/chat/completions", json=chat_body(tools=tools))

    assert response.status_code == 200, response.text
    assert fakes.groq.requests[0].tools == tuple(tools)


@pytest.mark.parametrize("seed", [2**64, -1, 10**30])
def test_a_seed_outside_0_to_2_64_is_400_naming_seed(client: TestClient, fakes: Fakes, seed: int) -> None:
    error = error_of(client.post("/v1/chat/completions", json=chat_body(seed=seed)))

    assert error["param"] == "seed"
    assert fakes.groq.requests == [] and fakes.local.requests == []


def test_the_largest_seed_reaches_the_provider(client: TestClient, fakes: Fakes) -> None:
    response = client.post("/v1/completions", json={"model": LOCAL_MODEL, "prompt": "x", "seed": 2**64 - 1})

    assert response.status_code == 200
    assert fakes.local.requests[0].seed == 2**64 - 1


@pytest.mark.parametrize("stream", [False, True])
def test_the_legacy_context_error_names_prompt(client: TestClient, fakes: Fakes, stream: bool) -> None:
    fakes.local.error = ContextTooLong("The prompt is 9000 tokens; the local model's context is 8192 tokens.",
                                       param="messages")

    error = error_of(client.post("/v1/completions", json={"model": LOCAL_MODEL, "prompt": "x", "stream": stream}))

    assert error["param"] == "prompt"
    assert error["code"] == "context_length_exceeded"


def test_the_seed_context_error_names_prompt_and_chat_keeps_messages(client: TestClient, fakes: Fakes) -> None:
    fakes.local.error = ContextTooLong("too long", param="messages")

    seed = error_of(client.post("/local-chat", json={"prompt": "x"}))
    chat = error_of(client.post("/v1/chat/completions", json=chat_body(model=LOCAL_MODEL)))

    assert seed["param"] == "prompt"
    assert chat["param"] == "messages"


# --- response shapes and the OpenAPI document ---------------------------------------------------

def test_answers_match_their_declared_models(client: TestClient) -> None:
    chat = client.post("/v1/chat/completions", json=chat_body())
    text = client.post("/v1/completions", json={"model": "m", "prompt": "x"})

    assert ChatCompletion.model_validate(chat.json()).choices[0].message.content == "hi from groq"
    assert TextCompletion.model_validate(text.json()).choices[0].text == "hi from groq"
    assert "tool_calls" not in chat.json()["choices"][0]["message"]
    assert chat.headers["content-type"] == "application/json"


def test_docs_and_the_openapi_document_are_open_and_hold_no_secret(fakes: Fakes, tmp_path: Path) -> None:
    with make_client(fakes, tmp_path) as client:
        docs = client.get("/docs")
        document = client.get("/openapi.json")
        key = current_key(client)

    assert docs.status_code == 200 and document.status_code == 200
    for secret in (key, "gsk_unit", "admin-secret-for-tests"):
        assert secret not in document.text and secret not in docs.text


def test_the_openapi_document_declares_the_envelope_and_no_422(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    operations = [(path, op) for path, item in document["paths"].items() for op in item.values()]

    assert {path for path, _ in operations} >= {"/chat", "/v1/chat/completions", "/v1/completions", "/v1/models",
                                               "/current-key", "/healthz", "/readyz"}
    for path, op in operations:
        assert "422" not in op["responses"], path
        if path != "/healthz":
            assert op["responses"]["4XX"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"}, path
    security = {path: op.get("security") for path, op in operations}
    assert security["/v1/chat/completions"] == [{"bearer": []}, {"x-api-key": []}, {"api-key": []}]
    assert security["/chat"] == security["/v1/models"] == security["/v1/chat/completions"]
    assert security["/healthz"] is None and security["/current-key"] is None  # open, or the admin secret
    assert document["components"]["securitySchemes"]["x-api-key"] == {
        "type": "apiKey", "in": "header", "name": "x-api-key", "description": "The seed's header"}
    chat = document["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert chat["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatCompletion"}
    assert "text/event-stream" in chat


@pytest.mark.parametrize("stream", [False, True])
def test_a_lone_surrogate_in_an_answer_is_sent_as_a_replacement_character(client: TestClient, fakes: Fakes,
                                                                         stream: bool) -> None:
    fakes.groq.answer = "broken \ud800 text"

    response = client.post("/v1/chat/completions", json=chat_body(stream=stream))

    assert response.status_code == 200
    if stream:
        events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events if e.get("choices"))
    else:
        text = response.json()["choices"][0]["message"]["content"]
    assert text == "broken \N{REPLACEMENT CHARACTER} text"
