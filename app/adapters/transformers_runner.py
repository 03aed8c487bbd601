"""LLM provider adapter running a causal LM on the CPU with transformers + torch."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TextStreamer,
)

from app.adapters.converted_model_cache import ConvertedModelCache
from app.adapters.local_admission import AdmissionQueue, cut_at_stop
from app.adapters.local_model import ModelSource
from app.domain.errors import ContextTooLong, ProviderUnavailable
from app.domain.models import ChatRequest, Chunk, Completion, Usage

log = logging.getLogger(__name__)


Weights = Literal["float16", "float32"]


@dataclass(slots=True)
class _Loaded:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    context_length: int


@dataclass(frozen=True, slots=True)
class LoadInfo:
    """How the last load went: seconds taken, and whether a GGUF file was converted."""

    seconds: float
    converted: bool
    path: str


class _Fp16Linear(nn.Module):
    """A linear layer whose weight stays in float16; activations are cast around it.

    Decoding one token at a time is bound by memory bandwidth: half-size weights
    make the matrix products about twice as fast on CPU, while norms, softmax and
    the residual stream stay float32. The weight is a buffer, not a parameter,
    so the model still reports float32 as its dtype.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight.to(torch.float16).contiguous(), persistent=False)
        self.register_buffer("bias", None if bias is None else bias.to(torch.float16), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.to(torch.float16), self.weight, self.bias).to(torch.float32)


class _Fp16Embedding(nn.Module):
    """An embedding table kept in float16 that hands out float32 rows."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = weight.shape
        self.register_buffer("weight", weight.to(torch.float16).contiguous(), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight).to(torch.float32)


def fp16_linear_weights(model: nn.Module) -> nn.Module:
    """Keep linear and embedding weights in float16 (tied ones stay shared), the rest float32."""
    halves: dict[int, torch.Tensor] = {}

    def half(weight: torch.Tensor) -> torch.Tensor:
        key = weight.data_ptr()
        if key not in halves:
            halves[key] = weight.detach().to(torch.float16).contiguous()
        return halves[key]

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, _Fp16Linear(half(child.weight), child.bias))
            elif isinstance(child, nn.Embedding):
                setattr(module, name, _Fp16Embedding(half(child.weight)))
    for param in model.parameters():
        param.data = param.data.to(torch.float32)
    for module in model.modules():
        if isinstance(module, (_Fp16Linear, _Fp16Embedding)):
            continue
        for name, buffer in list(module.named_buffers(recurse=False)):
            if buffer is not None and buffer.is_floating_point() and buffer.dtype != torch.float32:
                setattr(module, name, buffer.to(torch.float32))
    return model


class _CancelOnEvent(StoppingCriteria):
    """Stops generation once the event is set (client gone)."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self._event.is_set(), dtype=torch.bool)


class _QueueStreamer(TextStreamer):
    """Hands decoded text from the generation thread to an asyncio queue."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, loop: asyncio.AbstractEventLoop,
                 queue: asyncio.Queue[str], cancel: threading.Event,
                 on_token: Any = None) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._loop = loop
        self._queue = queue
        self._cancel = cancel
        self._on_token = on_token
        self.generated_tokens = 0

    def put(self, value: torch.Tensor) -> None:
        if not (self.skip_prompt and self.next_tokens_are_prompt):
            count = int(value.numel())
            self.generated_tokens += count
            if self._on_token is not None:
                self._on_token(count)
        super().put(value)

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            try:
                self._loop.call_soon_threadsafe(self._queue.put_nowait, text)
            except RuntimeError:  # the consumer's event loop is gone: nobody is listening
                self._cancel.set()


class TransformersProvider:
    """Runs the local model on the CPU; loads it once, on first use or at start.

    Generation is CPU-bound, so it runs on one dedicated thread off the event
    loop: the server keeps answering while a request generates. One request
    generates at a time; up to `max_queue` more wait, later ones are refused
    with `Overloaded`. A GGUF source is converted once into `cache_dir` and
    later loads read the converted copy.
    """

    name = "local"

    def __init__(self, *, source: ModelSource, max_tokens: int = 256, threads: int | None = None,
                 max_queue: int = 8, cache_dir: str | None = None, weights: Weights = "float16",
                 context_tokens: int = 0) -> None:
        self._source = source
        self._context_tokens = context_tokens
        self._max_tokens = max_tokens
        self._threads = threads
        self._weights = weights
        self._cache = ConvertedModelCache(cache_dir) if cache_dir else None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llm")
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
        """True once the weights are in memory."""
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
        async with self._admission.slot():
            loop = asyncio.get_running_loop()
            queue: asyncio.Queue[str] = asyncio.Queue()
            cancel = threading.Event()
            streamer = _QueueStreamer(loaded.tokenizer, loop, queue, cancel, self._count_tokens)
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
                    emitted, stopped = cut_at_stop(emitted + text, request.stop)
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

    def _count_tokens(self, count: int) -> None:
        self.tokens_generated += count

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
        kwargs: dict[str, Any] = {"max_new_tokens": max_new, "use_cache": True,
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
        source = self._source
        converted = False
        if source.gguf_file and self._cache is not None:
            gguf = Path(source.path) / source.gguf_file
            path, converted = self._converted_copy(gguf)
            try:
                tokenizer, model = self._from_pretrained(str(path))
            except Exception as exc:
                if converted:
                    raise
                log.warning("converted copy %s is unreadable (%s); converting again", path, exc)
                self._cache.discard(gguf)
                path, converted = self._converted_copy(gguf)
                tokenizer, model = self._from_pretrained(str(path))
        else:
            path = Path(source.path) / source.gguf_file if source.gguf_file else Path(source.path)
            log.info("loading local model %s from %s", source.name, path)
            gguf_kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
            tokenizer, model = self._from_pretrained(source.path, **gguf_kwargs)
        context = int(getattr(model.config, "max_position_embeddings", 2048) or 2048)
        if self._context_tokens:
            context = min(context, self._context_tokens)
        seconds = time.perf_counter() - started
        self.load_info = LoadInfo(seconds=seconds, converted=converted, path=str(path))
        if self._cache is not None and source.gguf_file and not converted:
            log.info("local model %s loaded from cache %s in %.1f s", source.name, path, seconds)
        else:
            log.info("local model %s loaded in %.1f s", source.name, seconds)
        return _Loaded(model=model, tokenizer=tokenizer, context_length=context)

    def _converted_copy(self, gguf: Path) -> tuple[Path, bool]:
        assert self._cache is not None
        return self._cache.ensure(gguf, lambda directory: self._convert_gguf(gguf, directory))

    def _from_pretrained(self, path: str, **kwargs: Any) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        if self._weights == "float16" and not kwargs:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float16)
        else:  # GGUF files dequantize to float32 only
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
        model.eval()
        if self._weights == "float16":
            fp16_linear_weights(model)
        return tokenizer, model

    def _convert_gguf(self, gguf: Path, directory: Path) -> None:
        """Write a safetensors copy (float16) and the tokenizer files of a GGUF model."""
        assert self._cache is not None
        log.info("converting %s for transformers into %s (one-time: later starts load the copy)",
                 gguf, self._cache.entry(gguf))
        started = time.perf_counter()
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name,
                                                     dtype=torch.float32)
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

    def close(self) -> None:
        """Stop the generation thread (pending work is dropped)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
