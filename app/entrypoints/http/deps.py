"""What routes are given, by type: the services the container provides, and the request limits.

Each is an `async def` reading the app's container directly. A sync dependency, and
dependency-injector's `Provide[...]` marker used as one (its `__call__` is sync), would make
FastAPI hop to a worker thread and back on every request: on the hot routes that hop cost more
than the rest of the dependency machinery (bench/gateway_overhead.py, issue 14). Overrides of
the container's providers still apply (they are called on each request), except the chat
service's: a singleton, the app keeps it once resolved. The
generation routes call `chat_service` and `request_limits` themselves (`answer.py`): even an
async dependency costs FastAPI tens of microseconds a request on those routes.
"""
# No `from __future__ import annotations` here: FastAPI reads the Annotated markers from the
# live signatures that use these.

from inspect import isawaitable
from typing import Annotated, Any

from fastapi import Depends, Request

from app.domain.chat import ChatService
from app.domain.keys import KeyRotationService
from app.entrypoints.http.limits import RequestLimits


async def _settled(value: Any) -> Any:
    # A provider that depends on an async resource hands out a future (resolved after the first time).
    return await value if isawaitable(value) else value


async def chat_service(request: Request) -> ChatService:
    """The container's chat service, kept by the app once resolved.

    With async resources behind it, the container hands out a new future on every call
    (~5 microseconds a request, issue 14).
    """
    state = request.app.state
    service = getattr(state, "chat_service", None)
    if service is None:
        service = state.chat_service = await _settled(state.container.chat_service())
    return service  # type: ignore[no-any-return]


async def key_service(request: Request) -> KeyRotationService:
    """The container's client-key service."""
    return await _settled(request.app.state.container.key_service())  # type: ignore[no-any-return]


async def request_limits(request: Request) -> RequestLimits:
    """The app's request limits."""
    return request.app.state.request_limits  # type: ignore[no-any-return]


ChatServiceDep = Annotated[ChatService, Depends(chat_service)]
KeyServiceDep = Annotated[KeyRotationService, Depends(key_service)]
