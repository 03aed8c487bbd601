"""The OpenAI-compatible API under a real uvicorn, driven by the official `openai` SDK
and by raw requests shaped like Continue's. Groq is the fake server on loopback;
the local model is the real embedded one (one server, so one model load)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.support.fake_groq import FAKE_GROQ_KEY, Answer, FakeGroq, SlowStream
from tests.support.server import AppServer

pytestmark = pytest.mark.model
ADMIN = "sdk-admin-secret-0123456789"
# What the default GROQ_MODELS gives against the fake's late-2026 list (llama-3.3-70b-versatile is retired).
FIRST, SECOND = "openai/gpt-oss-120b", "openai/gpt-oss-20b"
LOCAL_MODEL = "local/SmolLM2-135M-Instruct"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_groq_server: FakeGroq) -> Iterator[AppServer]:
    env = {"GROQ_API_KEY": FAKE_GROQ_KEY, "GROQ_BASE_URL": fake_groq_server.base_url,
           "ADMIN_SECRET": ADMIN, "LOCAL_MAX_TOKENS": "16"}
    app = AppServer(tmp_path_factory.mktemp("sdk"), env)
    try:
        yield app.start()
    finally:
        app.stop()


@pytest.fixture(scope="module")
def key(server: AppServer) -> str:
    response = httpx.get(f"{server.base_url}/current-key", headers={"admin-secret": ADMIN}, timeout=10)
    assert response.status_code == 200
    return response.json()["api_key"]


@pytest.fixture
def client(server: AppServer, key: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0, timeout=120) as c:
        yield c


HELLO = [{"role": "user", "content": "hello"}]


# --- the official SDK ----------------------------------------------------------------------------

def test_sdk_chat_through_groq(client: openai.OpenAI, fake_groq: FakeGroq) -> None:
    fake_groq.script(Answer("Groq says hi."))

    raw = client.chat.completions.with_raw_response.create(model="gpt-3.5-turbo", messages=HELLO)
    completion = raw.parse()

    assert raw.headers["x-provider"] == "groq"
    assert completion.choices[0].message.content == "Groq says hi."
    assert completion.model == FIRST
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_sdk_chat_stream_with_usage(client: openai.OpenAI, fake_groq: FakeGroq) -> None:
    fake_groq.script(Answer("streamed from Groq"))

    stream = client.chat.completions.create(model=SECOND, messages=HELLO, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "streamed from Groq"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert {c.model for c in chunks} == {SECOND}
    assert fake_groq.requests[0]["model"] == SECOND


def test_sdk_legacy_completion_and_stream(client: openai.OpenAI, fake_groq: FakeGroq) -> None:
    fake_groq.script(Answer("return a + b"), Answer("return a + b"))

    completion = client.completions.create(model="deepseek-coder", prompt="def add(a, b):\n    ",
                                           max_tokens=10)
    chunks = list(client.completions.create(model="deepseek-coder", prompt="def add(a, b):\n    ",
                                            max_tokens=10, stream=True))

    assert completion.object == "text_completion"
    assert completion.choices[0].text == "return a + b"
    assert "".join(c.choices[0].text for c in chunks if c.choices) == "return a + b"
    assert fake_groq.requests[0]["messages"][-1]["content"] == "def add(a, b):\n    "


def test_sdk_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]

    assert ids == [FIRST, SECOND, "qwen/qwen3.8-27b", LOCAL_MODEL]
    assert client.models.retrieve(SECOND).id == SECOND
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4")


def test_sdk_wrong_key_is_an_authentication_error(server: AppServer) -> None:
    wrong = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key="sk-" + "x" * 38, max_retries=0,
                          timeout=10)

    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO)

    assert "x" * 38 not in str(caught.value)


def test_sdk_bad_parameter_is_a_bad_request_error(client: openai.OpenAI, fake_groq: FakeGroq) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, temperature=5)

    assert caught.value.body["param"] == "temperature"  # type: ignore[index]
    assert fake_groq.requests == []


def test_sdk_local_model_chat_and_stream(client: openai.OpenAI, fake_groq: FakeGroq) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model=LOCAL_MODEL, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=8)
    completion = raw.parse()
    chunks = list(client.chat.completions.create(model=LOCAL_MODEL, messages=HELLO, stream=True,
                                                 stream_options={"include_usage": True}))

    assert raw.headers["x-provider"] == "local"
    assert completion.model == LOCAL_MODEL
    assert (completion.choices[0].message.content or "").strip()
    assert completion.usage is not None and 0 < completion.usage.completion_tokens <= 8
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 16
    assert fake_groq.requests == []


async def test_async_sdk_chat_stream_and_local_completion(
        server: AppServer, key: str, fake_groq: FakeGroq) -> None:
    fake_groq.script(Answer("async hello"))
    async with openai.AsyncOpenAI(base_url=f"{server.base_url}/v1", api_key=key, max_retries=0,
                                  timeout=120) as client:
        stream = await client.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, stream=True)
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        local = await client.completions.create(model=LOCAL_MODEL, prompt="The sky is", max_tokens=6)
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model="gpt-3.5-turbo", messages=HELLO, n=3)

    assert text == "async hello"
    assert local.model == LOCAL_MODEL
    assert local.choices[0].text.strip()


# --- requests shaped like Continue's -------------------------------------------------------------

def continue_body(**extra: Any) -> dict[str, Any]:
    """What Continue sends for chat (provider openai, custom apiBase)."""
    return {
        "model": "gpt-3.5-turbo", "stream": True, "stream_options": {"include_usage": True},
        "max_tokens": 256, "temperature": 0.5, "top_p": 1, "frequency_penalty": 0, "presence_penalty": 0,
        "stop": ["<|im_end|>", "<|endoftext|>", "\n\n\n", "```\n\n", "<|eot_id|>", "</s>"],
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant."}]},
            {"role": "user", "content": [{"type": "text", "text": "Explain"},
                                         {"type": "text", "text": "this"}]},
            {"role": "assistant", "content": " "},
            {"role": "user", "content": "and now?"},
        ],
        **extra,
    }


def sse(response: httpx.Response) -> list[dict[str, Any]]:
    lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]


@pytest.mark.parametrize("api_base", ["", "/v1"])
def test_continue_chat_on_both_api_bases(
        server: AppServer, key: str, fake_groq: FakeGroq, api_base: str) -> None:
    fake_groq.script(Answer("Continue is served."))
    parameters = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    tools = [{"type": "function", "function": {"name": "read_file", "description": "Read a file",
                                               "strict": True, "parameters": parameters}}]
    body = continue_body(tools=tools, tool_choice="auto", parallel_tool_calls=False,
                         prediction={"type": "content", "content": "x"})

    with httpx.stream("POST", f"{server.base_url}{api_base}/chat/completions",
                      headers={"authorization": f"Bearer {key}"}, json=body, timeout=30) as response:
        events = sse(response)

    assert response.status_code == 200
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events if e["choices"]) == \
        "Continue is served."
    assert events[-1]["choices"] == [] and events[-1]["usage"]["total_tokens"] > 0
    sent = fake_groq.requests[0]
    assert len(sent["stop"]) == 4
    assert sent["tools"][0]["function"]["strict"] is True
    assert sent["messages"][1]["content"] == "Explain\nthis"
    assert sent["messages"][2]["content"] == " "
    assert "frequency_penalty" not in sent and "prediction" not in sent


@pytest.mark.parametrize("api_base", ["", "/v1"])
def test_continue_models_and_autocomplete(
        server: AppServer, key: str, fake_groq: FakeGroq, api_base: str) -> None:
    fake_groq.script(Answer("b"))
    headers = {"authorization": f"Bearer {key}", "x-api-key": key}

    models = httpx.get(f"{server.base_url}{api_base}/models", headers=headers, timeout=10)
    with httpx.stream("POST", f"{server.base_url}{api_base}/completions", headers=headers, timeout=30, json={
            "model": "qwen2.5-coder:1.5b", "prompt": "a = 1\nb = a +", "stream": True, "max_tokens": 32,
            "temperature": 0.01,
            "stop": ["\n", "<|endoftext|>", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"],
            "stream_options": {"include_usage": True}}) as response:
        events = sse(response)

    assert LOCAL_MODEL in [m["id"] for m in models.json()["data"]]
    assert all(e["object"] == "text_completion" for e in events)
    assert "".join(e["choices"][0]["text"] for e in events if e["choices"]) == "b"
    assert events[-1]["choices"] == [] and "usage" in events[-1]


def test_continue_image_part_is_a_400_naming_the_message(server: AppServer, key: str) -> None:
    body = continue_body(stream=False, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])

    response = httpx.post(f"{server.base_url}/chat/completions", headers={"authorization": f"Bearer {key}"},
                          json=body, timeout=10)

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].content[1]"


# --- client disconnect ---------------------------------------------------------------------------

def test_client_disconnect_closes_the_groq_request(server: AppServer, key: str, fake_groq: FakeGroq) -> None:
    slow = SlowStream(chunks=400, interval=0.05)  # 20 s if nobody hangs up
    fake_groq.script(slow)
    arrived_while_groq_streamed = False

    with httpx.stream("POST", f"{server.base_url}/v1/chat/completions",
                      headers={"authorization": f"Bearer {key}"},
                      json={"model": "gpt-3.5-turbo", "messages": HELLO, "stream": True},
                      timeout=30) as response:
        for line in response.iter_lines():
            if '"content":"w0 "' in line:
                arrived_while_groq_streamed = not slow.completed  # passed through, not buffered
                break  # leaving the block closes the connection mid-stream
    deadline = time.monotonic() + 15
    while not slow.closed and time.monotonic() < deadline:
        time.sleep(0.05)

    assert arrived_while_groq_streamed
    assert slow.closed
    assert not slow.completed
    assert slow.sent < slow.chunks


def test_no_secret_reaches_the_log(server: AppServer, key: str) -> None:
    log = server.log()

    assert FAKE_GROQ_KEY not in log
    assert ADMIN not in log
    assert key not in log
