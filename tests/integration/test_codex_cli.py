"""OpenAI's Codex CLI itself (`codex exec`) against a real uvicorn, answered by the fake Groq.

Codex is installed from npm into a cache directory on first use (tests/support/codex.py);
without npm these tests fail with a message saying so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.codex import codex_binary, run_codex
from tests.support.fake_groq import Answer, FakeGroq, tool_call_answer
from tests.support.gateway import Gateway, served


@pytest.fixture(scope="module")
def codex() -> Path:
    return codex_binary()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_groq_server: FakeGroq) -> Iterator[Gateway]:
    with served(tmp_path_factory.mktemp("codex"), fake_groq_server, FALLBACK_TO_LOCAL="false") as running:
        yield running


def test_codex_exec_prints_the_answer(codex: Path, gateway: Gateway, fake_groq: FakeGroq,
                                      tmp_path: Path) -> None:
    fake_groq.script(Answer("Hi from the gateway."))

    done = run_codex(codex, home=tmp_path / "home", workdir=tmp_path / "work", base_url=gateway.base_url,
                     api_key=gateway.key, prompt="say hi")

    assert done.returncode == 0, done.stderr[-3000:]
    assert "Hi from the gateway." in done.stdout
    assert len(fake_groq.requests) == 1  # no retry: the first stream completed
    sent = fake_groq.requests[0]
    assert sent["stream"] is True
    assert sent["messages"][-1] == {"role": "user", "content": "say hi"}
    assert {m["role"] for m in sent["messages"]} == {"system", "user"}  # developer messages are system
    names = [t["function"]["name"] for t in sent["tools"]]
    assert "exec_command" in names and all(t["type"] == "function" for t in sent["tools"])


def test_codex_runs_the_function_call_and_reports_back(codex: Path, gateway: Gateway, fake_groq: FakeGroq,
                                                       tmp_path: Path) -> None:
    # $((40+2)) only becomes 42 in a shell: the output proves Codex ran the command.
    command = json.dumps({"cmd": "echo codex-ran-$((40+2))"})
    fake_groq.script(tool_call_answer("exec_command", command, call_id="call_sh1"),
                     Answer("The command printed codex-ran-42."))

    done = run_codex(codex, home=tmp_path / "home", workdir=tmp_path / "work", base_url=gateway.base_url,
                     api_key=gateway.key, prompt="Run the echo command.")

    assert done.returncode == 0, done.stderr[-3000:]
    assert "The command printed codex-ran-42." in done.stdout
    assert len(fake_groq.requests) == 2
    follow_up = fake_groq.requests[1]["messages"]
    call = next(m for m in follow_up if m.get("tool_calls"))
    result = next(m for m in follow_up if m["role"] == "tool")
    assert call["tool_calls"][0]["id"] == "call_sh1"
    assert call["tool_calls"][0]["function"] == {"name": "exec_command", "arguments": command}
    assert result["tool_call_id"] == "call_sh1"
    assert "codex-ran-42" in result["content"]
