"""ChatService routing and failover, with fake providers."""

from __future__ import annotations

import pytest

from app.domain.chat import ChatService
from app.domain.errors import UpstreamRejected, UpstreamUnavailable
from app.domain.model_catalog import ModelCatalog
from app.domain.models import ChatMessage, ChatRequest, UpstreamModel
from tests.unit.fakes import FakeClock, FakeLLMProvider

HELLO = ChatRequest(messages=(ChatMessage(role="user", content="hello"),))


def providers(**upstream_kwargs: object) -> tuple[FakeLLMProvider, FakeLLMProvider]:
    groq = FakeLLMProvider(name="groq", models=["llama-3.3-70b-versatile", "openai/gpt-oss-120b"],
                           answer="from groq", **upstream_kwargs)  # type: ignore[arg-type]
    local = FakeLLMProvider(name="local", models=["local/SmolLM2-135M-Instruct"], answer="from local")
    return groq, local


async def collect(service: ChatService, request: ChatRequest, **kwargs: object) -> tuple[str, set[str]]:
    text, sides = "", set()
    async with await service.open_stream(request, **kwargs) as stream:  # type: ignore[arg-type]
        async for chunk in stream:
            text += chunk.text
            sides.add(chunk.provider)
    return text, sides


async def test_without_groq_key_the_local_provider_answers() -> None:
    _, local = providers()
    service = ChatService(upstream=None, local=local)

    completion = await service.complete(HELLO)

    assert completion.provider == "local"
    assert completion.model == "local/SmolLM2-135M-Instruct"
    assert completion.text == "from local"


async def test_with_groq_configured_groq_answers() -> None:
    groq, local = providers()
    service = ChatService(upstream=groq, local=local)

    completion = await service.complete(HELLO)

    assert completion.provider == "groq"
    assert local.requests == []


async def test_local_route_never_uses_groq() -> None:
    groq, local = providers()
    service = ChatService(upstream=groq, local=local)

    completion = await service.complete(HELLO, route="local")

    assert completion.provider == "local"
    assert groq.requests == []


async def test_unknown_model_name_goes_to_the_default_route() -> None:
    groq, local = providers()
    service = ChatService(upstream=groq, local=local)

    await service.complete(ChatRequest(messages=HELLO.messages, model="gpt-3.5-turbo"))

    assert groq.requests[0].model is None


async def test_naming_the_local_model_routes_locally() -> None:
    groq, local = providers()
    service = ChatService(upstream=groq, local=local)

    completion = await service.complete(ChatRequest(messages=HELLO.messages,
                                                    model="local/SmolLM2-135M-Instruct"))

    assert completion.provider == "local"


async def test_groq_unavailable_falls_back_to_local() -> None:
    groq, local = providers(error=UpstreamUnavailable("down"))
    service = ChatService(upstream=groq, local=local)

    completion = await service.complete(HELLO)

    assert completion.provider == "local"


async def test_named_groq_model_without_fallback_reports_the_outage() -> None:
    groq, local = providers(error=UpstreamUnavailable("down"))
    service = ChatService(upstream=groq, local=local, fallback_to_local=False)

    with pytest.raises(UpstreamUnavailable):
        await service.complete(ChatRequest(messages=HELLO.messages, model="openai/gpt-oss-120b"))
    assert local.requests == []


async def test_client_errors_from_groq_are_not_turned_into_a_fallback() -> None:
    groq, local = providers(error=UpstreamRejected("bad parameter", param="logprobs"))
    service = ChatService(upstream=groq, local=local)

    with pytest.raises(UpstreamRejected):
        await service.complete(HELLO)
    assert local.requests == []


async def test_stream_fails_over_before_the_first_chunk() -> None:
    groq, local = providers(error=UpstreamUnavailable("down"))
    service = ChatService(upstream=groq, local=local)

    text, sides = await collect(service, HELLO)

    assert text == "from local"
    assert sides == {"local"}


async def test_stream_does_not_fail_over_after_the_first_chunk() -> None:
    groq, local = providers(error=UpstreamUnavailable("broke"), error_after_chunks=1)
    service = ChatService(upstream=groq, local=local)

    with pytest.raises(UpstreamUnavailable):
        await collect(service, HELLO)
    assert local.requests == []


async def test_models_come_from_the_catalog_with_their_context_windows() -> None:
    class Lister:
        async def list_models(self) -> list[UpstreamModel]:
            return [UpstreamModel("openai/gpt-oss-120b", 131072), UpstreamModel("whisper-large-v3", 448)]

    catalog = ModelCatalog(lister=Lister(), clock=FakeClock(), preferred=["llama-3.3-70b-versatile"])
    await catalog.refresh()
    groq, local = providers()
    service = ChatService(upstream=groq, local=local, catalog=catalog)

    assert [(m.id, m.provider, m.context_window) for m in service.models()] == [
        ("openai/gpt-oss-120b", "groq", 131072), ("local/SmolLM2-135M-Instruct", "local", None)]
