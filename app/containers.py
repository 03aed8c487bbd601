"""The one place that knows every adapter: wires ports to adapters from settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from dependency_injector import containers, providers
from pydantic import SecretStr

from app.adapters.openai_compatible import OpenAICompatibleProvider, groq_endpoint, local_server_endpoint
from app.adapters.openai_compatible.transport import open_upstream_http
from app.adapters.hmac_derived_key_store import HmacDerivedKeyStore
from app.adapters.json_file_key_store import JsonFileKeyStore
from app.adapters.local.provider import LocalProvider
from app.adapters.local.source import resolve_model_source
from app.adapters.system_clock import SystemClock
from app.adapters.telemetry import telemetry_from_environment
from app.domain.attempts import ClientAddressPolicy, FailedAttemptLimiter
from app.domain.chat import ChatService
from app.domain.circuit_breaker import CircuitBreaker
from app.domain.failover import ResilientUpstream, RetryPolicy
from app.domain.instrumented import InstrumentedProvider
from app.domain.keys import AdminGuard, KeyRotationService
from app.domain.model_catalog import ModelCatalog
from app.domain.model_routing import CatalogUpstream
from app.domain.rate_limits import RateLimitGate
from app.domain.readiness import LocalWarmup
from app.domain.response_store import ResponseStore
from app.ports import LLMProvider
from app.settings import Settings

if TYPE_CHECKING:  # the engines import heavy or optional packages: load them only when selected
    from app.adapters.local.llamacpp import LlamaCppEngine
    from app.adapters.local.transformers.engine import TransformersEngine


def transformers_engine(**kwargs: Any) -> TransformersEngine:
    """The torch engine, imported only when selected (torch alone takes ~300 MB of memory)."""
    from app.adapters.local.transformers.engine import TransformersEngine

    return TransformersEngine(**kwargs)


def llamacpp_engine(**kwargs: Any) -> LlamaCppEngine:
    """The llama.cpp engine, imported only when selected: llama-cpp-python is an optional extra."""
    from app.adapters.local.llamacpp import LlamaCppEngine

    return LlamaCppEngine(**kwargs)


# How long start-up waits for Groq's model list before serving (it goes on in the background).
MODELS_STARTUP_WAIT_SECONDS = 3.0


def reveal(secret: SecretStr | None) -> str | None:
    """A secret's value for the adapter that needs it (unwrapped here only); None when unset."""
    return secret.get_secret_value() if secret is not None else None


def reveal_or_empty(secret: SecretStr | None) -> str:
    """A secret's value, or "" when unset (for adapters that send it only when set)."""
    return secret.get_secret_value() if secret is not None else ""


def local_tier(local_runner: str) -> str:
    """`server` for an OpenAI-compatible inference server; `engine` for an in-process engine."""
    return "server" if local_runner == "server" else "engine"


def upstream_choice(groq_api_key: SecretStr | None) -> str:
    """`groq` when a Groq key is set; `none` otherwise: every request is served locally."""
    return "groq" if groq_api_key is not None else "none"


def catalog_of(upstream: LLMProvider | None) -> ModelCatalog | None:
    """The live-model catalog behind the upstream, when it routes by one (tests may swap the upstream)."""
    if isinstance(upstream, InstrumentedProvider):
        upstream = upstream.inner
    return upstream.catalog if isinstance(upstream, CatalogUpstream) else None


async def keep_models_fresh(*, catalog: ModelCatalog | None) -> AsyncIterator[ModelCatalog | None]:
    """Read the upstream's model list at start (briefly), and stop a refresh in flight at shutdown."""
    if catalog is not None:
        await catalog.start(wait_seconds=MODELS_STARTUP_WAIT_SECONDS)
    try:
        yield catalog
    finally:
        if catalog is not None:
            await catalog.close()


def guard_upstream(*, upstream: LLMProvider | None, **guards: Any) -> ResilientUpstream | None:
    """The upstream behind retries and the circuit breaker; None when there is no upstream."""
    return None if upstream is None else ResilientUpstream(upstream=upstream, **guards)


