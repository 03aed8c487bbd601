"""Ids drawn from the pooled random bytes: distinct, in OpenAI's forms, and never shared with a forked child."""

from __future__ import annotations

import re

import pytest

from app.entrypoints.http import ids


def test_ids_are_distinct_hex_in_openai_forms_across_many_pool_refills() -> None:
    drawn = [ids.random_hex() for _ in range(ids.POOL_BYTES)]  # 32 pools' worth
    assert len(set(drawn)) == len(drawn)
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in drawn)
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{32}", ids.chat_completion_id())
    assert re.fullmatch(r"cmpl-[0-9a-f]{32}", ids.text_completion_id())


def test_a_forked_child_draws_its_own_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = ids._RandomPool()
    parent = pool.hex32()
    state = (pool._hex, pool._at)
    monkeypatch.setattr(ids.os, "getpid", lambda: -42)  # what the pool sees in a child after fork
    child = pool.hex32()
    assert (pool._hex, pool._at) != state and pool._at == 32
    assert child not in state[0]  # not the parent's next id, nor any other of its pool
    assert parent != child
