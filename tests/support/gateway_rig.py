"""The real app and container in-process, with the real upstream adapter talking to the fake Groq.

The local model, the clock and the retry sleep are fakes (the point is the
upstream side, not generation); sleeping moves the fake clock, so a wait for a
rate-limit reset is seen by everything that reads the time.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from dependency_injector import providers
from fastapi.testclient import TestClient

from app.containers import Container
from app.main import create_app
from app.settings import Settings
from tests.support.fake_groq import FAKE_GROQ_KEY
from tests.unit.fakes import FakeClock, FakeKeyStore, FakeLLMProvider, FakeSleep

ADMIN = "failover-admin-secret-0123456789"
LOCAL_MODEL = "local/SmolLM2-135M-Instruct"


class ClockSleep(FakeSleep):
    """Records the delays and moves the fake clock by each, at once."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._clock = clock

    async def __call__(self, seconds: float) -> None:
        await super().__call__(seconds)
        self._clock.advance(seconds=seconds)


class Rig:
    """The in-process app: real container and Groq adapter, fake local model, clock and sleep."""

    def __init__(self, groq_url: str, tmp_path: Path, **settings: Any) -> None:
        self.clock = FakeClock()
        self.sleep = ClockSleep(self.clock)
        self.local = FakeLLMProvider(name="local", models=[LOCAL_MODEL], answer="hi from local")
        container = Container()
        container.override_providers(clock=providers.Object(self.clock), sleep=providers.Object(self.sleep),
                                     key_store=providers.Object(FakeKeyStore()),
                                     local=providers.Object(self.local))
        base = {"key_file": str(tmp_path / "k.json"), "admin_secret": ADMIN, "groq_api_key": FAKE_GROQ_KEY,
                "groq_base_url": groq_url, "groq_timeout_seconds": 1.0,
                "groq_first_chunk_timeout_seconds": 1.0, "groq_stream_idle_timeout_seconds": 1.0,
                "circuit_failure_threshold": 3, "circuit_cooldown_seconds": 30}
        self.client = TestClient(create_app(Settings(**{**base, **settings}), container))

    def __enter__(self) -> Rig:
        self.client.__enter__()
        key = self.client.get("/current-key", headers={"admin-secret": ADMIN}).json()["api_key"]
        self.client.headers["authorization"] = f"Bearer {key}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.__exit__(*exc)

    def chat(self, *, model: str = "gpt-3.5-turbo", **extra: Any) -> httpx.Response:
        """POST /v1/chat/completions with one user message."""
        return self.client.post("/v1/chat/completions", json={
            "model": model, "messages": [{"role": "user", "content": "hello"}], **extra})

    def stream(self, *, model: str = "gpt-3.5-turbo", **extra: Any) -> tuple[httpx.Response, list[dict[str, Any]]]:
        """The same, streamed: the response and its events (empty when the status is not 200)."""
        body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "stream": True, **extra}
        with self.client.stream("POST", "/v1/chat/completions", json=body) as response:
            response.read()
        if response.status_code != 200:
            return response, []
        return response, sse_events(iter(response.text.splitlines()))


def sse_events(lines: Iterator[str]) -> list[dict[str, Any]]:
    """The JSON events of an SSE body that ends with `data: [DONE]`."""
    lines = [line for line in lines if line]
    assert all(line.startswith("data: ") for line in lines), lines
    assert lines[-1] == "data: [DONE]"
    return [json.loads(line[6:]) for line in lines[:-1]]


def streamed_text(events: list[dict[str, Any]]) -> str:
    """The content the events add up to."""
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The `error` object of an OpenAI error envelope with `status`."""
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


class LogCapture(logging.Handler):
    """Every record of every logger, the app's own (which does not propagate) included."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def __enter__(self) -> LogCapture:
        self._levels = {}
        for name in ("", "app"):
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            logger.setLevel(logging.DEBUG)
            logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, level in self._levels.items():
            logging.getLogger(name).removeHandler(self)
            logging.getLogger(name).setLevel(level)
