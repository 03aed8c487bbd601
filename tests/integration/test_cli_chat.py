"""`aiapi chat` in a pseudo-terminal (pexpect), as a person types: turns, commands, Ctrl-C."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.support.aiapi import aiapi_command, aiapi_env
from tests.support.fake_groq import Answer, FakeGroq, SlowStream, Stall
from tests.support.client_gateway import ADMIN, gateway, groq_models, local_model
from tests.support.server import AppServer

PROMPT = "you>"  # prompt_toolkit draws the space as a cursor move


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_groq_server: FakeGroq) -> Iterator[AppServer]:
    with gateway(tmp_path_factory.mktemp("chat"), fake_groq_server) as app:
        yield app


@pytest.fixture
def chat(server: AppServer, tmp_path: Path) -> Iterator[pexpect.spawn]:
    env = aiapi_env(tmp_path, AIAPI_URL=server.base_url, ADMIN_SECRET=ADMIN, TERM="xterm",
                    PROMPT_TOOLKIT_NO_CPR="1")
    command = aiapi_command()
    child = pexpect.spawn(command[0], [*command[1:], "chat"], env=env, encoding="utf-8",
                          dimensions=(40, 160), timeout=30)
    child.expect_exact(PROMPT)
    yield child
    child.close(force=True)


def say(child: pexpect.spawn, line: str) -> None:
    child.sendline(line)


def user_contents(request: dict) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in request["messages"]]


def test_turns_keep_context_and_clear_forgets_it(chat: pexpect.spawn, fake_groq: FakeGroq,
                                                 tmp_path: Path) -> None:
    fake_groq.script(Answer("Nice to meet you, Ada."), Answer("Your name is Ada."), Answer("I do not know."))

    say(chat, "My name is Ada.")
    chat.expect_exact("Nice to meet you, Ada.")
    chat.expect_exact(f"[groq · {fake_groq.requests[0]['model']} · ")  # provider, model, tokens
    chat.expect_exact(PROMPT)
    say(chat, "What is my name?")
    chat.expect_exact("Your name is Ada.")
    chat.expect_exact(PROMPT)
    say(chat, "/clear")
    chat.expect_exact("conversation cleared")
    chat.expect_exact(PROMPT)
    say(chat, "What is my name?")
    chat.expect_exact("I do not know.")
    chat.expect_exact(PROMPT)
    say(chat, "/quit")
    chat.expect(pexpect.EOF)
    chat.close()

    assert chat.exitstatus == 0
    assert user_contents(fake_groq.requests[1]) == [
        ("user", "My name is Ada."), ("assistant", "Nice to meet you, Ada."), ("user", "What is my name?")]
    assert user_contents(fake_groq.requests[2]) == [("user", "What is my name?")]
    history = (tmp_path / ".local" / "state" / "aiapi" / "history").read_text()
    assert "My name is Ada." in history and "/clear" in history


def test_ctrl_c_stops_the_answer_not_the_program(chat: pexpect.spawn, fake_groq: FakeGroq) -> None:
    slow = SlowStream(chunks=400, interval=0.05)
    fake_groq.script(slow, Answer("Still here."))

    say(chat, "Count for a long time.")
    chat.expect_exact("w3 ")
    chat.sendintr()
    chat.expect_exact("[stopped]")
    chat.expect_exact(PROMPT)
    deadline = time.monotonic() + 10
    while not slow.closed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slow.closed and not slow.completed  # the server stopped asking Groq for more

    say(chat, "Are you there?")
    chat.expect_exact("Still here.")
    chat.expect_exact(PROMPT)

    assert chat.isalive()
    stopped_turn = user_contents(fake_groq.requests[1])
    assert stopped_turn[0] == ("user", "Count for a long time.")
    assert stopped_turn[1][0] == "assistant" and stopped_turn[1][1].startswith("w0 w1 w2 w3")
    assert stopped_turn[2] == ("user", "Are you there?")


def test_model_and_groq_commands_choose_the_model(chat: pexpect.spawn, server: AppServer,
                                                  fake_groq: FakeGroq) -> None:
    first, *_, last = groq_models(server)
    say(chat, f"/model {last}")
    chat.expect_exact(f"model: {last}")
    say(chat, "hello")
    chat.expect_exact("Hello from fake Groq!")
    chat.expect_exact(PROMPT)
    say(chat, "/groq")
    chat.expect_exact(f"model: {first}")
    say(chat, "hello again")
    chat.expect_exact("Hello from fake Groq!")
    chat.expect_exact(PROMPT)

    assert [r["model"] for r in fake_groq.requests] == [last, first]


def test_ctrl_c_at_the_prompt_and_ctrl_d_leave_cleanly(chat: pexpect.spawn) -> None:
    chat.send("a draft")
    chat.sendintr()
    # a command's own output, not a redraw of the old prompt, proves the line was cleared and read again
    say(chat, "/model")
    chat.expect_exact("model: server default")
    chat.expect_exact(PROMPT)
    assert chat.isalive()

    chat.sendeof()
    chat.expect(pexpect.EOF)
    chat.close()

    assert chat.exitstatus == 0


def test_a_spinner_shows_until_the_first_token(chat: pexpect.spawn, fake_groq: FakeGroq) -> None:
    fake_groq.script(Stall(1.5))

    say(chat, "hello")

    chat.expect_exact("waiting for the first token")
    chat.expect_exact("Hello from fake Groq!")
    chat.expect_exact(PROMPT)


@pytest.mark.model
def test_local_command_switches_to_the_local_model(chat: pexpect.spawn, server: AppServer,
                                                   fake_groq: FakeGroq) -> None:
    model = local_model(server)
    say(chat, "/local")
    chat.expect_exact(f"model: {model}")
    say(chat, "Name a colour.")

    chat.expect_exact(f"[local · {model} · ", timeout=120)
    chat.expect_exact(PROMPT)
    assert fake_groq.requests == []
