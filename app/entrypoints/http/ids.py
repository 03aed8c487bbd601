"""Ids of the objects the API answers with, in OpenAI's forms, and of requests.

Random hex from the operating system's generator, drawn a few kilobytes at a
time: `uuid4()` costs a system call and an object per id, about 2% of a
proxied request's CPU (issue 14). The pool belongs to one process: a forked
child empties it and draws its own.
"""

from __future__ import annotations

import os

POOL_BYTES = 4096


class _RandomPool:
    """Random bytes from `os.urandom`, handed out 16 at a time as 32 hex digits."""

    def __init__(self) -> None:
        self._hex = ""
        self._at = 0
        os.register_at_fork(after_in_child=self.empty)

    def empty(self) -> None:
        """Forget the bytes in hand (a forked child must not hand out its parent's next ids)."""
        self._hex, self._at = "", 0

    def hex32(self) -> str:
        """32 fresh random hex digits (128 bits)."""
        if self._at + 32 > len(self._hex):
            self._hex, self._at = os.urandom(POOL_BYTES).hex(), 0
        at = self._at
        self._at = at + 32
        return self._hex[at:at + 32]


random_hex = _RandomPool().hex32


def chat_completion_id() -> str:
    """An id in OpenAI's `chatcmpl-` form (a `chat.completion` and all its chunks)."""
    return f"chatcmpl-{random_hex()}"


def text_completion_id() -> str:
    """An id in OpenAI's `cmpl-` form (a legacy `text_completion` and all its chunks)."""
    return f"cmpl-{random_hex()}"
