"""Model loader port: a provider whose weights load once, at start or on first use."""

from __future__ import annotations

from typing import Protocol


class ModelLoader(Protocol):
    """Something that must load a model before it can answer."""

    @property
    def is_loaded(self) -> bool:
        """True once the model is in memory and requests are served without a load."""
        ...

    async def load(self) -> None:
        """Load the model now; concurrent callers share one load."""
        ...

    def close(self) -> None:
        """Stop the worker thread and let the weights go (at shutdown)."""
        ...
