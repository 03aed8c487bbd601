"""What `aiapi` says when something fails: one line and an exit code, never a traceback."""

from __future__ import annotations

import json
import math

import httpx

ERROR_EXIT = 1
INTERRUPTED_EXIT = 130  # the shell's convention for a program stopped by SIGINT


class CliError(Exception):
    """A failure reported as one line on stderr, then exit with `exit_code`."""

    def __init__(self, message: str, exit_code: int = ERROR_EXIT) -> None:
        super().__init__(message)
        self.message = " ".join(message.split())
        self.exit_code = exit_code


def _server_message(response: httpx.Response) -> str:
    """The message of OpenAI's error envelope, or the start of whatever body came back."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message")
        if isinstance(message, str) and message.strip():
            return message.strip()
    text = " ".join(response.text.split())
    return text[:200] if text else response.reason_phrase or "no details"


def _retry_after(response: httpx.Response) -> str:
    value = response.headers.get("retry-after")
    try:
        seconds = math.ceil(float(value)) if value is not None else None
    except ValueError:
        seconds = None
    return f"; retry in {seconds} s" if seconds is not None else ""


def error_from_response(response: httpx.Response, *, admin: bool = False) -> CliError:
    """The one-line error for an HTTP error answer (the body must have been read)."""
    status, message = response.status_code, _server_message(response)
    if status == 401 and admin:
        return CliError(f"wrong admin secret (401): {message} Check ADMIN_SECRET or --admin-secret.")
    if status == 401:
        return CliError(f"the server refused the client key (401): {message} "
                        "Set AIAPI_KEY, or ADMIN_SECRET so aiapi fetches the key itself.")
    if status == 403:
        return CliError(f"forbidden (403): {message}")
    if status == 429:
        return CliError(f"too many requests (429): {message}{_retry_after(response)}")
    if status == 503:
        return CliError(f"service unavailable (503): {message}{_retry_after(response)}")
    return CliError(f"HTTP {status}: {message}")


def error_from_transport(exc: httpx.HTTPError | httpx.InvalidURL, url: str) -> CliError:
    """The one-line error for a request that got no HTTP answer."""
    if isinstance(exc, httpx.ConnectError):
        return CliError(f"cannot reach the server at {url}: is it running? (start one with `aiapi serve`, "
                        "or set AIAPI_URL)")
    if isinstance(exc, httpx.TimeoutException):
        return CliError(f"the server at {url} did not answer in time ({type(exc).__name__}); "
                        "try a longer --timeout")
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return CliError(f"the connection to {url} broke before the answer was complete")
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return CliError(f"not a valid server URL: {url}")
    return CliError(f"request to {url} failed: {type(exc).__name__}")
