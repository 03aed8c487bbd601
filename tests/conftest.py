"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fake_groq import FakeGroq


@pytest.fixture(scope="session")
def fake_groq_server() -> Iterator[FakeGroq]:
    """One fake Groq server for the session (reset per test by `fake_groq`)."""
    server = FakeGroq().start()
    yield server
    server.stop()


@pytest.fixture
def fake_groq(fake_groq_server: FakeGroq) -> FakeGroq:
    """The fake Groq server with nothing scripted and no requests recorded."""
    fake_groq_server.reset()
    return fake_groq_server
