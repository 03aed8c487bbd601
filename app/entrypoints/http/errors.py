"""Every error the API returns, in OpenAI's envelope, mapped in this one module."""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.domain import errors as e

log = logging.getLogger(__name__)

# domain error -> (HTTP status, OpenAI error type, code)
_MAPPING: list[tuple[type[e.DomainError], int, str, str | None]] = [
    (e.InvalidApiKey, 401, "invalid_request_error", "invalid_api_key"),
    (e.InvalidAdminSecret, 401, "invalid_request_error", "invalid_admin_secret"),
    (e.AdminDisabled, 403, "permission_error", "admin_disabled"),
    (e.TooManyAttempts, 429, "rate_limit_error", "too_many_attempts"),
    (e.RotationNotSupported, 409, "invalid_request_error", "rotation_not_supported"),
    (e.KeyStoreUnavailable, 503, "api_error", "key_store_unavailable"),
    (e.ContextTooLong, 400, "invalid_request_error", "context_length_exceeded"),
    (e.InvalidRequest, 400, "invalid_request_error", None),
    (e.ModelNotFound, 404, "invalid_request_error", "model_not_found"),
    (e.ResponseNotFound, 404, "invalid_request_error", "response_not_found"),
    (e.UpstreamAuthFailed, 502, "api_error", "upstream_auth_failed"),
    (e.UpstreamRejected, 400, "invalid_request_error", None),
    (e.UpstreamUnavailable, 503, "api_error", "upstream_unavailable"),
    (e.Overloaded, 503, "api_error", "overloaded"),
    (e.NotSupportedLocally, 503, "api_error", "not_supported_by_local_model"),
    (e.ProviderUnavailable, 503, "api_error", "model_unavailable"),
]


class ErrorDetail(BaseModel):
    """The `error` object of OpenAI's envelope."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """OpenAI's error envelope: every 4xx and 5xx of this API has this body."""

    error: ErrorDetail


# What every route declares besides its 200, so the OpenAPI document says what errors look
# like (and FastAPI does not invent a 422: validation errors are 400 here).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "The client's mistake, in OpenAI's error envelope."},
    "5XX": {"model": ErrorResponse, "description": "The server's or upstream's failure, in the envelope."},
}


def error_body(message: str, *, type_: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_bytes(message: str, *, type_: str = "invalid_request_error", param: str | None = None,
                code: str | None = None) -> bytes:
    """The envelope as JSON bytes (for the ASGI layer, which answers without FastAPI)."""
    return json.dumps(error_body(message, type_=type_, param=param, code=code),
                      separators=(",", ":")).encode()


def domain_error_response(exc: e.DomainError) -> tuple[int, dict[str, Any], dict[str, str]]:
    """Status, body and headers for a domain error."""
    status, type_, code = 500, "api_error", None
    for cls, cls_status, cls_type, cls_code in _MAPPING:
        if isinstance(exc, cls):
            status, type_, code = cls_status, cls_type, cls_code
            break
    if isinstance(exc, e.UpstreamRejected):
        status, code = exc.status, exc.code or code
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None and status in (429, 503):
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return status, error_body(exc.message, type_=type_, param=exc.param, code=code), headers


def stream_error_body(exc: BaseException) -> dict[str, Any]:
    """The envelope of a failure after a stream has started (sent as its last event)."""
    if isinstance(exc, e.DomainError):
        return domain_error_response(exc)[1]
    return error_body("Internal error while streaming.", type_="api_error")


def _validation_message(exc: RequestValidationError, *, json_body: bool) -> tuple[str, str | None]:
    first = exc.errors()[0] if exc.errors() else {}
    loc = [part for part in first.get("loc", ()) if part != "body"]
    param = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".") or None
    if first.get("type") == "missing" and param is None:
        return "The request body is empty; send a JSON object.", None
    if not json_body:
        return "Content-Type must be application/json.", None
    if first.get("type") == "json_invalid":
        detail = str((first.get("ctx") or {}).get("error", "")).strip()
        if "recursion limit" in detail:
            return "The request body is nested too deeply to be read.", None
        if "surrogate" in detail or "hex escape" in detail:
            detail += "; a \\u escape needs four hex digits, and \\ud800-\\udfff come only in pairs"
        return f"The request body is not valid JSON{f' ({detail})' if detail else ''}.", None
    if first.get("type") == "missing":
        return f"Missing required parameter '{param}'.", param
    if param is None and first.get("type") in ("model_attributes_type", "dict_type", "model_type"):
        return "The request body must be a JSON object.", None
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return (f"Invalid value for '{param}': {msg}." if param else f"Invalid request body: {msg}."), param


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the envelope."""

    @app.exception_handler(e.DomainError)
    async def on_domain_error(request: Request, exc: e.DomainError) -> JSONResponse:
        status, body, headers = domain_error_response(exc)
        log.info("%s %s -> %d %s", request.method, request.url.path, status, type(exc).__name__)
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        json_body = request.method != "POST" or "json" in request.headers.get("content-type", "")
        message, param = _validation_message(exc, json_body=json_body)
        return JSONResponse(error_body(message, param=param), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        if exc.status_code == 404:
            message = f"Unknown endpoint {request.method} {request.url.path}."
        type_ = "invalid_request_error" if exc.status_code < 500 else "api_error"
        return JSONResponse(error_body(message, type_=type_), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("Internal server error.", type_="api_error"), status_code=500)
