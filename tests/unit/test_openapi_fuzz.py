"""schemathesis against the app's own OpenAPI document, in-process, fakes through the real container.

Every operation, each generated case sent twice: with the current client key and
without one. No answer may be a 5xx, and every answer must be one the document
declares (status, content type and body schema).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.main import WIRED_MODULES
from tests.unit.http_app import ADMIN, Fakes, current_key, make_client

KEY_HEADERS = ("authorization", "x-api-key")
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


# One app for the module, built at import (schemathesis wants the schema then); its lifespan runs
# around each call, as schemathesis's ASGI client enters it.
_WORKDIR = tempfile.TemporaryDirectory(prefix="fuzz-")
# No lockout: half the calls go without a key, on purpose.
_CLIENT = make_client(Fakes(), Path(_WORKDIR.name), auth_max_failures=10**9)
schema = schemathesis.openapi.from_asgi("/openapi.json", _CLIENT.app)


@pytest.fixture(scope="module")
def served() -> Iterator[None]:
    """The app started for the module."""
    # Wiring is per module, not per app: apps built by other tests since import re-wired the
    # routes' Provide markers to their containers. Point them back at this app's.
    _CLIENT.app.state.container.wire(modules=WIRED_MODULES)  # type: ignore[attr-defined]
    with _CLIENT:
        yield
    _WORKDIR.cleanup()


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_a_5xx_or_off_its_schema(case: schemathesis.Case, served: None) -> None:
    key = current_key(_CLIENT)  # read each time: a generated case may have rotated it
    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in KEY_HEADERS}
    case.call_and_validate(headers={**headers, "authorization": f"Bearer {key}", "admin-secret": ADMIN},
                           checks=CHECKS)
    case.call_and_validate(headers=headers, checks=CHECKS)


def test_every_operation_that_streams_documents_its_event_stream() -> None:
    """The fuzzer meets a stream only when it happens to send `stream: true` in a valid body: checked here."""
    document = _CLIENT.app.openapi()  # type: ignore[attr-defined]
    schemas = document["components"]["schemas"]
    streaming = []
    for path, operations in document["paths"].items():
        post = operations.get("post")
        body = (post or {}).get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body is None:
            continue
        model = schemas[body["$ref"].rsplit("/", 1)[1]] if "$ref" in body else body
        if "stream" in model.get("properties", {}):
            streaming.append(path)
            assert "text/event-stream" in post["responses"]["200"]["content"], path
    assert {"/v1/chat/completions", "/v1/completions", "/v1/responses"} <= set(streaming)
