"""Fixtures of the HTTP unit tests: the fakes, and a client of the real app that sends the key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.unit.http_app import Fakes, current_key, make_client


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


@pytest.fixture
def client(fakes: Fakes, tmp_path: Path) -> Iterator[TestClient]:
    """A client of a new app over `fakes`, sending the current key as a bearer token."""
    with make_client(fakes, tmp_path) as c:
        c.headers["authorization"] = f"Bearer {current_key(c)}"
        yield c
