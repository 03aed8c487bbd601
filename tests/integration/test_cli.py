"""The real `aiapi` command against the real app under uvicorn (Groq played by the fake server)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.aiapi import aiapi_command, aiapi_env, run_aiapi
from tests.support.fake_groq import Answer, Fail, FakeGroq, SlowStream, StreamError
from tests.support.client_gateway import (
    ADMIN,
    current_key,
    gateway,
    groq_models,
    local_model,
    rotate_key,
    served_models,
)
from tests.support.net import free_port
from tests.support.server import AppServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_groq_server: FakeGroq) -> Iterator[AppServer]:
    with gateway(tmp_path_factory.mktemp("cli"), fake_groq_server) as app:
        yield app


@pytest.fixture
def admin_env(server: AppServer, tmp_path: Path) -> dict[str, str]:
    """A user with the server's URL and the admin secret, and no key."""
    return aiapi_env(tmp_path, AIAPI_URL=server.base_url, ADMIN_SECRET=ADMIN)


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("aiapi: ")
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0]


# --- ask ---------------------------------------------------------------------------------------------

def test_ask_fetches_the_key_with_the_admin_secret_and_prints_the_answer(
        admin_env: dict[str, str], fake_groq: FakeGroq) -> None:
    fake_groq.script(Answer("Paris is the capital of France."))

    result = run_aiapi("ask", "What is the capital of France?", env=admin_env)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Paris is the capital of France.\n"
    assert fake_groq.requests[0]["messages"] == [
        {"role": "user", "content": "What is the capital of France?"}]
    assert fake_groq.requests[0]["stream"] is True


