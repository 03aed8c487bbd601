"""The llama.cpp engine: a GGUF model on the CPU through llama-cpp-python.

llama-cpp-python is an optional extra (`pip install '.[llamacpp]'`): this module
imports it only when the model loads, and the container imports this module
only when LOCAL_RUNNER=llamacpp. A constrained job (JSON answer) has its
grammar's mask applied through llama-cpp-python's `logits_processor` hook, over
a vocabulary llguidance reads from llama.cpp's own.
"""

from __future__ import annotations

import codecs
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from llguidance import LLTokenizer

from app.adapters.local.constraints import GrammarMatcher
from app.adapters.local.engine import Job, Sampling
from app.adapters.local.source import ModelSource
from app.domain.errors import ProviderUnavailable
from app.domain.models import ChatRequest

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LoadInfo:
    """How the load went: seconds taken, and the file read."""

    seconds: float
    path: str


class LlamaCppEngine:
    """Runs a GGUF model with llama.cpp on the CPU, one request at a time.

    The weights stay quantized and memory-mapped, so it loads in well under a
    second and fits small instances.
    """

    batch_size = 1  # llama-cpp-python's high-level API decodes one sequence at a time

    def __init__(self, *, source: ModelSource, threads: int | None = None, context_tokens: int = 0) -> None:
        self._source = source
        self._threads = threads
        self._context_tokens = context_tokens
        self._llm: Llama | None = None
        self._format_chat: Callable[[list[dict[str, str]]], str] | None = None
        self._vocabulary: LLTokenizer | None = None
        self.load_info: LoadInfo | None = None

    def load(self) -> int:
        """Map the GGUF file and read its chat template; returns the context window."""
        if not self._source.gguf_file:
            raise ProviderUnavailable("LOCAL_RUNNER=llamacpp needs a GGUF model file "
                                      f"(LOCAL_MODEL is {self._source.path}).")
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:
            raise ProviderUnavailable("LOCAL_RUNNER=llamacpp needs llama-cpp-python: "
                                      "pip install '.[llamacpp]'.") from exc
        path = Path(self._source.path) / self._source.gguf_file
        started = time.perf_counter()
        log.info("loading local model %s from %s with llama.cpp", self._source.name, path)
        threads = self._threads or os.cpu_count() or 1
        llm = Llama(model_path=str(path), n_ctx=self._context_tokens, n_threads=threads,
                    n_threads_batch=threads, verbose=False)
        template = llm.metadata.get("tokenizer.chat_template")
        if template:
            eos, bos = llm.token_eos(), llm.token_bos()
            formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llm._model.token_get_text(bos) if bos != -1 else "")

            def format_chat(messages: list[dict[str, str]]) -> str:
                return formatter(messages=messages).prompt  # type: ignore[arg-type]

            self._format_chat = format_chat
        seconds = time.perf_counter() - started
        self.load_info = LoadInfo(seconds=seconds, path=str(path))
        log.info("local model %s loaded with llama.cpp in %.1f s (context %d tokens)",
                 self._source.name, seconds, llm.n_ctx())
        self._llm = llm
        return int(llm.n_ctx())

    def encode(self, request: ChatRequest) -> list[int]:
        """Prompt tokens: the GGUF file's chat template applied to the messages, or a legacy prompt."""
        llm = self._ready()
        if request.prompt is not None:
            return llm.tokenize(request.prompt.encode("utf-8"), add_bos=True, special=False)
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        if self._format_chat is not None:
            # The template writes the special tokens itself (as llama-cpp-python's chat handler does).
            return llm.tokenize(self._format_chat(messages).encode("utf-8"), add_bos=False, special=True)
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        return llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)

    def vocabulary(self) -> LLTokenizer:
        """llama.cpp's vocabulary for constrained decoding, ending answers on its end-of-generation tokens."""
        if self._vocabulary is None:
            import llama_cpp
            from llguidance.llamacpp import lltokenizer_from_vocab

            vocab = self._ready()._model.vocab
            ends = [token for token in range(llama_cpp.llama_vocab_n_tokens(vocab))
                    if llama_cpp.llama_vocab_is_eog(vocab, token)]
            self._vocabulary = lltokenizer_from_vocab(vocab, eos_token=ends or None)
        return self._vocabulary

    def generate(self, batch: Sequence[Job]) -> None:
        """Generate each job in turn (a batch holds one), emitting its text token by token."""
        for job in batch:
            self._generate(job)

    def _generate(self, job: Job) -> None:
        import llama_cpp

        llm = self._ready()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        generated = 0
        constraint = job.constraint
        processors = None if constraint is None else llama_cpp.LogitsProcessorList([_masking(constraint)])
        steps = llm.generate(list(job.prompt), repeat_penalty=1.0, logits_processor=processors,
                             **self._sampling(llm, job.sampling))
        try:
            for token in steps:
                if job.cancelled or llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                    break
                generated += 1
                if constraint is not None:
                    constraint.advance(token)
                job.emit(decoder.decode(llm.detokenize([token])), tokens=1)
                if generated >= job.max_new or (constraint is not None and constraint.complete):
                    break
        finally:
            steps.close()
        tail = decoder.decode(b"", final=True)
        if tail:
            job.emit(tail, tokens=0)

    @staticmethod
    def _sampling(llm: Llama, sampling: Sampling) -> dict[str, Any]:
        if sampling.greedy:
            return {"temp": 0.0}
        if sampling.seed is not None:
            llm.set_seed(sampling.seed & 0xFFFF_FFFF)  # llama.cpp's sampler takes a 32-bit seed
        return {"temp": sampling.temperature, "top_p": sampling.top_p, "top_k": 0, "min_p": 0.0}

    def _ready(self) -> Llama:
        if self._llm is None:
            raise RuntimeError("the llama.cpp engine is used before it was loaded")
        return self._llm


def _masking(constraint: GrammarMatcher) -> Callable[[Any, np.ndarray[Any, Any]], np.ndarray[Any, Any]]:
    """A llama-cpp-python logits processor: the tokens `constraint` forbids get no chance."""

    def mask(_input_ids: Any, scores: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        scores[~constraint.allowed(len(scores))] = -np.inf
        return scores

    return mask
