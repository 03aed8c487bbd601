"""Every endpoint family's router, in the order the app serves them."""

from __future__ import annotations

from types import ModuleType

from fastapi import FastAPI

from app.entrypoints.http.admin import router as admin
from app.entrypoints.http.chat_completions import router as chat_completions
from app.entrypoints.http.completions import router as completions
from app.entrypoints.http.health import router as health
from app.entrypoints.http.models import router as models
from app.entrypoints.http.responses import router as responses
from app.entrypoints.http.seed import router as seed
from app.entrypoints.http.web import router as web

# The modules the container wires (their routes use Provide[...] markers). The order is the
# order routes are tried: the proxy routes first, as most requests are theirs (paths don't overlap).
ROUTER_MODULES: tuple[ModuleType, ...] = (chat_completions, responses, completions, seed, models, admin,
                                          health, web)


def include_routers(app: FastAPI) -> None:
    """Serve every endpoint family."""
    for module in ROUTER_MODULES:
        app.include_router(module.router)
