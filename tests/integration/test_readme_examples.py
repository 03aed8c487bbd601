"""Every example in README.md runs against a real server, as written.

Each fenced block in the README has a comment line above it, `<!-- example: NAME -->`,
naming the test below that runs it (or `not-run` with the reason). Only what a reader
would change is substituted: `localhost:8000` becomes the test server's address, `sk-...`
the current key and `gsk_...` the fake Groq's key. A new example without a test fails here.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.aiapi import REPO_ROOT, aiapi_bin_dir, aiapi_env
from tests.support.fake_groq import FAKE_GROQ_KEY, Answer, FakeGroq
from tests.support.client_gateway import current_key, gateway, groq_models, served_models
from tests.support.server import AppServer

README = REPO_ROOT / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"^<!-- example: ([\w-]+)")
TESTED = {"first-request", "admin-key", "aiapi", "terminal-chat", "continue-yaml", "continue-json",
          "openai-sdk", "curl-stream", "responses-sdk", "codex-config", "codex-exec"}


@dataclass(frozen=True)
class Example:
    name: str | None
    language: str
    body: str


def readme_examples() -> list[Example]:
    text = README.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        line_above = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.match(line_above)
        found.append(Example(marker.group(1) if marker else None, match.group(1), match.group(2)))
    return found


def example(name: str) -> str:
    (body,) = [e.body for e in readme_examples() if e.name == name]
    return body


def test_every_readme_example_is_marked_and_has_its_test() -> None:
    examples = readme_examples()

    unmarked = [e.body.splitlines()[0] for e in examples if e.name is None]
    assert unmarked == [], "README blocks without an `<!-- example: NAME -->` line above them"
    named = [e.name for e in examples if e.name != "not-run"]
    assert len(named) == len(set(named))
    assert set(named) == TESTED


# --- the server the README describes -------------------------------------------------------------------

def serve_line_settings() -> dict[str, str]:
    """The variables of the README's `... make serve` line, placeholders made real."""
    line = example("admin-key").splitlines()[0]
    words = shlex.split(line)
    assert words[-2:] == ["make", "serve"]
    settings = dict(word.split("=", 1) for word in words[:-2])
    assert settings["GROQ_API_KEY"] == "gsk_..."
    return {**settings, "GROQ_API_KEY": FAKE_GROQ_KEY}


@pytest.fixture(scope="module")
def settings() -> dict[str, str]:
    return serve_line_settings()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_groq_server: FakeGroq,
           settings: dict[str, str]) -> Iterator[AppServer]:
    with gateway(tmp_path_factory.mktemp("readme"), fake_groq_server, **settings) as app:
        yield app


@pytest.fixture
def key(server: AppServer, settings: dict[str, str]) -> str:
    return current_key(server, settings["ADMIN_SECRET"])


def localize(text: str, server: AppServer, key: str | None = None) -> str:
    text = text.replace("http://localhost:8000", server.base_url)
    text = text.replace("localhost:8000", f"127.0.0.1:{server.port}")
    return text.replace("sk-...", key) if key else text


def run_shell(script: str, *, home: Path, cwd: Path, stdin: str = "", **variables: str) -> str:
    env = aiapi_env(home, **variables)
    env["PATH"] = f"{aiapi_bin_dir(home)}{os.pathsep}{env['PATH']}"
    result = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=cwd, env=env, input=stdin,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def sse_data(text: str) -> list[Any]:
    data = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    assert data[-1] == "[DONE]"
    return [json.loads(d) for d in data[:-1]]


# --- the seed's curl calls -----------------------------------------------------------------------------

def test_first_request(server: AppServer, fake_groq: FakeGroq, tmp_path: Path) -> None:
    fake_groq.script(Answer("The capital of France is Paris."))

    out = run_shell(localize(example("first-request"), server), home=tmp_path, cwd=server.workdir)

    completion = json.loads(out)
    assert completion["object"] == "chat.completion"
    assert completion["choices"][0]["message"]["content"] == "The capital of France is Paris."


