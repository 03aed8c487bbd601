"""LOCAL_MODEL forms other than the embedded default load through the same code path."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.adapters.local.source import resolve_model_source
from app.adapters.local.transformers.convert import MARKER
from app.adapters.local.provider import LocalProvider
from tests.integration.local_fixtures import ask, embedded_gguf_path, local_provider, transformers_engine
from tests.integration.local_fixtures import local_cache_dir, transformers  # noqa: F401  (fixtures)

pytestmark = pytest.mark.model


@pytest.fixture
def saved_model_dir(local_cache_dir: Path, transformers: LocalProvider) -> Path:
    """A saved transformers model directory (what TinyLlama's download looks like): the converted copy."""
    copies = [marker.parent for marker in local_cache_dir.glob(f"*/{MARKER}")]
    assert copies, "the session's runner wrote no converted copy"
    return copies[0]


async def test_a_model_directory_answers(saved_model_dir: Path) -> None:
    source = resolve_model_source(str(saved_model_dir))
    engine = transformers_engine(None, source=source, weights="auto")
    provider = local_provider(engine, source=source, max_tokens=16)
    try:
        completion = await provider.complete(ask("What is the capital of France?"))
    finally:
        provider.close()

    assert source.gguf_file is None
    assert completion.model == f"local/{saved_model_dir.name}"
    assert completion.text and completion.text.strip()
    assert completion.usage.completion_tokens > 0


def test_a_gguf_file_path_is_taken_as_gguf() -> None:
    gguf = embedded_gguf_path()

    source = resolve_model_source(str(gguf))

    assert (source.path, source.gguf_file, source.name) == (str(gguf.parent), gguf.name, gguf.stem)


def test_a_hub_id_is_passed_to_transformers_as_is() -> None:
    source = resolve_model_source("TinyLlama/TinyLlama-1.1B-Chat-v1.0")

    assert (source.path, source.gguf_file) == ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", None)
    assert source.model_id == "local/TinyLlama/TinyLlama-1.1B-Chat-v1.0"
