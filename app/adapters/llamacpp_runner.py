"""LLM provider adapter running a GGUF model on the CPU with llama.cpp (llama-cpp-python).

llama-cpp-python is an optional extra (`pip install '.[llamacpp]'`): this module
imports it only when the model loads, and the container imports this module
only when LOCAL_RUNNER=llamacpp.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.adapters.local_admission import AdmissionQueue, cut_at_stop
from app.adapters.local_model import ModelSource
from app.domain.errors import ProviderUnavailable
from app.domain.generation import collect, token_budget
from app.domain.models import ChatRequest, Chunk, Completion, Usage
from app.domain.streams import ChunkStream, open_chunks

if TYPE_CHECKING:
    from llama_cpp import Llama

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Loaded:
    llm: Llama
    format_chat: Callable[[list[dict[str, str]]], str] | None
    context_length: int


@dataclass(frozen=True, slots=True)
class LoadInfo:
    """How the last load went."""

    seconds: float
    path: str


class LlamaCppProvider:
    """Runs a GGUF model with llama.cpp on the CPU; loads it once, on first use or at start.

    The weights stay quantized and memory-mapped, so it starts in well under a
    second and fits small instances. Generation runs on one dedicated thread;
    one request generates at a time, up to `max_queue` wait, later ones are
    refused with `Overloaded`.
    """

    name = "local"

    def __init__(self, *, source: ModelSource, max_tokens: int = 256, threads: int | None = None,
                 max_queue: int = 8, context_tokens: int = 0) -> None:
        self._source = source
        self._max_tokens = max_tokens
        self._threads = threads
        self._context_tokens = context_tokens
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llamacpp")
        self._admission = AdmissionQueue(slots=1, max_waiting=max_queue)
        self._load_lock = asyncio.Lock()
        self._loaded: _Loaded | None = None
        self.load_info: LoadInfo | None = None
        self.tokens_generated = 0  # over the provider's life; lets tests see generation stop

    def model_ids(self) -> Sequence[str]:
        """The one local model's id."""
        return [self._source.model_id]

    @property
    def is_loaded(self) -> bool:
        """True once the model is in memory."""
        return self._loaded is not None

    @property
    def admission(self) -> AdmissionQueue:
        """The queue requests wait in for the generation thread."""
        return self._admission

    async def load(self) -> None:
        """Load the model now (concurrent callers share one load)."""
        await self._ensure_loaded()

    async def complete(self, request: ChatRequest) -> Completion:
        """Generate the whole answer."""
        return await collect(self.stream(request), model=self._source.model_id, provider=self.name)

    async def open_stream(self, request: ChatRequest) -> ChunkStream:
        """Start generating; returns once the first chunk is out (errors before it are raised)."""
        return await open_chunks(self.stream(request))

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        """Tokens as they are generated; closing the iterator stops generation."""
        loaded = await self._ensure_loaded()
        tokens = self._encode(loaded, request)
        prompt_tokens = len(tokens)
        max_new = token_budget(prompt_tokens=prompt_tokens, context_length=loaded.context_length,
                               requested=request.max_tokens, cap=self._max_tokens)
        async with self._admission.slot():
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[str] = asyncio.Queue()
            cancel = threading.Event()

            def emit(text: str) -> None:
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, text)
                except RuntimeError:  # the consumer's event loop is gone: nobody is listening
                    cancel.set()

            job = loop.run_in_executor(self._executor, self._generate, loaded, tokens, request,
                                       max_new, cancel, emit)
            job.add_done_callback(lambda _: loop.call_soon_threadsafe(queue.put_nowait, ""))
            emitted = ""
            stopped = False
            try:
                while True:
                    text = await queue.get()
                    if not text:  # generation finished (or failed)
                        if job.done():
                            break
                        continue
                    if stopped:
                        continue
                    emitted_before = len(emitted)
                    emitted, stopped = cut_at_stop(emitted + text, request.stop)
                    if stopped:
                        cancel.set()
                    if len(emitted) > emitted_before:
                        yield Chunk(model=self._source.model_id, provider=self.name,
                                    text=emitted[emitted_before:])
                generated = await job  # re-raises a generation error
                hit_limit = generated >= max_new and not stopped
                yield Chunk(model=self._source.model_id, provider=self.name,
                            finish_reason="length" if hit_limit else "stop",
                            usage=Usage(prompt_tokens, generated))
            finally:
                cancel.set()

    @staticmethod
    def _encode(loaded: _Loaded, request: ChatRequest) -> list[int]:
        llm = loaded.llm
        if request.prompt is not None:
            return llm.tokenize(request.prompt.encode("utf-8"), add_bos=True, special=False)
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        if loaded.format_chat is not None:
            # The template writes the special tokens itself (as llama-cpp-python's chat handler does).
            return llm.tokenize(loaded.format_chat(messages).encode("utf-8"), add_bos=False, special=True)
        text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
        return llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)

    def _generate(self, loaded: _Loaded, tokens: list[int], request: ChatRequest, max_new: int,
                  cancel: threading.Event, emit: Callable[[str], None]) -> int:
        """Generate on this thread, handing text to `emit`; returns the count of tokens generated."""
        import llama_cpp

        llm = loaded.llm
        if request.temperature:
            if request.seed is not None:
                llm.set_seed(request.seed)
            sampling: dict[str, Any] = {"temp": request.temperature, "top_p": request.top_p or 1.0,
                                        "top_k": 0, "min_p": 0.0}
        else:  # greedy: a small model samples poorly, and greedy is reproducible
            sampling = {"temp": 0.0}
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        generated = 0
        steps = llm.generate(tokens, repeat_penalty=1.0, **sampling)
        try:
            for token in steps:
                if cancel.is_set() or llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                    break
                generated += 1
                self.tokens_generated += 1
                text = decoder.decode(llm.detokenize([token]))
                if text:
                    emit(text)
                if generated >= max_new:
                    break
        finally:
            steps.close()
        tail = decoder.decode(b"", final=True)
        if tail:
            emit(tail)
        return generated

    async def _ensure_loaded(self) -> _Loaded:
        if self._loaded is not None:
            return self._loaded
        async with self._load_lock:
            if self._loaded is None:
                loop = asyncio.get_running_loop()
                try:
                    self._loaded = await loop.run_in_executor(self._executor, self._load)
                except ProviderUnavailable:
                    raise
                except Exception as exc:
                    log.exception("local model %s failed to load", self._source.name)
                    raise ProviderUnavailable(f"The local model failed to load ({type(exc).__name__}).") from exc
        return self._loaded

    def _load(self) -> _Loaded:
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
        format_chat = None
        template = llm.metadata.get("tokenizer.chat_template")
        if template:
            eos, bos = llm.token_eos(), llm.token_bos()
            formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
                bos_token=llm._model.token_get_text(bos) if bos != -1 else "")

            def format_chat(messages: list[dict[str, str]]) -> str:
                return formatter(messages=messages).prompt  # type: ignore[arg-type]

        seconds = time.perf_counter() - started
        self.load_info = LoadInfo(seconds=seconds, path=str(path))
        log.info("local model %s loaded with llama.cpp in %.1f s (context %d tokens)",
                 self._source.name, seconds, llm.n_ctx())
        return _Loaded(llm=llm, format_chat=format_chat, context_length=llm.n_ctx())

    def close(self) -> None:
        """Stop the generation thread (pending work is dropped)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
