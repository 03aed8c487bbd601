"""Ids of the objects the API answers with, in OpenAI's forms."""

from __future__ import annotations

import uuid


def chat_completion_id() -> str:
    """An id in OpenAI's `chatcmpl-` form (a `chat.completion` and all its chunks)."""
    return f"chatcmpl-{uuid.uuid4().hex}"


def text_completion_id() -> str:
    """An id in OpenAI's `cmpl-` form (a legacy `text_completion` and all its chunks)."""
    return f"cmpl-{uuid.uuid4().hex}"
