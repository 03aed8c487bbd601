"""Helpers for the key-lifecycle integration tests: bounded subprocesses and free loopback ports."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

WORKTREE = Path(__file__).resolve().parents[2]

# Every child script starts with this, so the checkout under test wins over any installed `app`.
PREAMBLE = f"import sys; sys.path.insert(0, {str(WORKTREE)!r})\n"


def child_env(**extra: str) -> dict[str, str]:
    """The parent's environment minus anything that would change the app's settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GROQ_", "KEY_", "ADMIN_", "AUTH_", "TRUST", "LOCAL_"))}
    env.update(PYTHONPATH=str(WORKTREE), HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               PYTHONUNBUFFERED="1", **extra)
    return env


def spawn_python(code: str, *args: str, env: dict[str, str] | None = None,
                 stdin: int | None = None) -> subprocess.Popen[str]:
    """Start `python -c code args...` in its own session (so kill() takes its children too)."""
    return subprocess.Popen([sys.executable, "-c", PREAMBLE + textwrap.dedent(code), *args],
                            cwd=WORKTREE, env=env or child_env(), stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def run_python(code: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 60) -> str:
    """Run a child script to completion (bounded) and return its stdout; fail on a non-zero exit."""
    proc = spawn_python(code, *args, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        kill(proc)
    assert proc.returncode == 0, f"child failed ({proc.returncode}):\n{err}"
    return out


def read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The child's next stdout line, failing after `timeout` seconds."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise AssertionError(f"no output from child within {timeout}s")
    line = proc.stdout.readline()
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"child ended early ({proc.poll()}):\n{err}")
    return line.rstrip("\n")


def kill(proc: subprocess.Popen[str]) -> None:
    """SIGKILL the child's whole session if it still runs, and reap it."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        proc.communicate(timeout=10)
    except (subprocess.TimeoutExpired, ValueError):
        pass


def wait_for(predicate, *, timeout: float, interval: float = 0.05, what: str = "condition") -> None:
    """Poll `predicate` until true, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _CannedCompletion(BaseHTTPRequestHandler):
    """Answers every POST with one fixed OpenAI chat completion."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = json.dumps({
            "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": "fake-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def fake_upstream() -> Iterator[str]:
    """A stand-in OpenAI-compatible upstream on a loopback port; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CannedCompletion)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
