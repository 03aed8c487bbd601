"""A Responses request as a domain ChatRequest: input items to chat messages, tools to chat tools.

What cannot be taken (an image, an unknown item) is a 400 naming the item, e.g.
`input[2].content[1]`; what only OpenAI's own servers can run (web search,
namespaces of tools, freeform tools) is dropped with one info line, so Codex works.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any

from app.domain.errors import InvalidRequest
from app.domain.models import ChatMessage, ChatRequest
from app.entrypoints.http.content import RESPONSES_TEXT_PARTS, text_of_parts
from app.entrypoints.http.responses.wire import ResponsesRequest, TextOptions

log = logging.getLogger(__name__)

_MESSAGE_ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}
_TOOL_CHOICE_MODES = ("auto", "none", "required")


@dataclass(frozen=True, slots=True)
class Translation:
    """The chat request to run, the new input as messages, and the tools as the response echoes them."""

    request: ChatRequest
    new_messages: tuple[ChatMessage, ...]
    tools: list[dict[str, Any]]


def to_chat_request(body: ResponsesRequest, history: tuple[ChatMessage, ...] = ()) -> Translation:
    """The domain request for `body`, continuing the conversation `history` (a previous response's)."""
    new_messages = input_messages(body.input)
    instructions = (ChatMessage(role="system", content=body.instructions),) if body.instructions else ()
    chat_tools, kept = function_tools(body.tools)
    request = ChatRequest(
        messages=instructions + history + new_messages, model=body.model or None,
        max_tokens=body.max_output_tokens, temperature=body.temperature, top_p=body.top_p,
        tools=tuple(chat_tools) or None,
        tool_choice=chat_tool_choice(body.tool_choice) if chat_tools else None,
        parallel_tool_calls=body.parallel_tool_calls if chat_tools else None,
        response_format=response_format(body.text), user=body.user)
    return Translation(request=request, new_messages=new_messages, tools=kept)


def input_messages(items: str | list[dict[str, Any]]) -> tuple[ChatMessage, ...]:
    """`input` as chat messages: consecutive function calls join one assistant message."""
    if isinstance(items, str):
        return (ChatMessage(role="user", content=items),)
    messages: list[ChatMessage] = []
    for index, item in enumerate(items):
        param = f"input[{index}]"
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            messages.append(_message(item, param))
        elif kind == "function_call":
            call = _tool_call(item, param)
            last = messages[-1] if messages else None
            if last is not None and last.role == "assistant":
                messages[-1] = replace(last, tool_calls=(*(last.tool_calls or ()), call))
            else:
                messages.append(ChatMessage(role="assistant", content="", tool_calls=(call,)))
        elif kind == "function_call_output":
            messages.append(ChatMessage(role="tool", content=_output_text(item.get("output"), param),
                                        tool_call_id=_required_str(item, "call_id", param)))
        elif kind == "reasoning":
            log.debug("responses: dropped a reasoning item (%s)", param)
        else:
            raise InvalidRequest(f"Input items of type `{kind}` are not supported; send message, "
                                 "function_call and function_call_output items.", param=f"{param}.type")
    return tuple(messages)


def _message(item: dict[str, Any], param: str) -> ChatMessage:
    role = _MESSAGE_ROLES.get(item.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise InvalidRequest("A message's role must be one of user, system, developer, assistant.",
                             param=f"{param}.role")
    content = item.get("content")
    if isinstance(content, str):
        return ChatMessage(role=role, content=content)  # type: ignore[arg-type]
    if not isinstance(content, list):
        raise InvalidRequest("A message's content must be a string or a list of parts.",
                             param=f"{param}.content")
    return ChatMessage(role=role, content=text_of_parts(content, f"{param}.content", text_parts=RESPONSES_TEXT_PARTS))  # type: ignore[arg-type]


def _output_text(output: Any, param: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return text_of_parts(output, f"{param}.output", text_parts=RESPONSES_TEXT_PARTS)
    raise InvalidRequest("A function_call_output's output must be a string or a list of parts.",
                         param=f"{param}.output")


def _tool_call(item: dict[str, Any], param: str) -> dict[str, Any]:
    arguments = item.get("arguments", "")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {"id": _required_str(item, "call_id", param), "type": "function",
            "function": {"name": _required_str(item, "name", param), "arguments": arguments}}


def _required_str(item: dict[str, Any], key: str, param: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"Missing required parameter '{param}.{key}'.", param=f"{param}.{key}")
    return value


def function_tools(tools: list[dict[str, Any]] | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Chat tools for the function tools, and those tools as sent; the rest dropped with one info line."""
    chat, kept, dropped = [], [], []
    for index, tool in enumerate(tools or []):
        if tool.get("type") != "function":
            dropped.append(str(tool.get("type")))
            continue
        name = _required_str(tool, "name", f"tools[{index}]")
        function = {"name": name, **{key: tool[key] for key in ("description", "parameters", "strict")
                                     if tool.get(key) is not None}}
        chat.append({"type": "function", "function": function})
        kept.append({"type": "function", **function})
    if dropped:
        log.info("responses: dropped %d tool(s) that are not functions (%s): only function tools are served",
                 len(dropped), ", ".join(sorted(set(dropped))))
    return chat, kept


def chat_tool_choice(choice: str | dict[str, Any] | None) -> Any:
    """`tool_choice` in chat form: modes pass, a named function is wrapped, other kinds become auto."""
    if choice is None or choice in _TOOL_CHOICE_MODES:
        return choice
    if isinstance(choice, dict):
        if choice.get("type") == "function" and isinstance(choice.get("name"), str):
            return {"type": "function", "function": {"name": choice["name"]}}
        if choice.get("type") == "allowed_tools" and choice.get("mode") in _TOOL_CHOICE_MODES:
            return choice["mode"]
    log.info("responses: tool_choice %s names no function tool served here; using auto",
             choice.get("type") if isinstance(choice, dict) else choice)
    return "auto"


def response_format(text: TextOptions | None) -> dict[str, Any] | None:
    """`text.format` as chat's `response_format` (None for plain text)."""
    fmt = text.format if text else None
    if fmt is None or fmt.get("type") == "text":
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        if not isinstance(fmt.get("schema"), dict):
            raise InvalidRequest("text.format of type json_schema needs a `schema` object.",
                                 param="text.format.schema")
        schema = {"name": fmt.get("name") or "response", "schema": fmt["schema"],
                  **{key: fmt[key] for key in ("description", "strict") if fmt.get(key) is not None}}
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest("text.format.type must be one of text, json_object, json_schema.",
                         param="text.format.type")
