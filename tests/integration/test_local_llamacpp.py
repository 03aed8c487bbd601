"""The local provider over the llama.cpp engine, with the embedded GGUF model (skipped without
llama-cpp-python)."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from app.adapters.local.provider import LocalProvider
from app.containers import Container
from app.settings import Settings
from tests.integration.local_fixtures import LONG_ANSWER, MAX_TOKENS, ask, shared_llamacpp, stream_all
from tests.integration.local_fixtures import local_cache_dir, transformers  # noqa: F401  (fixtures)

pytest.importorskip("llama_cpp")

from app.adapters.local.llamacpp import LlamaCppEngine  # noqa: E402  (needs llama_cpp to be useful)

pytestmark = pytest.mark.model


def test_llama_cpp_is_built_for_any_avx2_cpu_not_for_this_one() -> None:
    """`make install` compiles llama.cpp with GGML_NATIVE=OFF (see the Makefile).

    A native build runs the AVX-512 and AMX code of a CPU that lists them: on a VM that lists
    AMX without granting it, the first matrix product killed the process (a general-protection
    fault on `ldtilecfg`), the test run with it.
    """
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()

    if platform.machine() == "x86_64":
        assert "AVX2 = 1" in info, info
    assert "AVX512 = 1" not in info and "AMX_INT8 = 1" not in info, info


@pytest.fixture
def llama() -> LocalProvider:
    """The session's loaded provider over the llama.cpp engine (it loads in well under a second)."""
    return shared_llamacpp()


async def test_both_runners_answer_the_same_prompt(llama: LocalProvider,
                                                   transformers: LocalProvider) -> None:
    request = ask("What is the capital of France? Answer in one sentence.", max_tokens=24)

    by_llama = await llama.complete(request)
    by_transformers = await transformers.complete(request)

    assert by_llama.text and by_llama.text.strip()
    assert by_transformers.text and by_transformers.text.strip()
    assert by_llama.provider == by_transformers.provider == "local"
    assert by_llama.usage.prompt_tokens == by_transformers.usage.prompt_tokens  # same template, same vocab


async def test_streams_text_with_usage_and_caps_max_tokens(llama: LocalProvider) -> None:
    chunks = await stream_all(llama, ask(LONG_ANSWER, max_tokens=10_000))

    assert "".join(c.text for c in chunks).strip()
    assert chunks[-1].finish_reason == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == MAX_TOKENS


async def test_stop_sequence_ends_the_answer_early(llama: LocalProvider) -> None:
    full = await llama.complete(ask(LONG_ANSWER, max_tokens=32))
    assert full.text and "," in full.text

    cut = await llama.complete(ask(LONG_ANSWER, max_tokens=32, stop=(",",)))

    assert cut.text == full.text[: full.text.index(",")]
    assert cut.finish_reason == "stop"


def test_the_container_selects_llamacpp_from_settings(tmp_path: Path) -> None:
    container = Container()
    container.settings.override(Settings(_env_file=None, key_file=str(tmp_path / "key.json"),
                                         local_runner="llamacpp"))

    assert isinstance(container.local().engine, LlamaCppEngine)
