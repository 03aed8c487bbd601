"""Composition root: `create_app()` builds the container and the FastAPI app.

Run with `uvicorn app.main:create_app --factory`. Nothing is loaded at import time.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import multiprocessing
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from fastapi import FastAPI

from app.containers import Container
from app.domain.errors import KeyStoreUnavailable
from app.domain.keys import KeyRotationService
from app.entrypoints.http import auth, observability
from app.entrypoints.http.client_key import ClientKeyMiddleware, declare_client_key
from app.entrypoints.http.errors import install_error_handlers
from app.entrypoints.http.lane import GenerationLane
from app.entrypoints.http.limits import install_limits
from app.entrypoints.http.routes import ROUTER_MODULES, include_routers
from app.ports.model_loader import ModelLoader
from app.settings import Settings

log = logging.getLogger("app")

WIRED_MODULES = [auth, *ROUTER_MODULES, *observability.WIRED_MODULES]


async def _settled(value: Any) -> Any:
    """`value`, awaited if needed: with async resources, the container may hand out futures."""
    return await value if inspect.isawaitable(value) else value


async def _announce_client_key(keys: KeyRotationService, settings: Settings) -> None:
    """Boot: rotate a missing or expired key and say where to read it; a broken store is logged, not raised."""
    try:
        key = await keys.current_async()
    except KeyStoreUnavailable:
        return  # the key service logged what is wrong; authenticated requests answer 503 until it is fixed
    source = settings.key_file if settings.key_store == "file" else "KEY_SECRET (derived)"
    log.info("client key valid until %s (read it from %s or GET /current-key)",
             key.expires_at.isoformat(), source)
    health = await keys.health_async()
    if not health.writable:
        log.warning("client keys: %s; the key in hand works until it expires", health.message)


def _warn_if_metrics_per_worker(shared: bool) -> None:
    """In one of uvicorn's worker processes, say that `/metrics` shows that worker alone unless they share."""
    if not shared and multiprocessing.parent_process() is not None:
        log.warning("this server runs in a worker process (uvicorn --workers or --reload): /metrics shows "
                    "this worker's numbers alone; set PROMETHEUS_MULTIPROC_DIR to an empty directory to "
                    "sum them over the workers")


# Young-generation threshold: a request leaves almost no cyclic garbage, but 16 requests in flight
# hold a few thousand containers; at Python's 700 the collector ran every 5 requests (issue 14).
GC_YOUNG_THRESHOLD = 7_000


@contextmanager
def _settled_heap() -> Iterator[None]:
    """While serving, keep the garbage collector off what start-up built, and run it less often.

    What start-up built lives as long as the app (torch alone is ~200,000 objects): frozen, it is
    out of the collector's sight, and a full collection under load took ~3 ms instead of ~250 ms,
    a stall of every request in flight (measured with gc.callbacks). At shutdown it is handed
    back to the collector (a process may build several apps, as the tests do).
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastAPI:
    """Build a new app with its own container (tests may pass either)."""
    settings = settings or Settings()
    container = container or Container()
    container.settings.override(settings)
    container.wire(modules=WIRED_MODULES)
    observability.configure_logging(settings.log_level, settings.log_format)
    telemetry = container.telemetry()
    telemetry.watch_circuit(container.circuit_breaker())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await _settled(container.init_resources())
        await _announce_client_key(await _settled(container.key_service()), settings)
        if not settings.groq_api_key:
            log.info("GROQ_API_KEY is not set: every request is served by the local model")
        local: ModelLoader = await _settled(container.local())
        queue = getattr(local, "admission", None)  # the runners' admission queue (test fakes have none)
        if queue is not None:
            telemetry.watch_local_queue(queue)
        warmup = container.local_warmup()
        if settings.local_preload:
            warmup.start(local)
        _warn_if_metrics_per_worker(telemetry.shared_dir is not None)
        sharing = asyncio.create_task(telemetry.share_with_workers())
        try:
            with _settled_heap():
                yield
        finally:
            sharing.cancel()
            warmup.cancel()
            local.close()
            await _settled(container.shutdown_resources())

    app = FastAPI(title="AI API server", version="0.1.0",
                  description="OpenAI-compatible chat gateway: Groq upstream, local CPU model fallback.",
                  lifespan=lifespan, telemetry=observability.native_telemetry(telemetry))
    app.state.container = container
    install_error_handlers(app)
    app.add_middleware(GenerationLane)  # innermost: generation requests skip the router (lane.py)
    app.add_middleware(ClientKeyMiddleware)  # the key before the body is read at all
    install_limits(app, settings)  # a body over the limit is refused before anything else is done
    # Outside both: a 413 or a 401 is counted and logged too, with its request id.
    observability.install_observability(app, telemetry=telemetry, log_format=settings.log_format,
                                        log_prompts=settings.log_prompts)
    include_routers(app)
    declare_client_key(app)
    return app
