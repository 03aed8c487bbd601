"""Ids drawn from the pooled random bytes: distinct, in OpenAI's forms, and never shared with a forked child."""

from __future__ import annotations

import os
import re

from app.entrypoints.http import ids


def test_ids_are_distinct_hex_in_openai_forms_across_many_pool_refills() -> None:
    drawn = [ids.random_hex() for _ in range(ids.POOL_BYTES)]  # 32 pools' worth
    assert len(set(drawn)) == len(drawn)
    assert all(re.fullmatch(r"[0-9a-f]{32}", value) for value in drawn)
    assert re.fullmatch(r"chatcmpl-[0-9a-f]{32}", ids.chat_completion_id())
    assert re.fullmatch(r"cmpl-[0-9a-f]{32}", ids.text_completion_id())


def test_a_forked_child_draws_its_own_pool() -> None:
    pool = ids._RandomPool()
    pool.hex32()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: its next id, to the parent
        os.write(write, pool.hex32().encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 64).decode()
    os.waitpid(child, 0)
    os.close(read)
    assert re.fullmatch(r"[0-9a-f]{32}", child_id)
    assert child_id not in pool._hex  # not the parent's next id, nor any other of its pool