def test_admin_key(server: AppServer, key: str, tmp_path: Path) -> None:
    serve, *rest = example("admin-key").splitlines()
    shown = json.loads(rest[-1].removeprefix("# "))  # the answer the README shows

    out = run_shell(localize("\n".join(rest), server), home=tmp_path, cwd=tmp_path)

    body = json.loads(out)
    assert set(body) == set(shown)
    assert body["api_key"] == key


def test_curl_stream(server: AppServer, key: str, fake_groq: FakeGroq, tmp_path: Path) -> None:
    fake_groq.script(Answer("Hello there, friend."))

    out = run_shell(localize(example("curl-stream"), server), home=tmp_path, cwd=tmp_path, KEY=key)

    chunks = sse_data(out)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == \
        "Hello there, friend."


# --- the clients ---------------------------------------------------------------------------------------

def test_aiapi(server: AppServer, key: str, settings: dict[str, str], fake_groq: FakeGroq,
               tmp_path: Path) -> None:
    fake_groq.script(Answer("Paris."), Answer("It subtracts instead of adding."))

    out = run_shell(localize(example("aiapi"), server), home=tmp_path, cwd=tmp_path)

    lines = out.splitlines()
    assert lines[:2] == ["Paris.", "It subtracts instead of adding."]
    listed = served_models(server, settings["ADMIN_SECRET"])
    assert lines[2:] == [f"{model}\t{provider}" for model, provider in listed]
    assert fake_groq.requests[1]["messages"] == [
        {"role": "system", "content": "You review code."},
        {"role": "user", "content": "Find the bug:\n\ndef add(a, b): return a - b"}]
    written = yaml.safe_load((tmp_path / ".continue" / "config.yaml").read_text())
    assert {m["apiKey"] for m in written["models"]} == {key}


def test_terminal_chat(server: AppServer, fake_groq: FakeGroq, tmp_path: Path) -> None:
    fake_groq.script(Answer("Nice to meet you, Ada."), Answer("Your name is Ada."))

    out = run_shell(localize(example("terminal-chat"), server), home=tmp_path, cwd=REPO_ROOT,
                    stdin="My name is Ada.\nWhat is my name?\n")

    assert out.splitlines() == ["Nice to meet you, Ada.", "Your name is Ada."]
    assert [m["role"] for m in fake_groq.requests[1]["messages"]] == ["user", "assistant", "user"]


def continue_requests(model: dict[str, Any], *, autocomplete: bool) -> None:
    """What Continue sends for one configured model: its model list, then chat or autocomplete."""
    base, headers = model["apiBase"].rstrip("/"), {"Authorization": f"Bearer {model['apiKey']}"}
    listed = httpx.get(f"{base}/models", headers=headers, timeout=30)
    assert listed.status_code == 200 and listed.json()["data"]
    if autocomplete:
        body: dict[str, Any] = {"model": model["model"], "prompt": "def fib(n):", "stream": True,
                                "max_tokens": 8, "stop": ["\n\n", "\ndef", "\nclass", "```", "<|endoftext|>"]}
        path, text = "/completions", lambda c: c["choices"][0].get("text") or ""
    else:
        body = {"model": model["model"], "messages": [{"role": "user", "content": "hello"}], "stream": True,
                "stream_options": {"include_usage": True}, "max_tokens": 8}
        path, text = "/chat/completions", lambda c: c["choices"][0]["delta"].get("content") or ""
    response = httpx.post(base + path, json=body, headers=headers, timeout=120)
    assert response.status_code == 200, response.text
    chunks = sse_data(response.text)
    assert "".join(text(c) for c in chunks if c.get("choices"))
    if not autocomplete:
        assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


@pytest.mark.model
def test_continue_yaml(server: AppServer, key: str, tmp_path: Path) -> None:
    config = yaml.safe_load(localize(example("continue-yaml"), server, key))

    for model in config["models"]:
        continue_requests(model, autocomplete="autocomplete" in model["roles"])


