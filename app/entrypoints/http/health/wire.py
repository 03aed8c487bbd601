"""Wire models of the health endpoints."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Health(BaseModel):
    """The process is up."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """The server answers without waiting for a model load."""

    status: Literal["ready"] = "ready"
    local_model: Literal["loaded", "loads on first use"]