class Container(containers.DeclarativeContainer):
    """Dependency-injection container of the server; `create_app()` supplies the settings."""

    settings = providers.Dependency(instance_of=Settings)

    telemetry = providers.Singleton(telemetry_from_environment,
                                    otlp_endpoint=settings.provided.otel_exporter_otlp_endpoint)
    clock = providers.Singleton(SystemClock)
    key_store = providers.Selector(
        settings.provided.key_store,
        file=providers.Singleton(JsonFileKeyStore, path=settings.provided.key_file),
        derived=providers.Singleton(HmacDerivedKeyStore, secret=providers.Callable(reveal, settings.provided.key_secret),
                                    clock=clock, rotation_days=settings.provided.key_rotation_days))
    key_service = providers.Singleton(
        KeyRotationService, store=key_store, clock=clock, rotation_days=settings.provided.key_rotation_days,
        grace_seconds=settings.provided.key_grace_seconds, telemetry=telemetry)
    admin_guard = providers.Singleton(AdminGuard, secret=providers.Callable(reveal, settings.provided.admin_secret))
    attempt_limiter = providers.Singleton(
        FailedAttemptLimiter, clock=clock, max_failures=settings.provided.auth_max_failures,
        window_seconds=settings.provided.auth_failure_window_seconds, telemetry=telemetry)
    client_addresses = providers.Singleton(
        ClientAddressPolicy, trust_proxy_headers=settings.provided.trust_proxy_headers,
        trusted_hops=settings.provided.trusted_proxy_hops)

    groq_endpoint_config = providers.Singleton(
        groq_endpoint, api_key=providers.Callable(reveal_or_empty, settings.provided.groq_api_key),
        base_url=settings.provided.groq_base_url,
        total_seconds=settings.provided.groq_timeout_seconds,
        first_chunk_seconds=settings.provided.groq_first_chunk_timeout_seconds,
        idle_seconds=settings.provided.groq_stream_idle_timeout_seconds)
    upstream_http = providers.Resource(open_upstream_http, base_url=groq_endpoint_config.provided.base_url)
    rate_limit_gate = providers.Singleton(RateLimitGate, clock=clock)
    groq_adapter = providers.Singleton(
        OpenAICompatibleProvider, http=upstream_http, on_rate_limits=rate_limit_gate.provided.observe,
        endpoint=groq_endpoint_config)
    model_catalog = providers.Singleton(
        ModelCatalog, lister=groq_adapter, clock=clock, preferred=settings.provided.groq_model_list.call(),
        refresh_seconds=settings.provided.groq_models_refresh_seconds)
    groq = providers.Singleton(CatalogUpstream, upstream=groq_adapter, catalog=model_catalog, gate=rate_limit_gate)

    # The local tier: the one LocalProvider over the engine LOCAL_RUNNER picks, or an
    # OpenAI-compatible inference server (LOCAL_RUNNER=server) through the adapter Groq uses.
    local_source = providers.Singleton(resolve_model_source, settings.provided.local_model)
    local_engine = providers.Selector(
        settings.provided.local_runner,
        transformers=providers.Factory(
            transformers_engine, source=local_source, threads=settings.provided.local_threads,
            cache_dir=settings.provided.local_model_cache, weights=settings.provided.local_weights,
            context_tokens=settings.provided.local_context_tokens, batch_size=settings.provided.local_batch_size),
        llamacpp=providers.Factory(
            llamacpp_engine, source=local_source, threads=settings.provided.local_threads,
            context_tokens=settings.provided.local_context_tokens),
    )
    local_http = providers.Resource(open_upstream_http, base_url=settings.provided.local_server_url)
    local = providers.Selector(
        providers.Callable(local_tier, settings.provided.local_runner),
        engine=providers.Singleton(
            LocalProvider, engine=local_engine, model_id=local_source.provided.model_id,
            max_tokens=settings.provided.local_max_tokens, max_queue=settings.provided.local_max_queue),
        server=providers.Singleton(
            OpenAICompatibleProvider, http=local_http,
            endpoint=providers.Callable(
                local_server_endpoint, base_url=settings.provided.local_server_url,
                api_key=providers.Callable(reveal_or_empty, settings.provided.local_server_api_key),
                model=settings.provided.local_server_model,
                timeout_seconds=settings.provided.local_server_timeout_seconds)),
    )
    local_warmup = providers.Singleton(LocalWarmup)
    # Every model call reported (span, tokens, errors by kind, time waited for the model).
    observed_groq = providers.Singleton(InstrumentedProvider, inner=groq, telemetry=telemetry, upstream=True)
    observed_local = providers.Singleton(InstrumentedProvider, inner=local, telemetry=telemetry)
    upstream = providers.Selector(providers.Callable(upstream_choice, settings.provided.groq_api_key),
                                  groq=observed_groq, none=providers.Object(None))

    sleep = providers.Object(asyncio.sleep)  # tests swap in one that does not wait
    circuit_breaker = providers.Singleton(
        CircuitBreaker, clock=clock, failure_threshold=settings.provided.circuit_failure_threshold,
        cooldown_seconds=settings.provided.circuit_cooldown_seconds)
    retry_policy = providers.Singleton(
        RetryPolicy, max_retries=settings.provided.groq_max_retries,
        base_seconds=settings.provided.groq_retry_base_seconds,
        max_retry_after_seconds=settings.provided.groq_max_retry_after_seconds,
        deadline_seconds=settings.provided.groq_request_deadline_seconds)
    guarded_upstream = providers.Singleton(
        guard_upstream, upstream=upstream, breaker=circuit_breaker, policy=retry_policy, sleep=sleep,
        telemetry=telemetry)

    upstream_catalog = providers.Singleton(catalog_of, upstream)
    models_refresh = providers.Resource(keep_models_fresh, catalog=upstream_catalog)

    chat_service = providers.Singleton(
        ChatService, upstream=guarded_upstream, local=observed_local,
        fallback_to_local=settings.provided.fallback_to_local, catalog=upstream_catalog, telemetry=telemetry)
    response_store = providers.Singleton(
        ResponseStore, clock=clock, max_stored=settings.provided.responses_max_stored,
        ttl_seconds=settings.provided.responses_ttl_seconds)
