"""The one place that knows every adapter: wires ports to adapters from settings."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
from dependency_injector import containers, providers

from app.adapters.groq import GroqProvider
from app.adapters.hmac_derived_key_store import HmacDerivedKeyStore
from app.adapters.json_file_key_store import JsonFileKeyStore
from app.adapters.local_model import resolve_model_source
from app.adapters.system_clock import SystemClock
from app.adapters.telemetry import telemetry_from_environment
from app.domain.attempts import FailedAttemptLimiter
from app.domain.chat import ChatService
from app.domain.circuit_breaker import CircuitBreaker
from app.domain.failover import ResilientUpstream, RetryPolicy
from app.domain.instrumented import InstrumentedProvider
from app.domain.keys import AdminGuard, KeyRotationService
from app.domain.readiness import LocalWarmup, ServiceKeyHealth
from app.ports import LLMProvider
from app.settings import Settings

if TYPE_CHECKING:  # the runners import heavy or optional packages: load them only when selected
    from app.adapters.llamacpp_runner import LlamaCppProvider
    from app.adapters.transformers_runner import TransformersProvider


def transformers_provider(**kwargs: Any) -> TransformersProvider:
    """The torch runner, imported only when selected (torch alone takes ~300 MB of memory)."""
    from app.adapters.transformers_runner import TransformersProvider

    return TransformersProvider(**kwargs)


def llamacpp_provider(**kwargs: Any) -> LlamaCppProvider:
    """The llama.cpp runner, imported only when selected: llama-cpp-python is an optional extra."""
    from app.adapters.llamacpp_runner import LlamaCppProvider

    return LlamaCppProvider(**kwargs)


async def open_http_client(*, timeout: float) -> AsyncIterator[httpx.AsyncClient]:
    """A pooled HTTP client for the upstream, closed with the app."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout),
                                 limits=httpx.Limits(max_connections=100, max_keepalive_connections=20)) as client:
        yield client


def config_from_settings(settings: Settings) -> dict[str, Any]:
    """Plain values for the container's Configuration (secrets unwrapped here only)."""
    groq_key = settings.groq_api_key.get_secret_value() if settings.groq_api_key else ""
    admin = settings.admin_secret.get_secret_value() if settings.admin_secret else None
    key_secret = settings.key_secret.get_secret_value() if settings.key_secret else ""
    return {
        **settings.model_dump(exclude={"groq_api_key", "admin_secret", "groq_models", "key_secret"}),
        "groq_api_key": groq_key,
        "admin_secret": admin,
        "key_secret": key_secret,
        "groq_models": settings.groq_model_list(),
        "upstream": "groq" if groq_key else "none",
    }


def guard_upstream(*, upstream: LLMProvider | None, **guards: Any) -> ResilientUpstream | None:
    """The upstream behind retries and the circuit breaker; None when there is no upstream."""
    return None if upstream is None else ResilientUpstream(upstream=upstream, **guards)


class Container(containers.DeclarativeContainer):
    """Dependency-injection container of the server."""

    config = providers.Configuration()

    telemetry = providers.Singleton(telemetry_from_environment, otlp_endpoint=config.otel_exporter_otlp_endpoint)
    clock = providers.Singleton(SystemClock)
    key_store = providers.Selector(
        config.key_store,
        file=providers.Singleton(JsonFileKeyStore, path=config.key_file),
        derived=providers.Singleton(HmacDerivedKeyStore, secret=config.key_secret, clock=clock,
                                    rotation_days=config.key_rotation_days.as_float()))
    key_service = providers.Singleton(
        KeyRotationService, store=key_store, clock=clock,
        rotation_days=config.key_rotation_days.as_float(),
        grace_seconds=config.key_grace_seconds.as_float(), telemetry=telemetry)
    key_health = providers.Singleton(ServiceKeyHealth, keys=key_service, store=key_store)
    admin_guard = providers.Singleton(AdminGuard, secret=config.admin_secret)
    attempt_limiter = providers.Singleton(
        FailedAttemptLimiter, clock=clock, max_failures=config.auth_max_failures.as_int(),
        window_seconds=config.auth_failure_window_seconds.as_float(), telemetry=telemetry)

    http_client = providers.Resource(open_http_client, timeout=config.groq_timeout_seconds.as_float())
    groq = providers.Singleton(
        GroqProvider, client=http_client, api_key=config.groq_api_key,
        models=config.groq_models, base_url=config.groq_base_url)
    local_source = providers.Singleton(resolve_model_source, config.local_model)
    local = providers.Selector(
        config.local_runner,
        transformers=providers.Singleton(
            transformers_provider, source=local_source, max_tokens=config.local_max_tokens.as_int(),
            threads=config.local_threads, max_queue=config.local_max_queue.as_int(),
            cache_dir=config.local_model_cache, weights=config.local_weights,
            context_tokens=config.local_context_tokens.as_int(),
            batch_size=config.local_batch_size.as_int()),
        llamacpp=providers.Singleton(
            llamacpp_provider, source=local_source, max_tokens=config.local_max_tokens.as_int(),
            threads=config.local_threads, max_queue=config.local_max_queue.as_int(),
            context_tokens=config.local_context_tokens.as_int()),
    )
    local_warmup = providers.Singleton(LocalWarmup)
    observed_groq = providers.Singleton(InstrumentedProvider, inner=groq, telemetry=telemetry, upstream=True)
    observed_local = providers.Singleton(InstrumentedProvider, inner=local, telemetry=telemetry)
    upstream = providers.Selector(config.upstream, groq=observed_groq, none=providers.Object(None))

    sleep = providers.Object(asyncio.sleep)  # tests swap in one that does not wait
    circuit_breaker = providers.Singleton(
        CircuitBreaker, clock=clock, failure_threshold=config.circuit_failure_threshold.as_int(),
        cooldown_seconds=config.circuit_cooldown_seconds.as_float())
    retry_policy = providers.Singleton(
        RetryPolicy, max_retries=config.groq_max_retries.as_int(),
        base_seconds=config.groq_retry_base_seconds.as_float(),
        max_retry_after_seconds=config.groq_max_retry_after_seconds.as_float())
    guarded_upstream = providers.Singleton(
        guard_upstream, upstream=upstream, breaker=circuit_breaker, policy=retry_policy, sleep=sleep,
        telemetry=telemetry)

    chat_service = providers.Singleton(
        ChatService, upstream=guarded_upstream, local=observed_local, fallback_to_local=config.fallback_to_local,
        telemetry=telemetry)
