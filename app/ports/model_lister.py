"""Model lister port: an upstream that says which models it serves now."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from app.domain.models import UpstreamModel


class ModelLister(Protocol):
    """Something that lists the models an upstream serves (Groq's `GET /models`)."""

    async def list_models(self) -> Sequence[UpstreamModel]:
        """The models served now; raises UpstreamUnavailable when the list cannot be read."""
        ...