def test_ask_prints_tokens_as_they_arrive(admin_env: dict[str, str], fake_groq: FakeGroq) -> None:
    slow = SlowStream(chunks=60, interval=0.05)
    fake_groq.script(slow)
    process = subprocess.Popen([*aiapi_command(), "ask", "count"], env=admin_env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        seen = ""
        while "w2 " not in seen:
            char = process.stdout.read(1)
            assert char, f"output ended early: {seen!r}"
            seen += char
        still_streaming = process.poll() is None and not slow.completed
        rest, _ = process.communicate(timeout=60)
    finally:
        process.kill()

    assert still_streaming
    assert (seen + rest).split() == [f"w{i}" for i in range(60)]


def test_ask_reads_a_piped_prompt_and_takes_system_and_model(
        server: AppServer, admin_env: dict[str, str], fake_groq: FakeGroq) -> None:
    model = groq_models(server)[-1]

    result = run_aiapi("ask", "--system", "Answer in one word.", "--model", model,
                       env=admin_env, stdin="Which colour is the sky?\n")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello from fake Groq!\n"
    assert fake_groq.requests[0]["model"] == model
    assert fake_groq.requests[0]["messages"] == [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Which colour is the sky?"}]


def test_ask_joins_the_argument_and_piped_text(admin_env: dict[str, str], fake_groq: FakeGroq) -> None:
    result = run_aiapi("ask", "Summarise:", env=admin_env, stdin="a long text\n")

    assert result.returncode == 0, result.stderr
    assert fake_groq.requests[0]["messages"][-1]["content"] == "Summarise:\n\na long text"


@pytest.mark.model
def test_ask_local_is_answered_by_the_local_model(admin_env: dict[str, str], fake_groq: FakeGroq) -> None:
    result = run_aiapi("ask", "--local", "Name a colour.", env=admin_env, timeout=240)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert fake_groq.requests == []


def test_a_stream_that_breaks_off_keeps_the_text_and_fails_in_one_line(
        admin_env: dict[str, str], fake_groq: FakeGroq) -> None:
    fake_groq.script(StreamError(chunks=2))

    result = run_aiapi("ask", "hello", env=admin_env)

    assert result.stdout.startswith("Hello from ")
    assert_one_line_error(result, "the answer broke off")


def test_ask_without_a_prompt_is_a_usage_error(admin_env: dict[str, str]) -> None:
    result = run_aiapi("ask", env=admin_env)

    assert_one_line_error(result, "no prompt")
    assert result.returncode == 2


# --- keys --------------------------------------------------------------------------------------------

def test_key_prints_the_key_and_its_expiry(server: AppServer, admin_env: dict[str, str]) -> None:
    result = run_aiapi("key", env=admin_env)

    assert result.returncode == 0, result.stderr
    assert result.stdout == current_key(server) + "\n"
    assert result.stderr.startswith("expires ") and " UTC (in 6 d " in result.stderr


def test_key_json_prints_the_servers_answer(server: AppServer, admin_env: dict[str, str]) -> None:
    result = run_aiapi("key", "--json", env=admin_env)

    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["api_key"] == current_key(server)
    assert set(body) == {"api_key", "expiry"}


def test_key_export_sets_what_openai_clients_read(server: AppServer, admin_env: dict[str, str],
                                                  fake_groq: FakeGroq) -> None:
    command = " ".join(aiapi_command())
    script = (f'eval "$({command} key --export)" && '
              '"$PYTHON" -c "import openai; c = openai.OpenAI(max_retries=0); '
              "print(c.base_url); print([m.id for m in c.models.list()])\"")
    result = subprocess.run(["bash", "-c", script], env={**admin_env, "PYTHON": sys.executable},
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    base_url, ids = result.stdout.splitlines()
    assert base_url == f"{server.base_url}/v1/"
    assert ids == str([model for model, _ in served_models(server)])


def test_rotate_replaces_the_key(server: AppServer, admin_env: dict[str, str]) -> None:
    before = current_key(server)

    result = run_aiapi("rotate", env=admin_env)

    assert result.returncode == 0, result.stderr
    after = result.stdout.strip()
    assert after == current_key(server) and after != before
    models = f"{server.base_url}/v1/models"
    assert httpx.get(models, headers={"Authorization": f"Bearer {before}"}).status_code == 401
    assert httpx.get(models, headers={"Authorization": f"Bearer {after}"}).status_code == 200


def test_after_a_401_the_key_is_fetched_again_once_and_the_request_retried(
        server: AppServer, tmp_path: Path, fake_groq: FakeGroq) -> None:
    stale = current_key(server)
    rotate_key(server)
    env = aiapi_env(tmp_path, AIAPI_URL=server.base_url, ADMIN_SECRET=ADMIN, AIAPI_KEY=stale)

    result = run_aiapi("ask", "hello", env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello from fake Groq!\n"
    assert len(fake_groq.requests) == 1  # the stale key never got past the gateway


def test_a_stale_key_without_the_admin_secret_is_one_line(server: AppServer, tmp_path: Path) -> None:
    stale = current_key(server)
    rotate_key(server)
    env = aiapi_env(tmp_path, AIAPI_URL=server.base_url, AIAPI_KEY=stale)

    assert_one_line_error(run_aiapi("ask", "hello", env=env), "(401)", "AIAPI_KEY")
    assert_one_line_error(run_aiapi("models", env=env), "(401)")


def test_a_wrong_admin_secret_is_one_line(server: AppServer, tmp_path: Path) -> None:
    env = aiapi_env(tmp_path, AIAPI_URL=server.base_url, ADMIN_SECRET="not-the-secret")

    assert_one_line_error(run_aiapi("key", env=env), "wrong admin secret (401)")


def test_no_key_and_no_admin_secret_says_what_to_set(server: AppServer, tmp_path: Path) -> None:
    env = aiapi_env(tmp_path, AIAPI_URL=server.base_url)

    assert_one_line_error(run_aiapi("ask", "hello", env=env), "AIAPI_KEY", "ADMIN_SECRET")


# --- models and Continue -----------------------------------------------------------------------------

def test_models_lists_groq_and_local_models(server: AppServer, admin_env: dict[str, str]) -> None:
    result = run_aiapi("models", env=admin_env)

    assert result.returncode == 0, result.stderr
    rows = [tuple(line.split("\t")) for line in result.stdout.splitlines()]
    assert rows == served_models(server)
    assert {provider for _, provider in rows} == {"groq", "local"}


def test_continue_config_prints_model_entries_holding_the_current_key(
        server: AppServer, admin_env: dict[str, str]) -> None:
    result = run_aiapi("continue-config", env=admin_env)

    assert result.returncode == 0, result.stderr
    entries = yaml.safe_load(result.stdout)["models"]
    key = current_key(server)
    assert [(e["model"], e["roles"]) for e in entries] == [
        (groq_models(server)[0], ["chat", "edit", "apply"]), (local_model(server), ["autocomplete"])]
    assert all(e["apiKey"] == key and e["apiBase"] == f"{server.base_url}/v1" and e["provider"] == "openai"
               for e in entries)


SAMPLE_CONFIG = """\
# My Continue setup: keep these comments.
name: My config
version: 1.0.0
schema: v1
models:
  - name: Claude   # another provider, untouched
    provider: anthropic
    model: claude-sonnet
    apiKey: "sk-ant-keep-me"
  - name: Gateway chat
    provider: openai
    model: gpt-3.5-turbo          # any name: unknown names get the default route
    apiBase: {base}/v1
    apiKey: sk-old-key
    roles: [chat, edit, apply]
context:
  - provider: code
  - provider: docs
"""


def test_continue_config_write_changes_only_the_gateway_keys(
        server: AppServer, admin_env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / ".continue" / "config.yaml"
    config.parent.mkdir()
    original = SAMPLE_CONFIG.format(base=server.base_url)
    config.write_text(original)
    config.chmod(0o640)

    result = run_aiapi("continue-config", "--write", env=admin_env)

    assert result.returncode == 0, result.stderr
    written = config.read_text()
    changed = [(a, b) for a, b in zip(original.splitlines(), written.splitlines(), strict=True) if a != b]
    assert changed == [("    apiKey: sk-old-key", f"    apiKey: {current_key(server)}")]
    assert config.stat().st_mode & 0o777 == 0o640


def test_continue_config_write_adds_the_entries_and_keeps_the_rest(
        server: AppServer, admin_env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "elsewhere.yaml"
    config.write_text("# mine\nname: Mine\nmodels:\n  - name: Other\n    provider: ollama\n    model: x\n"
                      "rules:\n  - Be brief\n")

    result = run_aiapi("continue-config", "--write", "--file", str(config), env=admin_env)

    assert result.returncode == 0, result.stderr
    text = config.read_text()
    assert text.startswith("# mine\nname: Mine\nmodels:\n  - name: Other\n")
    document = yaml.safe_load(text)
    assert document["rules"] == ["Be brief"]
    assert [m["name"] for m in document["models"]] == ["Other", "Gateway chat", "Gateway autocomplete"]
    assert document["models"][1]["apiKey"] == current_key(server)


def test_continue_config_write_creates_a_private_file(server: AppServer, admin_env: dict[str, str],
                                                      tmp_path: Path) -> None:
    result = run_aiapi("continue-config", "--write", env=admin_env)

    assert result.returncode == 0, result.stderr
    config = tmp_path / ".continue" / "config.yaml"
    assert config.stat().st_mode & 0o777 == 0o600
    assert {m["apiKey"] for m in yaml.safe_load(config.read_text())["models"]} == {current_key(server)}


def test_serve_runs_the_app(tmp_path: Path) -> None:
    port = free_port()
    env = aiapi_env(tmp_path, LOCAL_RUNNER="llamacpp", HF_HUB_OFFLINE="1")
    process = subprocess.Popen([*aiapi_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
                               cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "aiapi serve did not come up"
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
    finally:
        process.terminate()
        _, log = process.communicate(timeout=30)

    assert page.status_code == 200 and "AI API chat" in page.text
    assert (tmp_path / "current_key.json").exists()  # the server ran in the working directory
    assert "Application startup complete" in log


# --- errors: one line each, never a traceback --------------------------------------------------------

def test_server_down_is_one_line_and_a_failure(tmp_path: Path) -> None:
    env = aiapi_env(tmp_path, AIAPI_URL=f"http://127.0.0.1:{free_port()}", AIAPI_KEY="sk-whatever")

    for args in (("ask", "hello"), ("models",), ("key",)):
        result = run_aiapi(*args, env={**env, "ADMIN_SECRET": "x"} if args == ("key",) else env)
        assert_one_line_error(result, "cannot reach the server")


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory,
                  fake_groq_server: FakeGroq) -> Iterator[AppServer]:
    """No admin secret, one wrong key locks an address out, no local fallback, no Groq retries."""
    with gateway(tmp_path_factory.mktemp("strict"), fake_groq_server, ADMIN_SECRET=None,
                 AUTH_MAX_FAILURES="1", FALLBACK_TO_LOCAL="false", GROQ_MAX_RETRIES="0",
                 KEY_FILE="strict_key.json") as app:
        yield app


def strict_key(server: AppServer) -> str:
    return json.loads((server.workdir / "strict_key.json").read_text())["api_key"]


# The lockout test runs last among the strict server's tests: it locks this address out there.

def test_admin_disabled_is_403_in_one_line(strict_server: AppServer, tmp_path: Path) -> None:
    env = aiapi_env(tmp_path, AIAPI_URL=strict_server.base_url, ADMIN_SECRET="anything")

    assert_one_line_error(run_aiapi("key", env=env), "forbidden (403)")


def test_unavailable_upstream_is_503_in_one_line(strict_server: AppServer, tmp_path: Path,
                                                 fake_groq: FakeGroq) -> None:
    key = strict_key(strict_server)
    models = httpx.get(f"{strict_server.base_url}/v1/models",
                       headers={"Authorization": f"Bearer {key}"}).json()
    (groq_model, *_) = [m["id"] for m in models["data"] if m["owned_by"] == "groq"]
    fake_groq.script(*[Fail(503, {"error": {"message": "over capacity"}})] * 10)
    env = aiapi_env(tmp_path, AIAPI_URL=strict_server.base_url, AIAPI_KEY=key)

    result = run_aiapi("ask", "--model", groq_model, "hello", env=env)

    assert_one_line_error(result, "service unavailable (503)")


def test_lockout_is_429_with_its_wait_in_one_line(strict_server: AppServer, tmp_path: Path) -> None:
    env = aiapi_env(tmp_path, AIAPI_URL=strict_server.base_url, AIAPI_KEY="sk-wrong")
    first = run_aiapi("models", env=env)
    assert_one_line_error(first, "(401)")

    second = run_aiapi("models", env=env)

    assert_one_line_error(second, "too many requests (429)", "retry in ")
