"""Responses requests served by the chat service, with the conversation kept in the response store.

Failover, the local model, limits and errors are the chat service's, exactly as
for chat completions; this module only adds the conversation state.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from app.domain.chat import ChatService
from app.domain.errors import ResponseNotFound
from app.domain.models import ChatMessage, ChatRequest
from app.domain.response_store import ResponseStore, StoredResponse
from app.domain.streams import ChunkStream
from app.entrypoints.http.responses.events import response_events
from app.entrypoints.http.responses.output import ResponseOutput, completion_chunk
from app.entrypoints.http.responses.translate import Translation, to_chat_request
from app.entrypoints.http.responses.wire import ResponseHeader, ResponsesRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Answered:
    """A whole response and the provider that answered it."""

    body: dict[str, Any]
    provider: str


class ResponsesServing:
    """Turns Responses requests into chat-service calls, and keeps what `store` asks to keep."""

    def __init__(self, service: ChatService, store: ResponseStore) -> None:
        self._service = service
        self._store = store

    async def create(self, body: ResponsesRequest) -> Answered:
        """Answer `body` whole."""
        translation, history = self._prepare(body)
        completion = await self._service.complete(translation.request)
        _note_local(translation.request, completion.provider)
        output = ResponseOutput()
        output.add(completion_chunk(completion))
        final = output.response(_header(body, translation, completion.model))
        self._keep(body, history, final, output)
        return Answered(body=final, provider=completion.provider)

    async def open_stream(self, body: ResponsesRequest) -> tuple[ChunkStream, AsyncIterator[bytes]]:
        """Open the answer to `body` (failing before it returns), and the events that send it."""
        translation, history = self._prepare(body)
        stream = await self._service.open_stream(translation.request)
        _note_local(translation.request, stream.provider)

        def finished(final: dict[str, Any], output: ResponseOutput) -> None:
            self._keep(body, history, final, output)

        return stream, response_events(stream, _header(body, translation, stream.model), finished)

    def find(self, response_id: str) -> dict[str, Any]:
        """A stored response object; ResponseNotFound when there is none."""
        stored = self._store.find(response_id)
        if stored is None:
            raise _not_found(response_id, param="response_id")
        return dict(stored.body)

    def delete(self, response_id: str) -> None:
        """Forget a stored response; ResponseNotFound when there is none."""
        if not self._store.delete(response_id):
            raise _not_found(response_id, param="response_id")

    def _prepare(self, body: ResponsesRequest) -> tuple[Translation, tuple[ChatMessage, ...]]:
        """The chat request, and the conversation before this answer (previous one's + the new input)."""
        body.note_ignored()
        previous: tuple[ChatMessage, ...] = ()
        if body.previous_response_id:
            stored = self._store.find(body.previous_response_id)
            if stored is None:
                raise _not_found(body.previous_response_id, param="previous_response_id")
            previous = stored.conversation
        translation = to_chat_request(body, previous)
        return translation, previous + translation.new_messages

    def _keep(self, body: ResponsesRequest, history: tuple[ChatMessage, ...], final: dict[str, Any],
              output: ResponseOutput) -> None:
        # store: false (what Codex sends) keeps nothing.
        if body.store:
            self._store.put(StoredResponse(id=final["id"], body=final,
                                           conversation=(*history, output.as_message())))


def _header(body: ResponsesRequest, translation: Translation, model: str) -> ResponseHeader:
    return ResponseHeader.start(model=model, echo=body.echoed(), tools=translation.tools,
                                tool_choice=body.tool_choice)


def _not_found(response_id: str, *, param: str) -> ResponseNotFound:
    return ResponseNotFound(f"No response found with id '{response_id}': it is unknown, expired or was "
                            "deleted (stored responses live in this server process only).", param=param)


def _note_local(request: ChatRequest, provider: str) -> None:
    # The local model calls no tools (JSON answers it constrains): it answers in plain text.
    if provider == "local" and request.tools:
        log.info("local model answered without tools (not supported locally)")
