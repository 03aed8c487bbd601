"""ModelCatalog and CatalogUpstream with a fake model list and fake providers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from app.domain.errors import ModelRetired, RateLimited, UpstreamUnavailable
from app.domain.model_catalog import ModelCatalog
from app.domain.model_routing import CatalogUpstream
from app.domain.models import ChatMessage, ChatRequest, UpstreamModel
from app.domain.rate_limits import RateLimitGate, RateLimits
from tests.unit.fakes import FakeClock, ScriptedLLMProvider

PREFERRED = ["llama-3.3-70b-versatile", "openai/gpt-oss-120b", "openai/gpt-oss-20b"]
LIVE_2026 = [UpstreamModel("openai/gpt-oss-120b", 131072), UpstreamModel("openai/gpt-oss-20b", 131072),
             UpstreamModel("qwen/qwen3.8-27b", 131042), UpstreamModel("whisper-large-v3", 448)]
HELLO = ChatRequest(messages=(ChatMessage(role="user", content="hello"),))


class FakeLister:
    """Answers `list_models` with `models`, or raises `error`; counts the calls."""

    def __init__(self, models: Sequence[UpstreamModel] = LIVE_2026) -> None:
        self.models = list(models)
        self.error: UpstreamUnavailable | None = None
        self.calls = 0

    async def list_models(self) -> list[UpstreamModel]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.models


async def started(lister: FakeLister | None = None, clock: FakeClock | None = None,
                  **kwargs: object) -> ModelCatalog:
    catalog = ModelCatalog(lister=lister or FakeLister(), clock=clock or FakeClock(), preferred=PREFERRED,
                           **kwargs)  # type: ignore[arg-type]
    await catalog.start(wait_seconds=1)
    return catalog


async def test_the_default_route_is_the_live_part_of_the_preference_list() -> None:
    catalog = await started()

    assert catalog.default_route() == ["openai/gpt-oss-120b", "openai/gpt-oss-20b"]
    assert catalog.served_ids() == ["openai/gpt-oss-120b", "openai/gpt-oss-20b", "qwen/qwen3.8-27b"]
    assert catalog.served()[2].context_window == 131042


@pytest.mark.parametrize("requested, route", [
    ("qwen/qwen3.8-27b", ["qwen/qwen3.8-27b", "openai/gpt-oss-120b", "openai/gpt-oss-20b"]),
    ("llama3-70b-8192", ["openai/gpt-oss-120b", "openai/gpt-oss-20b"]),
    ("gpt-3.5-turbo", ["openai/gpt-oss-120b", "openai/gpt-oss-20b"]),
    ("whisper-large-v3", ["openai/gpt-oss-120b", "openai/gpt-oss-20b"]),
    (None, ["openai/gpt-oss-120b", "openai/gpt-oss-20b"]),
])
async def test_a_request_goes_to_its_model_when_served_else_to_the_default_route(
        requested: str | None, route: list[str]) -> None:
    catalog = await started()

    assert catalog.route(requested) == route


async def test_before_the_list_is_read_the_preference_list_is_the_route() -> None:
    lister = FakeLister()
    lister.error = UpstreamUnavailable("down")
    catalog = await started(lister)

    assert catalog.default_route() == PREFERRED
    catalog.retire("llama-3.3-70b-versatile", "404")
    assert catalog.route(None) == PREFERRED[1:]


async def test_a_retired_model_stays_retired_whatever_later_lists_say() -> None:
    lister = FakeLister([*LIVE_2026, UpstreamModel("llama-3.3-70b-versatile")])
    catalog = await started(lister)
    assert catalog.route(None)[0] == "llama-3.3-70b-versatile"

    catalog.retire("llama-3.3-70b-versatile", "model_not_found")
    await catalog.refresh()

    assert catalog.route(None)[0] == "openai/gpt-oss-120b"
    assert "llama-3.3-70b-versatile" not in catalog.served_ids()


async def test_the_list_is_refreshed_once_it_is_due() -> None:
    clock, lister = FakeClock(), FakeLister()
    catalog = await started(lister, clock, refresh_seconds=600)

    clock.advance(seconds=599)
    catalog.route(None)
    assert lister.calls == 1
    clock.advance(seconds=1)
    lister.models = [UpstreamModel("openai/gpt-oss-20b")]
    catalog.route(None)  # starts the refresh in the background
    await let_background_work_run()

    assert lister.calls == 2
    assert catalog.default_route() == ["openai/gpt-oss-20b"]


async def let_background_work_run() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


def router(script: list[object], catalog: ModelCatalog, gate: RateLimitGate) -> tuple[CatalogUpstream,
                                                                                      ScriptedLLMProvider]:
    groq = ScriptedLLMProvider(name="groq", models=[], script=script)
    return CatalogUpstream(upstream=groq, catalog=catalog, gate=gate), groq


async def test_a_model_gone_mid_way_is_retired_and_the_next_one_answers() -> None:
    catalog = await started()
    upstream, groq = router([ModelRetired("model_not_found")], catalog, RateLimitGate(clock=FakeClock()))

    completion = await upstream.complete(HELLO)

    assert completion.model == "openai/gpt-oss-20b"
    assert catalog.default_route() == ["openai/gpt-oss-20b"]
    assert groq.calls == 2


async def test_a_model_whose_limit_is_used_up_is_skipped_until_its_reset() -> None:
    clock = FakeClock()
    gate = RateLimitGate(clock=clock)
    catalog = await started(clock=clock)
    upstream, _ = router([], catalog, gate)
    gate.observe("openai/gpt-oss-120b", RateLimits(remaining_tokens=0, tokens_reset_seconds=7.66))

    skipped = await upstream.complete(HELLO)
    gate.observe("openai/gpt-oss-20b", RateLimits(remaining_requests=0, requests_reset_seconds=30))
    with pytest.raises(RateLimited) as caught:
        await upstream.complete(HELLO)
    clock.advance(seconds=8)
    back = await upstream.complete(HELLO)

    assert skipped.model == "openai/gpt-oss-20b"
    assert caught.value.retry_after == pytest.approx(7.66)
    assert back.model == "openai/gpt-oss-120b"


async def test_with_no_model_left_the_request_fails_over_without_a_call() -> None:
    catalog = await started(FakeLister([UpstreamModel("qwen/qwen3.8-27b")]))
    upstream, groq = router([], catalog, RateLimitGate(clock=FakeClock()))

    with pytest.raises(ModelRetired):
        await upstream.complete(HELLO)
    assert groq.calls == 0
