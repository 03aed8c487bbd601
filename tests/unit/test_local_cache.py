"""The converted-model cache: keyed by source identity, atomic, self-healing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.adapters.local.transformers.convert import MARKER, ConvertedModelCache


def _source(tmp_path: Path, content: bytes = b"gguf bytes") -> Path:
    path = tmp_path / "model.Q4.gguf"
    path.write_bytes(content)
    return path


class RecordingConverter:
    """Writes one file per conversion and counts them."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, directory: Path) -> None:
        self.calls += 1
        (directory / "model.safetensors").write_text(f"conversion {self.calls}")


def test_first_use_converts_and_marks_the_copy_complete(tmp_path: Path) -> None:
    cache, source, convert = ConvertedModelCache(tmp_path / "cache"), _source(tmp_path), RecordingConverter()

    directory, converted = cache.ensure(source, convert)

    assert converted and convert.calls == 1
    assert (directory / MARKER).is_file()
    assert (directory / "model.safetensors").read_text() == "conversion 1"


def test_second_use_reuses_the_copy(tmp_path: Path) -> None:
    cache, source, convert = ConvertedModelCache(tmp_path / "cache"), _source(tmp_path), RecordingConverter()
    first, _ = cache.ensure(source, convert)

    second, converted = ConvertedModelCache(tmp_path / "cache").ensure(source, convert)

    assert second == first and not converted and convert.calls == 1


def test_a_changed_source_file_gets_a_new_copy(tmp_path: Path) -> None:
    cache, source, convert = ConvertedModelCache(tmp_path / "cache"), _source(tmp_path), RecordingConverter()
    first, _ = cache.ensure(source, convert)
    source.write_bytes(b"another model, another size")
    os.utime(source, ns=(1, 1))

    second, converted = cache.ensure(source, convert)

    assert converted and second != first


def test_a_copy_without_marker_is_converted_again(tmp_path: Path) -> None:
    cache, source, convert = ConvertedModelCache(tmp_path / "cache"), _source(tmp_path), RecordingConverter()
    partial = cache.entry(source)
    partial.mkdir(parents=True)
    (partial / "model.safetensors").write_text("half written")

    directory, converted = cache.ensure(source, convert)

    assert converted and (directory / "model.safetensors").read_text() == "conversion 1"


def test_a_failed_conversion_leaves_nothing_behind(tmp_path: Path) -> None:
    cache, source = ConvertedModelCache(tmp_path / "cache"), _source(tmp_path)

    def failing(directory: Path) -> None:
        (directory / "model.safetensors").write_text("partial")
        raise OSError("disk full")

    with pytest.raises(OSError):
        cache.ensure(source, failing)

    assert not cache.is_complete(source)
    assert [p for p in (tmp_path / "cache").iterdir() if p.is_dir()] == []


def test_discard_forces_a_new_conversion(tmp_path: Path) -> None:
    cache, source, convert = ConvertedModelCache(tmp_path / "cache"), _source(tmp_path), RecordingConverter()
    cache.ensure(source, convert)

    cache.discard(source)
    _, converted = cache.ensure(source, convert)

    assert converted and convert.calls == 2

