"""The JSON log line: one object per record, the request id of the request it belongs to."""

from __future__ import annotations

import json
import logging
import sys

from app.domain.observation import RequestFacts, bind_facts, release_facts
from app.entrypoints.http.observability.logs import JsonLineFormatter


def record(message: str, *args: object, exc_info: object = None) -> logging.LogRecord:
    return logging.LogRecord("app.test", logging.WARNING, __file__, 1, message, args, exc_info)  # type: ignore[arg-type]


def test_a_record_becomes_one_json_line_with_the_current_request_id() -> None:
    token = bind_facts(RequestFacts(request_id="req-7"))
    try:
        text = JsonLineFormatter().format(record("upstream %s", "down\nsecond line \ud800"))
    finally:
        release_facts(token)

    line = json.loads(text)
    assert "\n" not in text
    assert (line["level"], line["logger"], line["request_id"]) == ("warning", "app.test", "req-7")
    assert line["message"] == "upstream down\nsecond line \ud800"
    assert "error" not in line


def test_an_exception_adds_its_type_and_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        text = JsonLineFormatter().format(record("failed", exc_info=sys.exc_info()))

    line = json.loads(text)
    assert line["error"] == "ValueError" and "Traceback" in line["traceback"]
    assert "request_id" not in line  # outside a request
