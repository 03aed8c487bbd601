"""The local provider over the transformers engine, with the embedded model: conversion cache, queue,
cancel, limits, weights, batching."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from transformers import AutoModelForCausalLM, AutoTokenizer

from app.adapters.local.provider import LocalProvider
from app.adapters.local.transformers import convert
from app.adapters.local.transformers.convert import MARKER
from app.adapters.local.transformers.fast_decode import FastDecoder
from app.adapters.local.transformers.weights import Fp16Linear, Int4Linear, fp16_linear_weights, int4_groups
from app.main import create_app
from app.settings import Settings
from tests.integration.local_fixtures import (
    LONG_ANSWER,
    MAX_TOKENS,
    ask,
    embedded_gguf_path,
    local_cache_dir,  # noqa: F401  (a fixture)
    new_transformers,
    stream_all,
    transformers,  # noqa: F401  (a fixture)
    transformers_of,
)

pytestmark = pytest.mark.model


@pytest.fixture
def runner(transformers: LocalProvider) -> LocalProvider:
    """The session's loaded provider over the transformers engine."""
    return transformers


def _no_conversion(*args: object) -> None:
    raise AssertionError("the GGUF file was converted again")


async def test_first_load_converts_then_later_loads_reuse_the_copy(
        runner: LocalProvider, local_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = transformers_of(runner).load_info
    assert info is not None and info.converted
    copy = Path(info.path)
    assert copy.parent == local_cache_dir and (copy / MARKER).is_file()
    monkeypatch.setattr(convert, "convert_gguf", _no_conversion)
    again = new_transformers(local_cache_dir)

    await again.load()
    answer = await again.complete(ask("Say hello.", max_tokens=8))

    again_info = transformers_of(again).load_info
    assert again_info is not None and not again_info.converted
    assert again_info.path == str(copy)
    assert answer.text
    again.close()


async def test_a_corrupt_copy_is_converted_again(runner: LocalProvider, tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    info = transformers_of(runner).load_info
    assert info is not None
    source_copy = Path(info.path)
    broken = tmp_path / "cache" / source_copy.name
    shutil.copytree(source_copy, broken)
    with (broken / "model.safetensors").open("r+b") as weights:
        weights.truncate(1000)
    provider = new_transformers(tmp_path / "cache")

    caplog.set_level("INFO", logger="app")
    await provider.load()
    answer = await provider.complete(ask("Say hello.", max_tokens=8))

    reloaded = transformers_of(provider).load_info
    assert reloaded is not None and reloaded.converted
    assert (broken / MARKER).is_file()
    assert (broken / "model.safetensors").stat().st_size > 1000
    assert any("unreadable" in r.getMessage() for r in caplog.records)
    assert answer.text
    provider.close()


async def test_concurrent_first_requests_load_the_model_once(local_cache_dir: Path,
                                                             runner: LocalProvider) -> None:
    provider = new_transformers(local_cache_dir)
    loads = 0
    engine = transformers_of(provider)
    real_load = engine.load

    def counting_load() -> int:
        nonlocal loads
        loads += 1
        return real_load()

    engine.load = counting_load  # type: ignore[method-assign]

    answers = await asyncio.gather(*(provider.complete(ask(f"Say {word}.", max_tokens=3))
                                     for word in ("one", "two", "three")))

    assert loads == 1
    assert all(a.usage.completion_tokens > 0 for a in answers)
    provider.close()


async def test_streams_text_and_reports_usage(runner: LocalProvider) -> None:
    chunks = await stream_all(runner, ask("What is the capital of France?", max_tokens=16))

    text = "".join(c.text for c in chunks)
    assert text.strip()
    assert chunks[-1].finish_reason in ("stop", "length")
    assert chunks[-1].usage is not None and 0 < chunks[-1].usage.completion_tokens <= 16


async def test_max_tokens_is_capped_by_local_max_tokens(runner: LocalProvider) -> None:
    answer = await runner.complete(ask(LONG_ANSWER, max_tokens=10_000))

    assert answer.finish_reason == "length"
    assert answer.usage.completion_tokens == MAX_TOKENS


async def test_int4_and_fp16_weights_give_the_float32_greedy_text(local_cache_dir: Path,
                                                                runner: LocalProvider) -> None:
    exact = new_transformers(local_cache_dir, weights="float32")

    half = new_transformers(local_cache_dir, weights="float16")

    fast_text = (await runner.complete(ask(LONG_ANSWER, max_tokens=24))).text
    half_text = (await half.complete(ask(LONG_ANSWER, max_tokens=24))).text
    exact_text = (await exact.complete(ask(LONG_ANSWER, max_tokens=24))).text

    assert fast_text == exact_text
    assert half_text == exact_text
    exact.close()
    half.close()


def test_the_embedded_gguf_is_present() -> None:
    assert embedded_gguf_path().is_file()


def test_preload_at_start_then_readyz_and_local_chat_answer(local_cache_dir: Path, tmp_path: Path,
                                                            runner: LocalProvider) -> None:
    settings = Settings(_env_file=None, key_file=str(tmp_path / "key.json"), local_preload=True,
                        local_model_cache=str(local_cache_dir), local_max_tokens=8)
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 120
        while (ready := client.get("/readyz")).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
        key = client.app.state.container.key_service().current().value  # type: ignore[attr-defined]
        answer = client.post("/local-chat", json={"prompt": "Say hello."}, headers={"x-api-key": key})

    assert ready.status_code == 200 and ready.json()["local"]["state"] == "loaded"
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-provider"] == "local"
    assert answer.json()["choices"][0]["message"]["content"]


async def test_concurrent_requests_generate_as_one_batch_with_the_same_text(
        local_cache_dir: Path, runner: LocalProvider) -> None:
    prompts = [LONG_ANSWER, "What is the capital of France?", "Name three colours."]
    alone = [await runner.complete(ask(p, max_tokens=24)) for p in prompts]
    batching = new_transformers(local_cache_dir, batch_window=0.5)
    await batching.load()

    together = await asyncio.gather(*(batching.complete(ask(p, max_tokens=24)) for p in prompts))

    assert batching.largest_batch == len(prompts)
    assert [a.text for a in together] == [a.text for a in alone]
    assert [a.usage for a in together] == [a.usage for a in alone]
    batching.close()


def test_the_decode_loop_gives_generate_s_greedy_text(runner: LocalProvider) -> None:
    info = transformers_of(runner).load_info
    assert info is not None
    copy = info.path
    tokenizer = AutoTokenizer.from_pretrained(copy)
    model = fp16_linear_weights(AutoModelForCausalLM.from_pretrained(copy, dtype=torch.float16).eval())
    encoded = tokenizer.apply_chat_template([{"role": "user", "content": LONG_ANSWER}], add_generation_prompt=True,
                                            return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        output = model.generate(**encoded, max_new_tokens=24, do_sample=False)
    by_generate = tokenizer.decode(output[0, encoded["input_ids"].shape[1]:], skip_special_tokens=True)

    by_runner = asyncio.run(runner.complete(ask(LONG_ANSWER, max_tokens=24))).text

    assert by_runner == by_generate


async def test_int4_decode_steps_outside_transformers_give_its_forward_s_text(
        runner: LocalProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    model = transformers_of(runner).model
    assert model is not None and FastDecoder.fits(model)
    fast = await runner.complete(ask(LONG_ANSWER, max_tokens=32))
    monkeypatch.setattr(FastDecoder, "fits", staticmethod(lambda model: False))

    by_forward = await runner.complete(ask(LONG_ANSWER, max_tokens=32))

    assert fast.text == by_forward.text and fast.usage == by_forward.usage


def test_int4_keeps_4_bit_copies_only_of_weights_4_bits_reproduce() -> None:
    torch.manual_seed(0)
    codes = torch.randint(0, 16, (64, 4, 32)).float()
    codes[..., 0], codes[..., 1] = 0, 15  # a Q4_1 block uses its lowest and highest code
    four_bit = (codes * torch.rand(64, 4, 1) * 0.01 - torch.rand(64, 4, 1) * 0.05).reshape(64, 128)
    trained = torch.randn(64, 128) * 0.02

    groups = int4_groups(four_bit.half())
    assert groups is not None
    packed, scales_zeros = groups
    rebuilt = torch.ops.aten._weight_int4pack_mm_for_cpu(torch.eye(128, dtype=torch.bfloat16), packed, 32,
                                                         scales_zeros).float().t()
    assert torch.allclose(rebuilt, four_bit, rtol=0.01, atol=1e-3)
    assert int4_groups(trained.half()) is None


def test_the_int4_runner_decodes_the_embedded_model_with_4_bit_layers(runner: LocalProvider) -> None:
    model = transformers_of(runner).model
    assert model is not None
    linear = [m for m in model.modules() if isinstance(m, Fp16Linear)]  # Int4Linear is one too
    four_bit = [m for m in linear if isinstance(m, Int4Linear)]

    assert len(four_bit) == len(linear) - 1  # all but the head, tied to the embedding table
    assert type(model.get_output_embeddings()) is Fp16Linear
    # q, k, v and gate, up of every layer each decode as one product
    assert sum(getattr(m, "shared", None) is not None for m in model.modules()) == 5 * model.config.num_hidden_layers
