"""Responses requests as domain chat requests, and chunks as Responses output items and events."""

from __future__ import annotations

from typing import Any

import pytest

from app.domain.errors import InvalidRequest
from app.domain.models import ChatMessage, Chunk, Usage
from app.entrypoints.http.responses.output import ResponseOutput
from app.entrypoints.http.responses.translate import to_chat_request
from app.entrypoints.http.responses.wire import ResponsesRequest

FUNCTION = {"type": "function", "name": "read_file", "description": "Read a file",
            "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}, "strict": False}


def translate(**body: Any) -> Any:
    return to_chat_request(ResponsesRequest(**{"input": "hi", **body}))


def test_a_string_input_is_one_user_message_after_the_instructions() -> None:
    request = translate(input="hello", instructions="Be brief.", max_output_tokens=9, top_p=0.5)

    assert request.request.messages == (ChatMessage(role="system", content="Be brief."),
                                        ChatMessage(role="user", content="hello"))
    assert request.request.max_tokens == 9 and request.request.top_p == 0.5


def test_items_become_chat_messages() -> None:
    items = [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Rules"}]},
        {"role": "user", "content": [{"type": "input_text", "text": "a"},
                                     {"type": "input_text", "text": "b"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "xyz"},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "Let me look."}]},
        {"type": "function_call", "call_id": "c1", "name": "read_file", "arguments": '{"path": "a"}'},
        {"type": "function_call", "call_id": "c2", "name": "read_file", "arguments": '{"path": "b"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "A"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "B"}]},
    ]

    messages = translate(input=items).request.messages

    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "tool"]
    assert messages[1].content == "a\nb"
    assert messages[2].content == "Let me look."
    assert [c["id"] for c in messages[2].tool_calls or ()] == ["c1", "c2"]
    assert messages[2].tool_calls[0]["function"] == {"name": "read_file", "arguments": '{"path": "a"}'}
    assert (messages[3].tool_call_id, messages[3].content) == ("c1", "A")
    assert (messages[4].tool_call_id, messages[4].content) == ("c2", "B")


@pytest.mark.parametrize(("item", "param"), [
    ({"role": "user", "content": [{"type": "input_image", "image_url": "data:,"}]}, "input[0].content[0]"),
    ({"role": "tool", "content": "x"}, "input[0].role"),
    ({"type": "item_reference", "id": "msg_1"}, "input[0].type"),
    ({"type": "function_call_output", "output": "x"}, "input[0].call_id"),
])
def test_input_that_cannot_be_taken_is_refused_naming_it(item: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        translate(input=[item])

    assert caught.value.param == param


def test_function_tools_become_chat_tools_and_the_rest_is_dropped() -> None:
    tools = [FUNCTION, {"type": "web_search", "external_web_access": False},
             {"type": "namespace", "name": "multi_agent", "tools": [FUNCTION]},
             {"type": "custom", "name": "apply_patch", "format": {"type": "grammar"}}]

    translation = translate(tools=tools, tool_choice={"type": "function", "name": "read_file"},
                            parallel_tool_calls=False)

    assert translation.request.tools == ({"type": "function", "function": {
        "name": "read_file", "description": "Read a file", "parameters": FUNCTION["parameters"],
        "strict": False}},)
    assert translation.request.tool_choice == {"type": "function", "function": {"name": "read_file"}}
    assert translation.request.parallel_tool_calls is False
    assert [t["name"] for t in translation.tools] == ["read_file"]


def test_without_function_tools_no_tool_choice_is_sent() -> None:
    request = translate(tools=[{"type": "web_search"}], tool_choice="required",
                        parallel_tool_calls=True).request

    assert (request.tools, request.tool_choice, request.parallel_tool_calls) == (None, None, None)


@pytest.mark.parametrize(("fmt", "expected"), [
    ({"type": "text"}, None),
    ({"type": "json_object"}, {"type": "json_object"}),
    ({"type": "json_schema", "name": "city", "schema": {"type": "object"}, "strict": True},
     {"type": "json_schema", "json_schema": {"name": "city", "schema": {"type": "object"}, "strict": True}}),
])
def test_text_format_becomes_response_format(fmt: dict[str, Any], expected: Any) -> None:
    assert translate(text={"format": fmt}).request.response_format == expected


def test_an_unknown_text_format_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        translate(text={"format": {"type": "yaml"}})

    assert caught.value.param == "text.format.type"


def test_output_events_for_text_then_a_tool_call() -> None:
    output = ResponseOutput()
    chunks = [Chunk(model="m", provider="p", text="Hel"), Chunk(model="m", provider="p", text="lo"),
              Chunk(model="m", provider="p", tool_calls=({"index": 0, "id": "call_1", "type": "function",
                                                          "function": {"name": "f", "arguments": '{"a"'}},)),
              Chunk(model="m", provider="p", tool_calls=({"index": 0, "function": {"arguments": ": 1}"}},)),
              Chunk(model="m", provider="p", finish_reason="tool_calls", usage=Usage(5, 7))]

    events = [e for chunk in chunks for e in output.add(chunk)] + output.finish()

    assert [e["type"].removeprefix("response.") for e in events] == [
        "output_item.added", "content_part.added", "output_text.delta", "output_text.delta",
        "output_item.added", "function_call_arguments.delta", "function_call_arguments.delta",
        "output_text.done", "content_part.done", "output_item.done",
        "function_call_arguments.done", "output_item.done"]
    message, call = output.items()
    assert message["content"][0]["text"] == "Hello" and message["status"] == "completed"
    assert (call["call_id"], call["name"], call["arguments"]) == ("call_1", "f", '{"a": 1}')
    assert events[-2]["arguments"] == '{"a": 1}' and events[-1]["output_index"] == 1
    assert output.usage == Usage(5, 7)
    assert output.as_message() == ChatMessage(role="assistant", content="Hello", tool_calls=(
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}},))


def test_an_answer_cut_at_the_token_limit_is_incomplete() -> None:
    output = ResponseOutput()
    output.add(Chunk(model="m", provider="p", text="partial", finish_reason="length"))

    assert output.status == "incomplete"
    assert output.items()[0]["status"] == "incomplete"


def test_an_empty_answer_still_has_one_message() -> None:
    output = ResponseOutput()
    output.add(Chunk(model="m", provider="p", finish_reason="stop"))

    events = output.finish()

    assert events[0]["type"] == "response.output_item.added"
    assert output.items()[0]["content"][0]["text"] == ""
