"""Composition root: `create_app()` builds the container and the FastAPI app.

Run with `uvicorn app.main:create_app --factory`. Nothing is loaded at import time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.containers import Container, config_from_settings
from app.entrypoints.http import auth, routes_health, routes_seed
from app.entrypoints.http.errors import install_error_handlers
from app.settings import Settings

log = logging.getLogger("app")

WIRED_MODULES = [auth, routes_health, routes_seed]


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    """Build a new app with its own container (tests may pass either)."""
    settings = settings or Settings()
    container = container or Container()
    container.config.from_dict(config_from_settings(settings))
    container.wire(modules=WIRED_MODULES)
    logging.getLogger("app").setLevel(settings.log_level.upper())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await container.init_resources()
        key = container.key_service().current()  # boot: rotate a missing or expired key
        log.info("client key valid until %s (read it from %s or GET /current-key)",
                 key.expires_at.isoformat(), settings.key_file)
        if not settings.groq_api_key:
            log.info("GROQ_API_KEY is not set: every request is served by the local model")
        preload = None
        if settings.local_preload:
            preload = asyncio.create_task(container.local().load())
        try:
            yield
        finally:
            if preload is not None and not preload.done():
                preload.cancel()
            await container.shutdown_resources()
            container.local().close()

    app = FastAPI(title="AI API server", version="0.1.0",
                  description="OpenAI-compatible chat gateway: Groq upstream, local CPU model fallback.",
                  lifespan=lifespan)
    app.state.container = container
    install_error_handlers(app)
    app.include_router(routes_seed.router)
    app.include_router(routes_health.router)
    return app
