"""GET /readyz: 503 while a preloaded local model loads, 200 once loaded or when loading lazily."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from dependency_injector import providers
from fastapi.testclient import TestClient

from app.containers import Container
from app.main import create_app
from app.settings import Settings


class FakeLoader:
    """A local model whose load finishes when the test says so."""

    def __init__(self) -> None:
        self.finish = asyncio.Event()
        self.loads = 0
        self._loaded = False

    @property
    def is_loaded(self) -> bool:
        return self._loaded

    async def load(self) -> None:
        self.loads += 1
        await self.finish.wait()
        self._loaded = True

    def model_ids(self) -> list[str]:
        return ["local/fake"]

    def close(self) -> None:
        pass


def _client(tmp_path: Path, loader: FakeLoader, *, preload: bool) -> TestClient:
    container = Container()
    container.local.override(providers.Object(loader))
    settings = Settings(_env_file=None, key_file=str(tmp_path / "key.json"), local_preload=preload)
    return TestClient(create_app(settings, container))


def test_readyz_is_503_until_the_preloaded_model_is_loaded(tmp_path: Path) -> None:
    loader = FakeLoader()
    with _client(tmp_path, loader, preload=True) as client:
        loading = client.get("/readyz")
        client.portal.call(loader.finish.set)  # type: ignore[union-attr]
        deadline = time.monotonic() + 10
        while not loader.is_loaded and time.monotonic() < deadline:
            time.sleep(0.01)
        ready = client.get("/readyz")

    assert loading.status_code == 503
    assert loading.headers["Retry-After"]
    assert loading.json()["error"]["code"] == "model_loading"
    assert ready.status_code == 200 and ready.json()["local"]["state"] == "loaded"
    assert loader.loads == 1


def test_readyz_is_200_at_once_when_the_model_loads_on_first_use(tmp_path: Path) -> None:
    loader = FakeLoader()
    with _client(tmp_path, loader, preload=False) as client:
        response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["local"]["state"] == "on_first_use"
    assert loader.loads == 0
