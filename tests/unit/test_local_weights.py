"""The transformers engine's precision policy: `auto` picks int4 only where the 4-bit kernel is fast."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.adapters.local.transformers import weights


def test_auto_weights_pick_int4_only_with_native_bfloat16(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    with_bf16 = tmp_path / "cpuinfo-bf16"
    with_bf16.write_text("flags\t: fpu sse avx2 avx512f avx512_bf16 amx_tile\n")
    without = tmp_path / "cpuinfo-plain"
    without.write_text("flags\t: fpu sse avx2 avx512f\n")

    assert weights.native_bf16(str(with_bf16)) is True
    assert weights.native_bf16(str(without)) is False
    assert weights.native_bf16(str(tmp_path / "missing")) is False
    monkeypatch.setattr(weights, "native_bf16", lambda: False)
    assert weights.resolve_weights("auto") == "float16"
    monkeypatch.setattr(weights, "native_bf16", lambda: True)
    assert weights.resolve_weights("auto") == "int4"
    assert weights.resolve_weights("float32") == "float32"