def test_continue_yaml_is_what_aiapi_keeps_up_to_date(server: AppServer, key: str, tmp_path: Path) -> None:
    config = tmp_path / ".continue" / "config.yaml"
    config.parent.mkdir()
    before = localize(example("continue-yaml"), server, "sk-last-weeks-key")
    config.write_text(before)

    run_shell("aiapi continue-config --write", home=tmp_path, cwd=tmp_path, AIAPI_URL=server.base_url,
              AIAPI_KEY=key)

    changed = [(a, b) for a, b in zip(before.splitlines(), config.read_text().splitlines(), strict=True)
               if a != b]
    def words(line: str) -> list[str]:  # ruamel may move a trailing comment to fit the longer key
        return line.split()

    assert all(words(a.replace("sk-last-weeks-key", key)) == words(b) for a, b in changed), changed
    assert len(changed) == 2  # both entries point at this server, one with /v1 and one without


def test_continue_json(server: AppServer, key: str) -> None:
    config = json.loads(localize(example("continue-json"), server, key))

    for model in config["models"]:
        continue_requests(model, autocomplete=False)
    # Autocomplete with a model name not starting with gpt/o: the legacy completions API.
    continue_requests(config["tabAutocompleteModel"], autocomplete=True)


@pytest.mark.model
def test_openai_sdk(server: AppServer, key: str, settings: dict[str, str], fake_groq: FakeGroq,
                    tmp_path: Path) -> None:
    fake_groq.script(Answer("Paris."))
    script = tmp_path / "example.py"
    script.write_text(localize(example("openai-sdk"), server, key))

    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)

    assert result.returncode == 0, result.stderr
    first, rest = result.stdout.split("\n", 1)
    model, answer = first.split(" ", 1)
    assert answer == "Paris." and model in groq_models(server, settings["ADMIN_SECRET"])
    streamed, listed = rest[:rest.rindex("[")], ast.literal_eval(rest[rest.rindex("["):].strip())
    assert streamed.strip()  # the local model's streamed answer
    assert listed == [m for m, _ in served_models(server, settings["ADMIN_SECRET"])]


def test_responses_sdk(server: AppServer, key: str, fake_groq: FakeGroq, tmp_path: Path) -> None:
    fake_groq.script(Answer("Hello Ada."), Answer("Your name is Ada."), Answer("Hi there."))
    sdk = localize(example("openai-sdk"), server, key).splitlines()
    client_setup = "\n".join(sdk[: next(i for i, line in enumerate(sdk) if line.startswith("client =")) + 1])
    script = tmp_path / "responses_example.py"
    script.write_text(client_setup + "\n" + example("responses-sdk"))

    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=240)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Hello Ada.\n") and result.stdout.rstrip().endswith("Hi there.")
    follow_up = fake_groq.requests[-2]["messages"]  # previous_response_id brought the first turn along
    assert [m.get("content") for m in follow_up if m["role"] != "system"] == [
        "My name is Ada.", "Hello Ada.", "What is my name?"]


# --- Codex CLI ------------------------------------------------------------------------------------------

# Settings the tests add to the README's config so Codex reaches nothing but the server (no update
# check, analytics, plugins or apps); top-level keys go first, tables last, as TOML wants.
CODEX_LOCKDOWN_TOP = "check_for_update_on_startup = false\n"
CODEX_LOCKDOWN_TABLES = ("\n[analytics]\nenabled = false\n\n"
                         "[features]\nplugins = false\nremote_plugin = false\napps = false\n")


def test_codex_config_and_exec(server: AppServer, key: str, fake_groq: FakeGroq, tmp_path: Path) -> None:
    from tests.support.codex import codex_binary

    binary = codex_binary()
    home = tmp_path / "home"
    (home / ".codex").mkdir(parents=True)
    config = localize(example("codex-config"), server)
    (home / ".codex" / "config.toml").write_text(CODEX_LOCKDOWN_TOP + config + CODEX_LOCKDOWN_TABLES)
    fake_groq.script(Answer("Hi from the README's Codex setup."))

    env = {"HOME": str(home), "CODEX_HOME": str(home / ".codex"), "LANG": "C.UTF-8",
           "PATH": f"{binary.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", localize(example("codex-exec"), server, key)],
                          cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=180, check=False)

    assert done.returncode == 0, done.stderr[-3000:]
    assert "Hi from the README's Codex setup." in done.stdout
    assert fake_groq.requests[-1]["stream"] is True  # it went through /v1/responses to the fake Groq
