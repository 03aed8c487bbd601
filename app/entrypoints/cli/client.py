"""The gateway's HTTP API as `aiapi` uses it: the client key fetched and refreshed, errors as CliError."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx

from app.entrypoints.cli.config import ClientConfig
from app.entrypoints.cli.errors import CliError, error_from_response, error_from_transport
from app.entrypoints.cli.sse import sse_payloads

LOCAL_PREFIX = "local/"


class ChatStream:
    """An opened chat-completions stream: the provider is known, text deltas are read by iterating."""

    def __init__(self, response: httpx.Response, url: str) -> None:
        self._response = response
        self._url = url
        self.provider: str = response.headers.get("x-provider", "unknown")
        self.model: str | None = None
        self.usage: dict[str, Any] | None = None
        self.text = ""  # what was read so far, kept when the reader stops early

    def __iter__(self) -> Iterator[str]:
        try:
            for payload in sse_payloads(self._response.iter_lines()):
                self.model = payload.get("model") or self.model
                if isinstance(payload.get("usage"), dict):
                    self.usage = payload["usage"]
                for choice in payload.get("choices") or ():
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        self.text += text
                        yield text
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, self._url) from None

    def close(self) -> None:
        """Stop reading: the server stops generating when the connection closes."""
        self._response.close()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class GatewayClient:
    """One server: admin calls with the admin secret, client calls with the (fetched) client key."""

    def __init__(self, config: ClientConfig, *, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self._key = config.key
        try:
            self._http = httpx.Client(base_url=config.base_url, transport=transport,
                                      timeout=httpx.Timeout(config.timeout, connect=10.0))
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise error_from_transport(exc, config.url) from None

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- admin -------------------------------------------------------------------------------------

    def current_key_response(self) -> httpx.Response:
        """`GET /current-key`, answered (raises CliError on any failure)."""
        return self._admin("GET", "/current-key")

    def rotate_key_response(self) -> httpx.Response:
        """`POST /rotate-key`, answered."""
        return self._admin("POST", "/rotate-key")

    def client_key(self) -> str:
        """The client key: the configured one, else the one the admin endpoint hands out."""
        if self._key is None:
            if not self.config.admin_secret:
                raise CliError("no client key: set AIAPI_KEY (or --key), or ADMIN_SECRET (or --admin-secret) "
                               "so aiapi fetches it")
            self._key = self._fetch_key()
        return self._key

    def _fetch_key(self) -> str:
        body = self.current_key_response().json()
        key = body.get("api_key") if isinstance(body, dict) else None
        if not isinstance(key, str) or not key:
            raise CliError("the server's /current-key answer holds no api_key")
        return key

    def _admin(self, method: str, path: str) -> httpx.Response:
        if not self.config.admin_secret:
            raise CliError("this needs the admin secret: set ADMIN_SECRET or pass --admin-secret")
        response = self._send(lambda: self._http.request(
            method, path, headers={"admin-secret": self.config.admin_secret or ""}))
        if response.is_error:
            raise error_from_response(response, admin=True)
        return response

    # --- client ------------------------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        """The model objects of `GET /v1/models`."""
        response = self._authorized(lambda key: self._http.get("/v1/models", headers=_bearer(key)))
        data = response.json().get("data")
        return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []

    def local_model(self) -> str:
        """The local model's id (`local/...`) as `/v1/models` lists it."""
        for model in self.models():
            if str(model.get("id", "")).startswith(LOCAL_PREFIX):
                return str(model["id"])
        raise CliError("the server lists no local model")

    def upstream_model(self) -> str | None:
        """The first Groq model the server lists, None when Groq is not configured."""
        for model in self.models():
            if not str(model.get("id", "")).startswith(LOCAL_PREFIX):
                return str(model["id"])
        return None

    def open_chat_stream(self, messages: list[dict[str, str]], *, model: str | None = None) -> ChatStream:
        """Start a streamed chat completion; fails here (not while reading) when the server says no."""
        body: dict[str, Any] = {"messages": messages, "stream": True,
                                "stream_options": {"include_usage": True}}
        if model:
            body["model"] = model

        def send(key: str) -> httpx.Response:
            request = self._http.build_request("POST", "/v1/chat/completions", json=body,
                                               headers=_bearer(key))
            return self._http.send(request, stream=True)

        return ChatStream(self._authorized(send), self.config.base_url)

    def _authorized(self, send: Callable[[str], httpx.Response]) -> httpx.Response:
        """Send with the client key; after a 401 (the key rotated) fetch the key once more and retry."""
        response = self._send(lambda: send(self.client_key()))
        if response.status_code == 401 and self.config.admin_secret:
            response.close()
            self._key = self._fetch_key()
            response = self._send(lambda: send(self.client_key()))
        if response.is_error:
            response.read()
            response.close()
            raise error_from_response(response)
        return response

    def _send(self, send: Callable[[], httpx.Response]) -> httpx.Response:
        try:
            return send()
        except httpx.HTTPError as exc:
            raise error_from_transport(exc, self.config.base_url) from None


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
