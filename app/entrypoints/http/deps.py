"""What routes are given, by type: the services the container provides, and the request limits."""
# No `from __future__ import annotations` here: dependency-injector reads the
# Annotated[..., Depends(Provide[...])] markers from the live signatures that use these.

from typing import Annotated

from dependency_injector.wiring import Provide
from fastapi import Depends

from app.domain.chat import ChatService
from app.domain.keys import KeyRotationService
from app.entrypoints.http.limits import RequestLimits, request_limits

ChatServiceDep = Annotated[ChatService, Depends(Provide["chat_service"])]
KeyServiceDep = Annotated[KeyRotationService, Depends(Provide["key_service"])]
LimitsDep = Annotated[RequestLimits, Depends(request_limits)]
