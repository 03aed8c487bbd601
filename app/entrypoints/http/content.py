"""Message content parts to text: one rule for chat completions and the Responses API.

Text parts are joined with a newline; an image part is refused (the models served
here cannot see), and so is any other part, each with a 400 naming the part.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.domain.errors import InvalidRequest

IMAGE_PARTS = ("image_url", "input_image", "image")
CHAT_TEXT_PARTS: Mapping[str, str] = {"text": "text"}
RESPONSES_TEXT_PARTS: Mapping[str, str] = {"input_text": "text", "output_text": "text", "text": "text",
                                           "refusal": "refusal"}


def text_of_parts(parts: list[Any], param: str, *, text_parts: Mapping[str, str]) -> str:
    """The text of `parts` joined by newlines; `text_parts` maps each text part type to its text field."""
    texts = []
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in text_parts:
            field = text_parts[kind]
            if not isinstance(part.get(field), str):
                raise InvalidRequest(f"A `{kind}` content part needs a string `{field}` ({param}[{j}] has "
                                     "none).", param=f"{param}[{j}].{field}")
            texts.append(part[field])
        elif kind in IMAGE_PARTS:
            raise InvalidRequest(f"Image input is not supported: the models served here cannot see "
                                 f"images ({param}[{j}] is an image part). Send text only.",
                                 param=f"{param}[{j}]")
        else:
            raise InvalidRequest(f"Content parts of type `{kind}` are not supported; send text parts.",
                                 param=f"{param}[{j}]")
    return "\n".join(texts)
