"""`aiapi chat`: an interactive conversation with line editing, history and a few slash commands."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from app.entrypoints.cli.client import ChatStream, GatewayClient
from app.entrypoints.cli.errors import CliError

HELP = ("/local: the local model   /groq: Groq (the server's default route)   /model NAME: a model by id\n"
        "/clear: forget the conversation   /quit (or Ctrl-D): leave   Ctrl-C: stop the current answer")


@dataclass
class Conversation:
    """The messages so far (the system prompt first, if any) and the model the next turn asks for."""

    system: str | None = None
    model: str | None = None
    turns: list[dict[str, str]] = field(default_factory=list)

    def messages(self, prompt: str) -> list[dict[str, str]]:
        """What the next request sends: the system prompt, earlier turns, the new prompt."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return [*head, *self.turns, {"role": "user", "content": prompt}]

    def record(self, prompt: str, answer: str) -> None:
        """Keep a finished (or stopped, non-empty) exchange as context for later turns."""
        self.turns += [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]

    def clear(self) -> None:
        """Forget the turns; the system prompt and the model stay."""
        self.turns.clear()


def history_path() -> Path:
    """Where prompts are remembered between sessions (`$XDG_STATE_HOME/aiapi/history`)."""
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(state) / "aiapi" / "history"


def _line_reader() -> Callable[[str], str]:
    """prompt_toolkit's editor with a history file on a terminal; plain lines from a pipe."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        return input
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    path = history_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.touch(mode=0o600, exist_ok=True)  # prompts can be private
    session: PromptSession[str] = PromptSession(history=FileHistory(str(path)))
    return session.prompt


def _footer(stream: ChatStream) -> str:
    usage = stream.usage or {}
    tokens = (f" · {usage.get('prompt_tokens', '?')} + {usage.get('completion_tokens', '?')} tokens"
              if usage else "")
    return f"[{stream.provider} · {stream.model or '?'}{tokens}]"


class ChatSession:
    """The loop: read a line, run a command or send the conversation, print the answer."""

    def __init__(self, client: GatewayClient, conversation: Conversation, console: Console) -> None:
        self.client = client
        self.conversation = conversation
        self.console = console

    def run(self) -> None:
        """Until /quit or end of input; Ctrl-C stops an answer (or clears the line), not the program."""
        read = _line_reader()
        self.console.print(f"aiapi chat with {self.client.config.base_url} · /help for commands", style="dim",
                           markup=False)
        while True:
            try:
                line = read("you> ").strip()
            except KeyboardInterrupt:
                continue
            except EOFError:
                break
            if not line:
                continue
            if line.startswith("/"):
                if not self.command(line):
                    break
                continue
            self.turn(line)

    def command(self, line: str) -> bool:
        """Run a slash command; False means leave."""
        name, _, argument = line.partition(" ")
        argument = argument.strip()
        if name in ("/quit", "/exit"):
            return False
        if name == "/clear":
            self.conversation.clear()
            self.console.print("conversation cleared", style="dim", markup=False)
        elif name == "/local":
            self._use(self._guard(self.client.local_model))
        elif name == "/groq":
            model = self._guard(self.client.upstream_model)
            if model is None:
                self.console.print("this server has no Groq model configured: the local model answers",
                                   style="yellow")
            self._use(model)
        elif name == "/model" and argument:
            self._use(argument)
        elif name == "/model":
            self._use(self.conversation.model)
        else:
            self.console.print(HELP, style="dim", markup=False)
        return True

    def _use(self, model: str | None) -> None:
        self.conversation.model = model
        self.console.print(f"model: {self.conversation.model or 'server default'}", style="dim", markup=False)

    def _guard(self, call: Callable[[], str | None]) -> str | None:
        try:
            return call()
        except CliError as exc:
            self.console.print(f"error: {exc.message}", style="red", markup=False)
            return self.conversation.model

    def turn(self, prompt: str) -> None:
        """One exchange, with a spinner until the first token; an error is one line, the session goes on."""
        stream: ChatStream | None = None
        status = self.console.status("waiting for the first token…", spinner="dots")
        status.start()
        try:
            stream = self.client.open_chat_stream(self.conversation.messages(prompt),
                                                  model=self.conversation.model)
            with stream:
                for text in stream:
                    status.stop()
                    self.console.out(text, end="", highlight=False)
            status.stop()
            self.console.out("")
            self.console.print(_footer(stream), style="dim", markup=False)
        except KeyboardInterrupt:
            status.stop()
            self.console.out("")
            self.console.print("[stopped]", style="yellow", markup=False)
        except CliError as exc:
            status.stop()
            self.console.out("")
            self.console.print(f"error: {exc.message}", style="red", markup=False)
        finally:
            status.stop()
        if stream is not None and stream.text:
            self.conversation.record(prompt, stream.text)
