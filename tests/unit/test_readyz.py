"""GET /readyz tells the truth: key store, Groq route, local tier; 503 when requests cannot be served."""

from __future__ import annotations

import time
from pathlib import Path

from dependency_injector import providers
from fastapi.testclient import TestClient

from app.containers import Container
from app.domain.errors import UpstreamUnavailable
from app.main import create_app
from app.settings import Settings
from tests.unit.fakes import FakeClock, FakeLLMProvider

GROQ_MODEL = "llama-3.3-70b-versatile"


class FailingLoader(FakeLLMProvider):
    """A local model whose load fails."""

    is_loaded = False

    async def load(self) -> None:
        raise RuntimeError("no weights")


def client(tmp_path: Path, *, local: FakeLLMProvider | None = None, groq: FakeLLMProvider | None = None,
           **settings: object) -> TestClient:
    container = Container()
    container.override_providers(clock=providers.Object(FakeClock()),
                                 local=providers.Object(local or FakeLLMProvider(name="local", models=["local/x"])))
    if groq is not None:
        container.override_providers(groq=providers.Object(groq))
    base: dict[str, object] = {"key_file": str(tmp_path / "key.json"), "_env_file": None}
    return TestClient(create_app(Settings(**{**base, **settings}), container))  # type: ignore[arg-type]


def test_a_key_file_replaced_by_a_directory_turns_readiness_503_and_back(tmp_path: Path) -> None:
    key_file = tmp_path / "key.json"
    with client(tmp_path) as c:
        before = c.get("/readyz")
        key_file.unlink()
        key_file.mkdir()
        broken = c.get("/readyz")
        key_file.rmdir()
        repaired = c.get("/readyz")

    assert before.status_code == 200 and before.json()["key_store"]["serving"] is True
    assert broken.status_code == 503
    assert broken.json()["key_store"]["serving"] is False
    assert broken.json()["error"]["code"] == "key_store_unavailable"
    assert repaired.status_code == 200


def test_the_groq_route_names_its_model_and_circuit_and_an_open_circuit_only_degrades(tmp_path: Path) -> None:
    groq = FakeLLMProvider(name="groq", models=[GROQ_MODEL], error=UpstreamUnavailable("down"))
    with client(tmp_path, groq=groq, groq_api_key="gsk_unit", groq_max_retries=0,
                circuit_failure_threshold=1, admin_secret="admin-secret-for-readyz-tests") as c:
        closed = c.get("/readyz").json()
        key = c.get("/current-key", headers={"admin-secret": "admin-secret-for-readyz-tests"}).json()["api_key"]
        c.post("/chat", json={"prompt": "hi"}, headers={"x-api-key": key})  # fails over; opens the circuit
        opened = c.get("/readyz")

    assert closed["groq"] == {"configured": True, "model": GROQ_MODEL, "circuit": "closed"}
    assert closed["status"] == "ready"
    assert opened.status_code == 200
    assert opened.json()["groq"]["circuit"] == "open" and opened.json()["status"] == "degraded"


def test_without_groq_the_route_says_so(tmp_path: Path) -> None:
    with client(tmp_path) as c:
        body = c.get("/readyz").json()

    assert body["groq"] == {"configured": False}
    assert body["local"]["model"] == "local/x"


def test_a_preload_that_failed_is_503_not_loading_forever(tmp_path: Path) -> None:
    with client(tmp_path, local=FailingLoader(name="local", models=["local/x"]), local_preload=True) as c:
        deadline = time.monotonic() + 10
        response = c.get("/readyz")
        while response.json()["local"]["state"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.01)
            response = c.get("/readyz")

    assert response.status_code == 503
    assert response.json()["local"] == {"model": "local/x", "state": "failed", "loadable": False}
    assert response.json()["error"]["code"] == "model_unavailable"


def test_no_upstream_and_a_missing_local_model_file_is_503(tmp_path: Path) -> None:
    missing = FakeLLMProvider(name="local", models=["local/gone"])
    missing.is_loaded = False  # type: ignore[misc]
    with client(tmp_path, local=missing, local_model=str(tmp_path / "gone.gguf")) as c:
        response = c.get("/readyz")

    assert response.status_code == 503
    assert response.json()["local"]["loadable"] is False
    assert response.json()["error"]["code"] == "model_unavailable"
