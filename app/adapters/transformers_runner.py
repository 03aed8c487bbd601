"""LLM provider adapter running a causal LM on the CPU with transformers + torch."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TextStreamer,
)

from app.adapters.local_model import ModelSource
from app.domain.errors import ContextTooLong, ProviderUnavailable
from app.domain.models import ChatRequest, Chunk, Completion, Usage

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Loaded:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    context_length: int


class _CancelOnEvent(StoppingCriteria):
    """Stops generation once the event is set (client gone)."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self._event.is_set(), dtype=torch.bool)


class _QueueStreamer(TextStreamer):
    """Hands decoded text from the generation thread to an asyncio queue."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, loop: asyncio.AbstractEventLoop,
                 queue: asyncio.Queue[str]) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._loop = loop
        self._queue = queue
        self.generated_tokens = 0

    def put(self, value: torch.Tensor) -> None:
        if not (self.skip_prompt and self.next_tokens_are_prompt):
            self.generated_tokens += int(value.numel())
        super().put(value)

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, text)


def _cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """`text` up to the first stop sequence, and whether one was found."""
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


class TransformersProvider:
    """Runs the local model on the CPU; loads it once, on first use or at start.

    Generation is CPU-bound, so it runs on one dedicated thread off the event
    loop: the server keeps answering while a request generates.
    """

    name = "local"

    def __init__(self, *, source: ModelSource, max_tokens: int = 256, threads: int | None = None) -> None:
        self._source = source
        self._max_tokens = max_tokens
        self._threads = threads
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llm")
        self._load_lock = asyncio.Lock()
        self._loaded: _Loaded | None = None

    def model_ids(self) -> Sequence[str]:
        """The one local model's id."""
        return [self._source.model_id]

    @property
    def is_loaded(self) -> bool:
        """True once the weights are in memory."""
        return self._loaded is not None

    async def load(self) -> None:
        """Load the model now (concurrent callers share one load)."""
        await self._ensure_loaded()

    async def complete(self, request: ChatRequest) -> Completion:
        """Generate the whole answer."""
        text_parts: list[str] = []
        usage = Usage(0, 0)
        finish = "stop"
        async for chunk in self.stream(request):
            text_parts.append(chunk.text)
            if chunk.usage is not None:
                usage = chunk.usage
            if chunk.finish_reason is not None:
                finish = chunk.finish_reason
        return Completion(text="".join(text_parts), model=self._source.model_id, provider=self.name,
                          finish_reason=finish, usage=usage)

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        """Tokens as they are generated; closing the iterator stops generation."""
        loaded = await self._ensure_loaded()
        input_ids, attention_mask = self._encode(loaded, request)
        prompt_tokens = int(input_ids.shape[1])
        if prompt_tokens >= loaded.context_length:
            raise ContextTooLong(f"The prompt is {prompt_tokens} tokens; the local model's context "
                                 f"is {loaded.context_length} tokens.", param="messages")
        max_new = min(request.max_tokens or self._max_tokens, self._max_tokens,
                      loaded.context_length - prompt_tokens)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str] = asyncio.Queue()
        cancel = threading.Event()
        streamer = _QueueStreamer(loaded.tokenizer, loop, queue)
        kwargs = self._generate_kwargs(loaded, request, max_new)
        kwargs.update(input_ids=input_ids, attention_mask=attention_mask, streamer=streamer,
                      stopping_criteria=StoppingCriteriaList([_CancelOnEvent(cancel)]))
        job = loop.run_in_executor(self._executor, self._generate, loaded.model, kwargs)
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
                emitted, stopped = _cut_at_stop(emitted + text, request.stop)
                if stopped:
                    cancel.set()
                if len(emitted) > emitted_before:
                    yield Chunk(model=self._source.model_id, provider=self.name,
                                text=emitted[emitted_before:])
            await job  # re-raises a generation error
            hit_limit = streamer.generated_tokens >= max_new and not stopped
            yield Chunk(model=self._source.model_id, provider=self.name,
                        finish_reason="length" if hit_limit else "stop",
                        usage=Usage(prompt_tokens, streamer.generated_tokens))
        finally:
            cancel.set()

    def _encode(self, loaded: _Loaded, request: ChatRequest) -> tuple[torch.Tensor, torch.Tensor]:
        tokenizer = loaded.tokenizer
        if request.prompt is not None:
            encoded = tokenizer(request.prompt, return_tensors="pt")
        else:
            messages = [{"role": m.role, "content": m.content} for m in request.messages]
            if tokenizer.chat_template:
                encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                        return_tensors="pt", return_dict=True)
            else:
                text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
                encoded = tokenizer(text, return_tensors="pt")
        input_ids = encoded["input_ids"]
        return input_ids, encoded.get("attention_mask", torch.ones_like(input_ids))

    @staticmethod
    def _generate_kwargs(loaded: _Loaded, request: ChatRequest, max_new: int) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"max_new_tokens": max_new,
                                  "pad_token_id": loaded.tokenizer.pad_token_id
                                  if loaded.tokenizer.pad_token_id is not None
                                  else loaded.tokenizer.eos_token_id}
        if request.temperature:
            kwargs.update(do_sample=True, temperature=request.temperature, top_p=request.top_p or 1.0)
            if request.seed is not None:
                torch.manual_seed(request.seed)
        else:
            # Greedy by default: a small model samples poorly, and greedy is reproducible.
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if request.stop:
            kwargs.update(stop_strings=list(request.stop), tokenizer=loaded.tokenizer)
        return kwargs

    @staticmethod
    def _generate(model: PreTrainedModel, kwargs: dict[str, Any]) -> None:
        with torch.inference_mode():
            model.generate(**kwargs)

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
        if self._threads:
            torch.set_num_threads(self._threads)
        started = time.perf_counter()
        log.info("loading local model %s from %s", self._source.name, self._source.path)
        kwargs: dict[str, Any] = {"gguf_file": self._source.gguf_file} if self._source.gguf_file else {}
        tokenizer = AutoTokenizer.from_pretrained(self._source.path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(self._source.path, dtype=torch.float32, **kwargs)
        model.eval()
        context = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
        log.info("local model %s loaded in %.1f s", self._source.name, time.perf_counter() - started)
        return _Loaded(model=model, tokenizer=tokenizer, context_length=context)

    def close(self) -> None:
        """Stop the generation thread (pending work is dropped)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
