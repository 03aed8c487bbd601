"""Domain errors; the HTTP entry point maps each to a status in one place."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a service raises on purpose."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidApiKey(DomainError):
    """The presented client key is missing, wrong or expired."""


class AdminDisabled(DomainError):
    """No admin secret is configured, so admin endpoints are closed."""


class InvalidAdminSecret(DomainError):
    """The presented admin secret is missing or wrong."""


class TooManyAttempts(DomainError):
    """Too many failed credentials from one client; retry after a pause."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RotationNotSupported(DomainError):
    """The key store cannot rotate on demand (derived keys)."""


class KeyStoreUnavailable(DomainError):
    """The client-key store cannot be read or written, so no key can be checked.

    `reason` says what is wrong, for the server log (it may name a path);
    clients only get the generic message.
    """

    def __init__(self, reason: str, *, retry_after: float = 30) -> None:
        super().__init__("The server cannot check client keys right now: its key store is unavailable. "
                         "Retry later; the server's log says what is wrong.")
        self.reason = reason
        self.retry_after = retry_after


class InvalidRequest(DomainError):
    """The request is well-formed JSON but asks for something we cannot do."""


class ContextTooLong(InvalidRequest):
    """The prompt does not fit the model's context window."""


class ModelNotFound(DomainError):
    """The named model does not exist (upstream or locally)."""


class ResponseNotFound(DomainError):
    """A stored response (Responses API) is unknown, expired or deleted."""


class UpstreamError(DomainError):
    """Base of failures of an upstream provider."""


class UpstreamUnavailable(UpstreamError):
    """The upstream could not answer now (network, timeout, 5xx, 429); try elsewhere."""

    def __init__(self, message: str, *, retry_after: float | None = None, kind: str | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        if kind is not None:
            self.kind = kind  # for metrics: rate_limited, server_error, connection, malformed ...


class UpstreamTimeout(UpstreamUnavailable):
    """The upstream did not answer within the timeout; not worth retrying."""


class ModelRetired(UpstreamUnavailable):
    """The upstream model is decommissioned or unknown; another model may work."""


class RateLimited(UpstreamUnavailable):
    """The upstream's rate limit is used up until `retry_after`: it was not asked, so no verdict on it."""


class UpstreamAuthFailed(UpstreamError):
    """The upstream rejected the server's own credentials."""


class UpstreamRejected(UpstreamError):
    """The upstream refused the request as invalid (its 4xx); the client's to fix."""

    def __init__(self, message: str, *, status: int = 400, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message, param=param)
        self.status = status
        self.code = code




class Overloaded(DomainError):
    """The local runner's queue is full; retry later."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ProviderUnavailable(DomainError):
    """No provider can serve the request (the local model failed to load, say)."""


class NotSupportedLocally(ProviderUnavailable):
    """The local model would have to answer, and cannot do what the request requires (a tool call, JSON)."""
