"""LOCAL_RUNNER=server: the local tier on an OpenAI-compatible server, through the same adapter as Groq.

The server is llama-cpp-python's own (`python -m llama_cpp.server`, its
`server` extra) serving the embedded GGUF on a loopback port, with an API key.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.adapters.openai_compatible import OpenAICompatibleProvider, local_server_endpoint
from app.adapters.openai_compatible.transport import UpstreamHttp, open_upstream_http
from app.domain.errors import UpstreamAuthFailed
from app.domain.models import ChatMessage, ChatRequest
from app.main import create_app
from app.settings import Settings
from tests.integration.local_fixtures import embedded_gguf_path
from tests.support.gateway_rig import ADMIN, LogCapture, sse_events
from tests.support.net import free_port

pytest.importorskip("llama_cpp")

pytestmark = pytest.mark.model

SERVER_KEY = "sk-local-server-key-0123456789abcdef"
ALIAS = "smollm2"
ASK = ChatRequest(messages=(ChatMessage(role="user", content="Name a colour."),), max_tokens=8)


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on the embedded GGUF; yields its base URL."""
    port = free_port()
    log = (tmp_path_factory.mktemp("llama-server") / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(embedded_gguf_path()), "--model_alias", ALIAS,
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--api_key", SERVER_KEY,
         "--verbose", "False"],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"llama_cpp.server exited: {Path(log.name).read_text()}"
            try:
                if httpx.get(f"{base_url}/models", headers={"authorization": f"Bearer {SERVER_KEY}"},
                             timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "llama_cpp.server did not start"
            time.sleep(0.2)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


def provider(http: UpstreamHttp, base_url: str, key: str = SERVER_KEY) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(http=http, endpoint=local_server_endpoint(
        base_url=base_url, api_key=key, model=ALIAS, timeout_seconds=60))


async def test_the_adapter_answers_whole_and_streamed_from_the_server(llama_server: str) -> None:
    async for http in open_upstream_http():  # the app's own pool: deadlines are the adapter's
        local = provider(http, llama_server)
        completion = await local.complete(ASK)
        async with await local.open_stream(ASK) as stream:
            chunks = [chunk async for chunk in stream]

    assert completion.text and completion.text.strip()
    assert (completion.model, completion.provider) == (f"local/{ALIAS}", "local")
    assert completion.usage.prompt_tokens > 0
    assert "".join(c.text for c in chunks).strip()
    assert [c.finish_reason for c in chunks if c.finish_reason] in (["stop"], ["length"])
    assert {c.model for c in chunks} == {f"local/{ALIAS}"}


async def test_a_wrong_key_is_the_servers_configuration_problem(llama_server: str) -> None:
    async for http in open_upstream_http():
        with pytest.raises(UpstreamAuthFailed, match="LOCAL_SERVER_API_KEY"):
            await provider(http, llama_server, key="sk-wrong-wrong-wrong").complete(ASK)


@pytest.fixture
def app_client(llama_server: str, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(key_file=str(tmp_path / "k.json"), admin_secret=ADMIN, local_runner="server",
                        local_server_url=llama_server, local_server_api_key=SERVER_KEY,
                        local_server_model=ALIAS, local_max_tokens=8)
    with TestClient(create_app(settings)) as client:
        key = client.get("/current-key", headers={"admin-secret": ADMIN}).json()["api_key"]
        client.headers["authorization"] = f"Bearer {key}"
        yield client


def test_the_app_serves_the_local_tier_from_the_server(app_client: TestClient) -> None:
    with LogCapture() as logs:
        seed = app_client.post("/chat", json={"prompt": "Name a colour."})
        local = app_client.post("/local-chat", json={"prompt": "Name a colour."})
        models = [m["id"] for m in app_client.get("/v1/models").json()["data"]]
        with app_client.stream("POST", "/v1/chat/completions", json={
                "model": f"local/{ALIAS}", "max_tokens": 8, "stream": True,
                "messages": [{"role": "user", "content": "Name a colour."}]}) as streamed:
            events = sse_events(streamed.iter_lines())

    for response in (seed, local):
        assert response.status_code == 200, response.text
        assert response.headers["x-provider"] == "local"
        assert response.json()["model"] == f"local/{ALIAS}"
        assert response.json()["choices"][0]["message"]["content"].strip()
    assert models == [f"local/{ALIAS}"]
    assert streamed.headers["x-provider"] == "local"
    assert "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"]).strip()
    assert app_client.get("/readyz").status_code == 200
    assert not any(SERVER_KEY in line for line in logs.lines)


def test_the_server_gone_is_a_clean_503(tmp_path: Path) -> None:
    settings = Settings(key_file=str(tmp_path / "k.json"), admin_secret=ADMIN, local_runner="server",
                        local_server_url=f"http://127.0.0.1:{free_port()}/v1", local_server_model=ALIAS)
    with TestClient(create_app(settings)) as client:
        key = client.get("/current-key", headers={"admin-secret": ADMIN}).json()["api_key"]
        response = client.post("/chat", json={"prompt": "hi"}, headers={"x-api-key": key})

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "upstream_unavailable"


def test_the_server_runner_needs_a_url() -> None:
    with pytest.raises(ValueError, match="LOCAL_SERVER_URL"):
        Settings(local_runner="server")


