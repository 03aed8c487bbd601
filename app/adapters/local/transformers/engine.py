"""The transformers engine: a causal LM on the CPU with torch, batches of requests decoded together."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from llguidance import LLTokenizer
from llguidance.hf import from_tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from app.adapters.local.engine import Job
from app.adapters.local.source import ModelSource
from app.adapters.local.transformers.batching import decode_batch, stop_ids
from app.adapters.local.transformers.convert import ConvertedModelCache, load_converted
from app.adapters.local.transformers.weights import Weights, apply_weights, resolve_weights
from app.domain.models import ChatRequest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadInfo:
    """How the load went: seconds taken, whether a GGUF file was converted, and what was read."""

    seconds: float
    converted: bool
    path: str


class TransformersEngine:
    """Runs a transformers model on the CPU; requests with equal sampling decode as one batch.

    A GGUF source is converted once into `cache_dir` and later loads read the
    converted copy. `weights` picks the precision of the linear layers (see `weights.py`).
    """

    def __init__(self, *, source: ModelSource, threads: int | None = None, cache_dir: str | None = None,
                 weights: Weights = "auto", context_tokens: int = 0, batch_size: int = 4) -> None:
        self._source = source
        self._threads = threads
        self._cache = ConvertedModelCache(cache_dir) if cache_dir else None
        self._weights = resolve_weights(weights)
        self._context_tokens = context_tokens
        self.batch_size = batch_size
        self.model: PreTrainedModel | None = None  # set by `load`
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.load_info: LoadInfo | None = None
        self._vocabulary: LLTokenizer | None = None

    def load(self) -> int:
        """Load the weights (converting a GGUF file on first use); returns the context window."""
        if self._threads:
            torch.set_num_threads(self._threads)
        started = time.perf_counter()
        source = self._source
        converted = False
        if source.gguf_file and self._cache is not None:
            gguf = Path(source.path) / source.gguf_file
            (tokenizer, model), path, converted = load_converted(self._cache, gguf, self._from_pretrained)
        else:
            path = Path(source.path) / source.gguf_file if source.gguf_file else Path(source.path)
            log.info("loading local model %s from %s", source.name, path)
            tokenizer, model = self._from_pretrained(source.path, gguf_file=source.gguf_file)
        context = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
        if self._context_tokens:
            context = min(context, self._context_tokens)
        seconds = time.perf_counter() - started
        self.load_info = LoadInfo(seconds=seconds, converted=converted, path=str(path))
        if self._cache is not None and source.gguf_file and not converted:
            log.info("local model %s loaded from cache %s in %.1f s", source.name, path, seconds)
        else:
            log.info("local model %s loaded in %.1f s", source.name, seconds)
        self.tokenizer, self.model = tokenizer, model
        return context

    def encode(self, request: ChatRequest) -> list[int]:
        """Prompt tokens: the chat template applied to the messages, or a legacy prompt as it is."""
        tokenizer = self._ready()[1]
        if request.prompt is not None:
            return list(tokenizer(request.prompt)["input_ids"])
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        if tokenizer.chat_template:
            return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                      return_dict=True)["input_ids"])
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        return list(tokenizer(text)["input_ids"])

    def vocabulary(self) -> LLTokenizer:
        """The tokenizer's vocabulary for constrained decoding, ending answers on the model's stop tokens."""
        if self._vocabulary is None:
            model, tokenizer = self._ready()
            ends = sorted(stop_ids(model, tokenizer))
            self._vocabulary = from_tokenizer(tokenizer, eos_token=ends)  # type: ignore[arg-type]
        return self._vocabulary

    def generate(self, batch: Sequence[Job]) -> None:
        """Decode the batch's jobs together (left-padded), emitting each job's text as its tokens come."""
        model, tokenizer = self._ready()
        decode_batch(model, tokenizer, batch)

    def _ready(self) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
        if self.model is None or self.tokenizer is None:
            raise RuntimeError("the transformers engine is used before it was loaded")
        return self.model, self.tokenizer

    def _from_pretrained(self, path: str | Path, *, gguf_file: str | None = None,
                         ) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
        kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
        tokenizer = AutoTokenizer.from_pretrained(str(path), **kwargs)
        if self._weights != "float32" and not gguf_file:
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float16)
        else:  # GGUF files dequantize to float32 only
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32, **kwargs)
        model.eval()
        apply_weights(model, self._weights)
        return tokenizer, model
