"""GGUF models for transformers: converted once into a cache of safetensors copies, loaded from it later.

Converting a GGUF file for transformers takes tens of seconds (dequantization,
tokenizer built from the GGUF vocabulary); loading the converted copy takes one
or two. The cache keys a copy by the identity of its source file. A copy is
written to a temporary directory, marked complete last and renamed into place,
so a crash mid-way leaves nothing that looks usable.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
from filelock import FileLock
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

log = logging.getLogger(__name__)

Loaded = TypeVar("Loaded")

MARKER = "conversion-complete"
DEFAULT_CACHE_DIR = "~/.cache/ai-api-server/models"


def source_key(source: Path) -> str:
    """Short hash of the file's absolute path, size and modification time."""
    stat = source.stat()
    identity = f"{source.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


class ConvertedModelCache:
    """Finds or makes the converted copy of a source file under `root`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    def entry(self, source: Path) -> Path:
        """Where the converted copy of `source` lives (whether or not it exists yet)."""
        return self.root / f"{source.stem}-{source_key(source)}"

    def is_complete(self, source: Path) -> bool:
        """True when a finished copy of this very source file is present."""
        return (self.entry(source) / MARKER).is_file()

    def discard(self, source: Path) -> None:
        """Remove the copy of `source` (it turned out unreadable)."""
        shutil.rmtree(self.entry(source), ignore_errors=True)

    def ensure(self, source: Path, convert: Callable[[Path], None]) -> tuple[Path, bool]:
        """The complete copy's directory, and whether `convert` had to run to make it.

        `convert(directory)` writes the copy's files into an empty directory.
        Processes sharing the cache convert one at a time; the others then reuse it.
        """
        target = self.entry(source)
        if (target / MARKER).is_file():
            return target, False
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):
            if (target / MARKER).is_file():  # another process converted it meanwhile
                return target, False
            if target.exists():
                log.warning("discarding incomplete converted copy %s", target)
                shutil.rmtree(target, ignore_errors=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=self.root))
            staging.chmod(0o755)
            try:
                convert(staging)
                (staging / MARKER).write_text(f"{source.resolve()}\n")
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return target, True


def convert_gguf(gguf: Path, directory: Path) -> None:
    """Write a safetensors copy (float16) and the tokenizer files of a GGUF model into `directory`."""
    log.info("converting %s for transformers into %s (one-time: later starts load the copy)", gguf, directory)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # The weights were 4- to 8-bit with float16 scales: float16 keeps them all but exactly.
    state: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:  # tied weights (lm_head = embed_tokens) are stored once
            continue
        seen.add(tensor.data_ptr())
        state[name] = tensor.to(torch.float16 if tensor.is_floating_point() else tensor.dtype).contiguous()
    save_file(state, str(directory / "model.safetensors"), metadata={"format": "pt"})
    config = model.config.to_dict()
    config.pop("quantization_config", None)  # the copy is plain safetensors, not GGUF
    config["dtype"] = "float16"
    (directory / "config.json").write_text(json.dumps(config, indent=2, default=str))
    model.generation_config.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    del model, state
    gc.collect()
    log.info("converted %s in %.1f s", gguf.name, time.perf_counter() - started)


def load_converted(cache: ConvertedModelCache, gguf: Path,
                   load: Callable[[Path], Loaded]) -> tuple[Loaded, Path, bool]:
    """`load` applied to the converted copy of `gguf`, the copy's path, and whether it was converted now.

    A copy that exists but fails to load (truncated, from another version) is converted again, once.
    """
    path, converted = cache.ensure(gguf, lambda directory: convert_gguf(gguf, directory))
    try:
        return load(path), path, converted
    except Exception as exc:
        if converted:
            raise
        log.warning("converted copy %s is unreadable (%s); converting again", path, exc)
    cache.discard(gguf)
    path, converted = cache.ensure(gguf, lambda directory: convert_gguf(gguf, directory))
    return load(path), path, converted
