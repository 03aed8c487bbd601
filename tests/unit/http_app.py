"""The real app and container with fake providers, key store and clock, behind a TestClient."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dependency_injector import providers
from fastapi.testclient import TestClient

from app.containers import Container
from app.main import create_app
from app.settings import Settings
from tests.unit.fakes import FakeClock, FakeKeyStore, FakeLLMProvider, FakeSleep

ADMIN = "admin-secret-for-tests"
GROQ_MODELS = ["llama-3.3-70b-versatile", "openai/gpt-oss-120b"]
LOCAL_MODEL = "local/SmolLM2-135M-Instruct"


class Fakes:
    """What stands in for the adapters: settable clock, dict key store, scripted providers."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.store = FakeKeyStore()
        self.sleep = FakeSleep()
        self.groq = FakeLLMProvider(name="groq", models=GROQ_MODELS, answer="hi from groq")
        self.local = FakeLLMProvider(name="local", models=[LOCAL_MODEL], answer="hi from local")


def make_client(fakes: Fakes, tmp_path: Path, groq: Any = None, **settings: object) -> TestClient:
    """A TestClient over a new app whose container serves `fakes` (and `groq` instead, when given)."""
    container = Container()
    container.override_providers(clock=providers.Object(fakes.clock), key_store=providers.Object(fakes.store),
                                 groq=providers.Object(groq or fakes.groq),
                                 local=providers.Object(fakes.local), sleep=providers.Object(fakes.sleep))
    base = {"key_file": str(tmp_path / "k.json"), "admin_secret": ADMIN, "groq_api_key": "gsk_unit"}
    return TestClient(create_app(Settings(**{**base, **settings}), container))  # type: ignore[arg-type]


def current_key(client: TestClient) -> str:
    """The client key, read through the admin endpoint."""
    return client.get("/current-key", headers={"admin-secret": ADMIN}).json()["api_key"]


def chat_body(**extra: Any) -> dict[str, Any]:
    """A minimal chat completions body, with `extra` fields."""
    return {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hello"}], **extra}
