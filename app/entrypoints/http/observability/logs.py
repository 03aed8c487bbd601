"""Log lines: the text form of `make serve` (default), or one JSON object per line (LOG_FORMAT=json).

In JSON mode uvicorn's own loggers write JSON too. In both, uvicorn's access log
gives way to the gateway's per-request line (`app.access`), which says more and
is written once the response is sent (uvicorn writes its line before). No line
carries a key or a secret: the per-request line is built from a fixed list of
fields, and prompt text is added only with LOG_PROMPTS=true.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from app.domain.observation import current_facts

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(levelname)s:     %(name)s: %(message)s"
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error")


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the request id, and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        facts = current_facts()
        if facts is not None:
            line["request_id"] = facts.request_id
        line.update(getattr(record, "fields", None) or {})
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)  # ASCII escapes: a lone surrogate cannot break the stream


class _GatewayHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The app's own handler, recognised when logging is configured again (one per process)."""


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Send the app's log lines to stderr in `log_format`; in JSON mode reformat uvicorn's too."""
    formatter = JsonLineFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    app_logger = logging.getLogger("app")
    app_logger.setLevel(level.upper())
    app_logger.propagate = False
    _use(app_logger, formatter)
    if log_format == "json":
        for name in _UVICORN_LOGGERS:
            for handler in logging.getLogger(name).handlers:
                handler.setFormatter(formatter)
    # app.access writes the richer line, after the response rather than before it as uvicorn does.
    # Without a handler, uvicorn does not even build its line's arguments (it asks hasHandlers()).
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.disabled, uvicorn_access.propagate = True, False
    uvicorn_access.handlers.clear()
    # No format here shows a thread, a process or the calling line: records skip looking them up,
    # as the logging HOWTO's "Optimization" section says (a getpid() system call and a walk up
    # the stack per line, issue 14).
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None  # type: ignore[attr-defined]


def _use(logger: logging.Logger, formatter: logging.Formatter) -> None:
    handler = next((h for h in logger.handlers if isinstance(h, _GatewayHandler)), None)
    if handler is None:
        handler = _GatewayHandler()
        logger.addHandler(handler)
    handler.setFormatter(formatter)
