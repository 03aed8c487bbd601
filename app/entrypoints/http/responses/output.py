"""The output items of one response, built from the chunks of an answer as they arrive.

Streaming and whole answers share it: a whole answer is one chunk. Each step
returns the Responses events it causes (without sequence numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.domain.models import ChatMessage, Chunk, Completion, FinishReason, Usage
from app.entrypoints.http.responses.wire import ResponseHeader, Status, new_id

Event = dict[str, Any]


def completion_chunk(completion: Completion) -> Chunk:
    """A whole answer as the one chunk that carries all of it."""
    calls = tuple({**call, "index": index} for index, call in enumerate(completion.tool_calls or ()))
    return Chunk(model=completion.model, provider=completion.provider, text=completion.text or "",
                 finish_reason=completion.finish_reason, usage=completion.usage, tool_calls=calls or None)


@dataclass
class _Call:
    item_id: str
    call_id: str
    name: str
    output_index: int
    arguments: list[str] = field(default_factory=list)


class ResponseOutput:
    """A message item for the text, one function_call item per tool call, in the order they began."""

    def __init__(self) -> None:
        self._kinds: list[str | int] = []  # per output index: "message", or a tool call's index
        self._message_id: str | None = None
        self._message_index = -1
        self._text: list[str] = []
        self._calls: dict[int, _Call] = {}
        self.usage = Usage(0, 0)
        self.finish_reason: FinishReason = "stop"

    @property
    def status(self) -> Status:
        """`incomplete` when the answer stopped at the token limit, else `completed`."""
        return "incomplete" if self.finish_reason == "length" else "completed"

    def add(self, chunk: Chunk) -> list[Event]:
        """Take one chunk; the events it causes."""
        events: list[Event] = []
        if chunk.text:
            events += self._open_message()
            self._text.append(chunk.text)
            events.append({"type": "response.output_text.delta", **self._text_ref(), "delta": chunk.text,
                           "logprobs": []})
        for position, delta in enumerate(chunk.tool_calls or ()):
            events += self._call_delta(position, delta)
        self.usage = chunk.usage or self.usage
        self.finish_reason = chunk.finish_reason or self.finish_reason
        return events

    def finish(self) -> list[Event]:
        """The closing events of every item, in output order (an empty message when nothing came)."""
        events = self._open_message() if not self._kinds else []
        for index, kind in enumerate(self._kinds):
            if kind == "message":
                text = "".join(self._text)
                part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
                events.append({"type": "response.output_text.done", **self._text_ref(), "text": text,
                               "logprobs": []})
                events.append({"type": "response.content_part.done", **self._text_ref(), "part": part})
            else:
                call = self._calls[int(kind)]
                events.append({"type": "response.function_call_arguments.done", "item_id": call.item_id,
                               "output_index": index, "name": call.name,
                               "arguments": "".join(call.arguments)})
            events.append({"type": "response.output_item.done", "output_index": index,
                           "item": self._item(kind, self.status)})
        return events

    def items(self, status: Status | None = None) -> list[dict[str, Any]]:
        """The output items, finished (in `status`: the response's by default)."""
        return [self._item(kind, status or self.status) for kind in self._kinds]

    def response(self, header: ResponseHeader) -> dict[str, Any]:
        """The finished response object."""
        reason = "max_output_tokens" if self.status == "incomplete" else None
        return header.snapshot(self.status, output=self.items(), usage=self.usage, incomplete_reason=reason)

    def as_message(self) -> ChatMessage:
        """The answer as the assistant message a follow-up continues from."""
        calls = tuple({"id": c.call_id, "type": "function",
                       "function": {"name": c.name, "arguments": "".join(c.arguments)}}
                      for c in sorted(self._calls.values(), key=lambda c: c.output_index))
        return ChatMessage(role="assistant", content="".join(self._text), tool_calls=calls or None)

    def _open_message(self) -> list[Event]:
        if self._message_id is not None:
            return []
        self._message_id, self._message_index = new_id("msg"), len(self._kinds)
        self._kinds.append("message")
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return [{"type": "response.output_item.added", "output_index": self._message_index,
                 "item": self._item("message", "in_progress")},
                {"type": "response.content_part.added", **self._text_ref(), "part": part}]

    def _text_ref(self) -> dict[str, Any]:
        return {"item_id": self._message_id, "output_index": self._message_index, "content_index": 0}

    def _call_delta(self, position: int, delta: dict[str, Any]) -> list[Event]:
        index = delta.get("index", position)
        function = delta.get("function") or {}
        events: list[Event] = []
        call = self._calls.get(index)
        if call is None:
            call = _Call(item_id=new_id("fc"), call_id=delta.get("id") or new_id("call"),
                         name=function.get("name") or "", output_index=len(self._kinds))
            self._calls[index] = call
            self._kinds.append(index)
            events.append({"type": "response.output_item.added", "output_index": call.output_index,
                           "item": self._item(index, "in_progress")})
        elif function.get("name") and not call.name:
            call.name = function["name"]
        if function.get("arguments"):
            call.arguments.append(function["arguments"])
            events.append({"type": "response.function_call_arguments.delta", "item_id": call.item_id,
                           "output_index": call.output_index, "delta": function["arguments"]})
        return events

    def _item(self, kind: str | int, status: Status) -> dict[str, Any]:
        if kind == "message":
            content = [] if status == "in_progress" else [
                {"type": "output_text", "text": "".join(self._text), "annotations": [], "logprobs": []}]
            return {"id": self._message_id, "type": "message", "status": status, "role": "assistant",
                    "content": content}
        call = self._calls[int(kind)]
        return {"id": call.item_id, "type": "function_call", "status": status, "call_id": call.call_id,
                "name": call.name, "arguments": "".join(call.arguments) if status != "in_progress" else ""}
