"""OpenAI chat JSON to and from domain types, trusting nothing that comes back.

Whatever shape an upstream answers with, the result is a domain value or an
`UpstreamUnavailable` saying the answer was malformed: never a TypeError that
would become a 500. Text is cleaned of lone surrogates (they cannot be encoded
to UTF-8, so they would break our own response).
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic_core import from_json

from app.domain.errors import UpstreamUnavailable
from app.domain.models import ChatMessage, ChatRequest, Chunk, Completion, FinishReason, Usage

_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")  # after json.loads, any surrogate left has no partner
_FINISH_REASONS: set[str] = {"stop", "length", "tool_calls", "function_call"}


class Malformed(UpstreamUnavailable):
    """The upstream answered with a shape the OpenAI format does not allow."""

    kind = "malformed"  # for metrics


def clean(value: Any) -> Any:
    """`value` with every string's lone surrogates replaced by U+FFFD, recursively."""
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [clean(v) for v in value]
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    return value


def message_to_wire(message: ChatMessage) -> dict[str, Any]:
    """One domain message as an OpenAI message."""
    wire: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        wire["tool_calls"] = list(message.tool_calls)
        if not message.content:
            wire["content"] = None
    if message.tool_call_id:
        wire["tool_call_id"] = message.tool_call_id
    return wire


def request_to_wire(model: str | None, request: ChatRequest, *, stream: bool, max_tokens_field: str,
                    max_stop_sequences: int | None) -> dict[str, Any]:
    """The JSON body of `POST /chat/completions`; parameters left unset are not sent."""
    messages = list(request.messages)
    if request.prompt is not None:
        messages.append(ChatMessage(role="user", content=request.prompt))
    payload: dict[str, Any] = {"messages": [message_to_wire(m) for m in messages]}
    stop = list(request.stop[:max_stop_sequences] if max_stop_sequences else request.stop)
    optional = {
        "model": model,
        max_tokens_field: request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "seed": request.seed,
        "stop": stop or None,
        "tools": list(request.tools) if request.tools else None,
        "tool_choice": request.tool_choice,
        "parallel_tool_calls": request.parallel_tool_calls,
        "response_format": request.response_format,
        "user": request.user,
        "reasoning_effort": request.reasoning_effort,
        "reasoning_format": request.reasoning_format,
        "include_reasoning": request.include_reasoning,
    }
    payload.update({k: v for k, v in optional.items() if v is not None})
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    return payload


def parse_json(body: bytes | str, what: str) -> dict[str, Any]:
    """A JSON object, or Malformed naming `what` was not one.

    pydantic-core parses first (about twice as fast, on every answer and every streamed event:
    issue 14). What it refuses but an upstream may still send, invalid UTF-8, a lone surrogate
    or deep nesting, is read by the standard library as before, and cleaned by the caller.
    """
    try:
        parsed = from_json(body)
    except ValueError:
        try:
            text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            raise Malformed(f"{what} is not JSON") from None
    if not isinstance(parsed, dict):
        raise Malformed(f"{what} is not a JSON object")
    return parsed


def usage(data: Any) -> Usage | None:
    """Token counts, or None when absent or not numbers."""
    if not isinstance(data, dict):
        return None
    prompt, completion = data.get("prompt_tokens"), data.get("completion_tokens")
    if not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in (prompt, completion)):
        return None
    return Usage(prompt_tokens=prompt, completion_tokens=completion)


def _text(value: Any, field: str) -> str | None:
    if value is None or isinstance(value, str):
        return clean(value)
    raise Malformed(f"`{field}` is not a string")


def _tool_calls(value: Any) -> tuple[dict[str, Any], ...] | None:
    if value is None or value == []:
        return None
    if isinstance(value, list) and all(isinstance(call, dict) for call in value):
        return tuple(clean(value))
    raise Malformed("`tool_calls` is not a list of objects")


def _finish(value: Any) -> FinishReason | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed("`finish_reason` is not a string")
    return value if value in _FINISH_REASONS else "stop"  # type: ignore[return-value]


def _first_choice(body: dict[str, Any], *, required: bool) -> dict[str, Any]:
    choices = body.get("choices")
    if choices is None or choices == []:
        if required:
            raise Malformed("the answer has no choices")
        return {}
    if not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise Malformed("`choices` is not a list of objects")
    return choices[0]


def _model(body: dict[str, Any], sent: str | None) -> str:
    model = body.get("model")
    return clean(model) if isinstance(model, str) and model else (sent or "unknown")


def completion_from_wire(body: bytes, *, sent_model: str | None, provider: str,
                         model_prefix: str) -> Completion:
    """A whole `chat.completion` as a domain Completion."""
    data = parse_json(body, "the answer")
    choice = _first_choice(data, required=True)
    message = choice.get("message")
    if not isinstance(message, dict):
        raise Malformed("the choice has no message")
    return Completion(
        text=_text(message.get("content"), "content"),
        reasoning=_text(message.get("reasoning"), "reasoning") or None,
        model=model_prefix + _model(data, sent_model),
        provider=provider,
        finish_reason=_finish(choice.get("finish_reason")) or "stop",
        usage=usage(data.get("usage")) or Usage(0, 0),
        tool_calls=_tool_calls(message.get("tool_calls")),
    )


def chunk_from_wire(data: dict[str, Any], *, sent_model: str | None, provider: str,
                    model_prefix: str) -> Chunk | None:
    """One `chat.completion.chunk` as a domain Chunk; None when it carries nothing (the role-only opener)."""
    choice = _first_choice(data, required=False)
    delta = choice.get("delta", {})
    if not isinstance(delta, dict):
        raise Malformed("the chunk's delta is not an object")
    x_groq = data.get("x_groq")
    chunk_usage = usage(data.get("usage")) or usage(x_groq.get("usage") if isinstance(x_groq, dict) else None)
    text = _text(delta.get("content"), "content") or ""
    reasoning = _text(delta.get("reasoning"), "reasoning") or ""
    tool_calls = _tool_calls(delta.get("tool_calls"))
    finish = _finish(choice.get("finish_reason"))
    if not (text or reasoning or tool_calls or finish or chunk_usage):
        return None
    return Chunk(model=model_prefix + _model(data, sent_model), provider=provider, text=text,
                 reasoning=reasoning, finish_reason=finish, usage=chunk_usage, tool_calls=tool_calls)
