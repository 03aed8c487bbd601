"""LLM provider adapter running a causal LM on the CPU with transformers + torch."""

from __future__ import annotations

import asyncio
import ctypes
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
    DynamicCache,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from app.adapters.converted_model_cache import ConvertedModelCache
from app.adapters.local_admission import AdmissionQueue, cut_at_stop
from app.adapters.local_model import ModelSource
from app.domain.errors import ProviderUnavailable
from app.domain.generation import collect, token_budget
from app.domain.models import ChatRequest, Chunk, Completion, Usage
from app.domain.streams import ChunkStream, open_chunks

log = logging.getLogger(__name__)


Weights = Literal["auto", "int4", "float16", "bfloat16", "float32"]


def native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU computes bfloat16 natively (the 4-bit kernel is fast only there)."""
    try:
        flags = Path(cpuinfo).read_text(errors="replace").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_weights(weights: Weights) -> Weights:
    """`auto`: int4 where the CPU has native bfloat16, float16 elsewhere."""
    if weights != "auto":
        return weights
    return "int4" if native_bf16() else "float16"
# From this many rows (prompt tokens) on, a float16 linear layer computes in float32.
PREFILL_ROWS = 8
# Weights per (scale, zero) pair of a 4-bit linear layer: a GGUF Q4_1 block.
INT4_GROUP = 32
# Sibling layers that read the same input (attention projections, gated MLP) in common models.
SIBLINGS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))
# A weight is kept in 4 bits only if they reproduce it within this fraction of its largest value:
# true of weights that were 4-bit already (a Q4_1 GGUF file), false of 16-bit trained weights.
INT4_TOLERANCE = 0.01


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
    """A linear layer whose weight stays in 16 bits; activations are cast around it.

    Decoding one token at a time is bound by memory bandwidth: half-size weights
    make the matrix products about twice as fast on CPU, while norms, softmax and
    the residual stream stay float32. The weight is a buffer, not a parameter,
    so the model still reports float32 as its dtype. float16 is fastest for one
    sequence; bfloat16 (native on AVX512-BF16 CPUs) costs the same for a batch
    of four as for one, float16 does not.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        self.register_buffer("weight", weight.contiguous(), persistent=False)
        self.register_buffer("bias", None if bias is None else bias.to(weight.dtype), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.dtype == torch.float16 and x.numel() // x.shape[-1] >= PREFILL_ROWS:
            # A prompt is compute-bound, where float32 kernels are ~3x faster than float16 ones on CPU.
            bias = None if self.bias is None else self.bias.to(torch.float32)
            return F.linear(x, self.weight.to(torch.float32), bias)
        return F.linear(x.to(self.weight.dtype), self.weight, self.bias).to(torch.float32)


class _Int4Linear(_Fp16Linear):
    """A float16 linear layer that also holds its weight in 4 bits for decoding.

    One decode step reads every weight once, so it is bound by memory bandwidth:
    4-bit groups (torch's fused CPU kernel, bfloat16 activations) read a quarter
    of float16's bytes. Prompts (8+ rows) stay on the float32 path of the float16 copy.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, packed: torch.Tensor,
                 scales_zeros: torch.Tensor) -> None:
        super().__init__(weight, bias)
        self.register_buffer("packed", packed, persistent=False)
        self.register_buffer("scales_zeros", scales_zeros, persistent=False)
        self.shared: _SharedInput | None = None  # set when siblings reading the same input compute as one
        self.columns = slice(0, self.out_features)  # this layer's outputs within the shared product

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if rows >= PREFILL_ROWS:
            return super().forward(x)
        if self.shared is not None:
            out = self.shared.product(x)[..., self.columns]
        else:
            out = _int4_mm(x, self.packed, self.scales_zeros)
        return out if self.bias is None else out + self.bias


def _int4_mm(x: torch.Tensor, packed: torch.Tensor, scales_zeros: torch.Tensor) -> torch.Tensor:
    """x (float32, any leading shape) times a packed 4-bit weight, in float32."""
    rows = x.numel() // x.shape[-1]
    out = torch.ops.aten._weight_int4pack_mm_for_cpu(
        x.reshape(rows, x.shape[-1]).to(torch.bfloat16), packed, INT4_GROUP, scales_zeros)
    return out.reshape(*x.shape[:-1], out.shape[-1]).to(torch.float32)


class _SharedInput:
    """The 4-bit weights of sibling layers applied to one input (q, k, v; gate, up) as one product.

    Each kernel call costs a fixed ~10 us on top of its weight reads; the first
    sibling called with an input computes every sibling's outputs, the others
    slice theirs. A sibling called with another tensor gets a fresh product.
    """

    def __init__(self, layers: list[_Int4Linear]) -> None:
        self.packed = torch.cat([layer.packed for layer in layers])
        self.scales_zeros = torch.cat([layer.scales_zeros for layer in layers], dim=1)
        self._input: torch.Tensor | None = None
        self._output: torch.Tensor | None = None
        start = 0
        for layer in layers:
            layer.shared, layer.columns = self, slice(start, start + layer.out_features)
            layer.packed = layer.scales_zeros = torch.empty(0)  # the shared copy serves
            start += layer.out_features

    def product(self, x: torch.Tensor) -> torch.Tensor:
        if self._input is not x or self._output is None:
            self._input, self._output = x, _int4_mm(x, self.packed, self.scales_zeros)
        return self._output


def int4_groups(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`weight` as torch's packed 4-bit CPU layout and bfloat16 (scale, zero) per group of 32.

    None when 4 bits would change the weight by more than `INT4_TOLERANCE`, or the shape does not fit.
    """
    out_features, in_features = weight.shape
    if in_features % INT4_GROUP or out_features % 8 or not hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu"):
        return None
    exact = weight.detach().to(torch.float32).reshape(out_features, in_features // INT4_GROUP, INT4_GROUP)
    low = exact.amin(dim=-1, keepdim=True)
    scale = ((exact.amax(dim=-1, keepdim=True) - low) / 15).clamp(min=1e-10)
    codes = torch.round((exact - low) / scale).clamp(0, 15)
    # The kernel computes (code - 8) * scale + zero, with scale and zero in bfloat16.
    scale16 = scale.to(torch.bfloat16)
    zero16 = (low + 8 * scale).to(torch.bfloat16)
    rebuilt = (codes - 8) * scale16.to(torch.float32) + zero16.to(torch.float32)
    if (rebuilt - exact).abs().max() > INT4_TOLERANCE * exact.abs().max():
        return None
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(
        codes.reshape(out_features, in_features).to(torch.int32), 1)
    scales_zeros = torch.cat([scale16, zero16], dim=-1).transpose(0, 1).contiguous()  # (groups, out, 2)
    return packed, scales_zeros


class _Fp16Embedding(nn.Module):
    """An embedding table kept in float16 that hands out float32 rows."""

    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = weight.shape
        self.register_buffer("weight", weight.contiguous(), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.weight).to(torch.float32)


def fp16_linear_weights(model: nn.Module, dtype: torch.dtype = torch.float16, *, int4: bool = False) -> nn.Module:
    """Keep linear and embedding weights in `dtype` (tied ones stay shared), the rest float32.

    With `int4`, linear layers whose weights 4 bits reproduce (see `int4_groups`) and
    that share no weight with an embedding also keep a 4-bit copy for decoding.
    """
    halves: dict[int, torch.Tensor] = {}
    embedded = {m.weight.data_ptr() for m in model.modules() if isinstance(m, nn.Embedding)}
    packed = 0

    def half(weight: torch.Tensor) -> torch.Tensor:
        key = weight.data_ptr()
        if key not in halves:
            halves[key] = weight.detach().to(dtype).contiguous()
        return halves[key]

    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                groups = None
                if int4 and child.weight.data_ptr() not in embedded:
                    groups = int4_groups(child.weight)
                    packed += 1
                    if packed % 16 == 0:  # else the float32 temporaries pile up in the heap
                        _release_freed_memory()
                setattr(module, name, _Fp16Linear(half(child.weight), child.bias) if groups is None
                        else _Int4Linear(half(child.weight), child.bias, *groups))
            elif isinstance(child, nn.Embedding):
                setattr(module, name, _Fp16Embedding(half(child.weight)))
    for module in list(model.modules()):
        for names in SIBLINGS:
            layers = [getattr(module, name, None) for name in names]
            if all(isinstance(layer, _Int4Linear) for layer in layers):
                _SharedInput(layers)  # type: ignore[arg-type]
    for param in model.parameters():
        param.data = param.data.to(torch.float32)
    for module in model.modules():
        if isinstance(module, (_Fp16Linear, _Fp16Embedding)):
            continue
        for name, buffer in list(module.named_buffers(recurse=False)):
            if buffer is not None and buffer.is_floating_point() and buffer.dtype != torch.float32:
                setattr(module, name, buffer.to(torch.float32))
    return model


class _FastDecoder:
    """Decode steps of a Llama-type int4 model as plain tensor code over a preallocated KV cache.

    transformers' forward costs ~2/3 of a 4-bit decode step outside the matrix
    products (module calls, mask and cache objects, kwargs): this one walks the
    same layers with the same operations (float32 residual stream and norms,
    the fused 4-bit products, SDPA) and writes keys and values in place.
    Prompts still go through the model's forward; its cache is copied once.
    """

    def __init__(self, model: PreTrainedModel, cache: DynamicCache, attention_mask: torch.Tensor,
                 steps: int) -> None:
        inner = model.model  # type: ignore[attr-defined]
        self._embed, self._rotary, self._norm = inner.embed_tokens, inner.rotary_emb, inner.norm
        self._head = model.lm_head  # type: ignore[attr-defined]
        self._layers = list(inner.layers)
        config = model.config
        self._eps = float(config.rms_norm_eps)
        attn = self._layers[0].self_attn
        self._head_dim, self._scaling = int(attn.head_dim), float(attn.scaling)
        self._q_width = attn.q_proj.out_features
        self._kv_width = attn.k_proj.out_features
        self._inter = self._layers[0].mlp.gate_proj.out_features
        rows, self._length = attention_mask.shape
        total = self._length + steps
        self._keys: list[torch.Tensor] = []
        self._values: list[torch.Tensor] = []
        for index in range(len(self._layers)):
            keys, values = cache.layers[index].keys, cache.layers[index].values
            buffer_k = keys.new_empty((*keys.shape[:2], total, keys.shape[-1]))
            buffer_v = values.new_empty((*values.shape[:2], total, values.shape[-1]))
            buffer_k[:, :, : self._length] = keys
            buffer_v[:, :, : self._length] = values
            self._keys.append(buffer_k)
            self._values.append(buffer_v)
        self._plan = [(layer.input_layernorm.weight, layer.self_attn.q_proj.shared.packed,
                       layer.self_attn.q_proj.shared.scales_zeros, layer.self_attn.o_proj.packed,
                       layer.self_attn.o_proj.scales_zeros, layer.post_attention_layernorm.weight,
                       layer.mlp.gate_proj.shared.packed, layer.mlp.gate_proj.shared.scales_zeros,
                       layer.mlp.down_proj.packed, layer.mlp.down_proj.scales_zeros, keys, values)
                      for layer, keys, values in zip(self._layers, self._keys, self._values, strict=True)]
        self._mask: torch.Tensor | None = None
        if not bool(attention_mask.all()):  # left padding: padded keys stay masked out
            self._mask = torch.ones((rows, 1, 1, total), dtype=torch.bool)
            self._mask[:, 0, 0, : self._length] = attention_mask.bool()

    @staticmethod
    def fits(model: PreTrainedModel) -> bool:
        """True for a Llama-type model whose linear layers all decode in 4 bits, siblings fused."""
        config = model.config
        inner = getattr(model, "model", None)
        if (config.model_type != "llama" or getattr(config, "hidden_act", None) != "silu"
                or getattr(config, "pretraining_tp", 1) != 1 or inner is None
                or type(getattr(inner, "rotary_emb", None)).__name__ != "LlamaRotaryEmbedding"
                or getattr(getattr(inner, "rotary_emb", None), "rope_type", "default") != "default"
                or not isinstance(getattr(model, "lm_head", None), _Fp16Linear)
                or not isinstance(getattr(inner, "embed_tokens", None), _Fp16Embedding)):
            return False
        for layer in inner.layers:
            attn, mlp = layer.self_attn, layer.mlp
            fused = [attn.q_proj, attn.k_proj, attn.v_proj, mlp.gate_proj, mlp.up_proj]
            if not all(isinstance(m, _Int4Linear) and m.shared is not None and m.bias is None for m in fused):
                return False
            if attn.q_proj.shared is not attn.v_proj.shared or mlp.gate_proj.shared is not mlp.up_proj.shared:
                return False
            if not all(isinstance(m, _Int4Linear) and m.shared is None and m.bias is None
                       for m in (attn.o_proj, mlp.down_proj)):
                return False
        return True

    def _rms(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self._eps))

    def step(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Logits (rows, vocabulary) of the next token after `ids` (rows, 1) at `positions` (rows, 1)."""
        rows = ids.shape[0]
        hidden = self._embed(ids).view(rows, -1)  # (rows, hidden): one position per row
        cos, sin = self._rotary(hidden, positions)
        cos, sin = cos[:, None], sin[:, None]  # (rows, 1, 1, head_dim)
        at = self._length
        self._length += 1
        mask = None if self._mask is None else self._mask[..., : at + 1]
        dim, q_end = self._head_dim, self._q_width
        k_end = q_end + self._kv_width
        half, inter, rms, scaling = dim // 2, self._inter, self._rms, self._scaling
        mm, bf16 = torch.ops.aten._weight_int4pack_mm_for_cpu, torch.bfloat16
        # Products stay bfloat16 where float32 math promotes them exactly (rotation, cache, residual adds).
        for (norm1, qkv_w, qkv_s, o_w, o_s, norm2, gu_w, gu_s, down_w, down_s, keys, values) in self._plan:
            qkv = mm(rms(hidden, norm1).to(bf16), qkv_w, INT4_GROUP, qkv_s)
            q = qkv[:, :q_end].view(rows, -1, 1, dim)
            k = qkv[:, q_end:k_end].view(rows, -1, 1, dim)
            q = q * cos + torch.cat((-q[..., half:], q[..., :half]), dim=-1) * sin
            keys[:, :, at] = (k * cos + torch.cat((-k[..., half:], k[..., :half]), dim=-1) * sin)[:, :, 0]
            values[:, :, at] = qkv[:, k_end:].view(rows, -1, dim)
            out = F.scaled_dot_product_attention(q, keys[:, :, : at + 1], values[:, :, : at + 1],
                                                 attn_mask=mask, scale=scaling, enable_gqa=True)
            hidden = hidden + mm(out.reshape(rows, -1).to(bf16), o_w, INT4_GROUP, o_s)
            gate_up = mm(rms(hidden, norm2).to(bf16), gu_w, INT4_GROUP, gu_s).to(torch.float32)
            x = F.silu(gate_up[:, :inter]) * gate_up[:, inter:]
            hidden = hidden + mm(x.to(bf16), down_w, INT4_GROUP, down_s)
        return self._head(self._rms(hidden, self._norm.weight))


def _release_freed_memory() -> None:
    """Give the C heap's free pages back to the system (glibc only; elsewhere a no-op).

    Packing the 4-bit weights frees float32 temporaries that glibc would
    otherwise keep in the process's resident memory: ~400 MB over the model.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


_END = object()  # end of one request's text stream


class _Job:
    """One admitted request inside the generation thread: its prompt, limits and outlet."""

    def __init__(self, *, input_ids: list[int], max_new: int, sampling: tuple[Any, ...],
                 loop: asyncio.AbstractEventLoop) -> None:
        self.input_ids = input_ids
        self.max_new = max_new
        self.sampling = sampling  # requests batch together only with equal sampling
        self.loop = loop
        self.queue: asyncio.Queue[Any] = asyncio.Queue()
        self.cancel = threading.Event()  # set by the consumer: client gone or stop sequence seen
        self.tokens: list[int] = []
        self.printed = 0
        self.done = False

    def send(self, item: Any) -> None:
        """Hand `item` to the consumer's event loop (from the generation thread)."""
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the consumer's event loop is gone: nobody is listening
            self.cancel.set()


def _sample(logits: torch.Tensor, *, temperature: float, top_p: float,
            generator: torch.Generator | None) -> torch.Tensor:
    """One token per row from temperature-scaled logits, within the top-p nucleus."""
    probs = torch.softmax(logits / max(temperature, 1e-5), dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs > top_p  # keep the first token always
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


class _BatchStreamer:
    """Splits each generated step of a batch into its requests' text streams."""

    def __init__(self, jobs: list[_Job], tokenizer: PreTrainedTokenizerBase, stop_ids: set[int],
                 on_token: Any) -> None:
        self._jobs = jobs
        self._tokenizer = tokenizer
        self._stop_ids = stop_ids
        self._on_token = on_token

    @property
    def all_done(self) -> bool:
        """True when no row needs another token."""
        return all(j.done or j.cancel.is_set() for j in self._jobs)

    def put(self, value: torch.Tensor) -> None:
        """Take one generated token per row."""
        for job, token in zip(self._jobs, value.reshape(len(self._jobs), -1)[:, -1].tolist(), strict=True):
            if job.done:
                continue
            if job.cancel.is_set() or token in self._stop_ids:
                job.done = True
                continue
            job.tokens.append(int(token))
            self._on_token(1)
            self._flush(job, final=False)
            if len(job.tokens) >= job.max_new:
                job.done = True

    def end(self) -> None:
        for job in self._jobs:
            self._flush(job, final=True)
            job.done = True

    def _flush(self, job: _Job, *, final: bool) -> None:
        text = self._tokenizer.decode(job.tokens, skip_special_tokens=True)
        if not final and text.endswith("\ufffd"):
            return  # a character split across tokens: wait for its last byte
        if len(text) > job.printed:
            job.send(text[job.printed:])
            job.printed = len(text)


class TransformersProvider:
    """Runs the local model on the CPU; loads it once, on first use or at start.

    Generation is CPU-bound, so it runs on one dedicated thread off the event
    loop: the server keeps answering while a request generates. Requests that
    arrive together (up to `batch_size`, same sampling) generate as one batch,
    sharing each step's fixed cost (weight reads, per-layer overhead); a
    request arriving mid-batch waits for the next one. Up to `max_queue` more
    wait; later ones are refused with
    `Overloaded`. A GGUF source is converted once into `cache_dir` and later
    loads read the converted copy.
    """

    name = "local"

    def __init__(self, *, source: ModelSource, max_tokens: int = 256, threads: int | None = None,
                 max_queue: int = 8, cache_dir: str | None = None, weights: Weights = "auto",
                 context_tokens: int = 0, batch_size: int = 4, batch_window: float = 0.01) -> None:
        self._source = source
        self._context_tokens = context_tokens
        self._max_tokens = max_tokens
        self._threads = threads
        self._weights = resolve_weights(weights)
        self._cache = ConvertedModelCache(cache_dir) if cache_dir else None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-llm")
        self._batch_size = batch_size
        self._batch_window = batch_window  # how long the thread waits for companions before a batch
        self.largest_batch = 0
        self._admission = AdmissionQueue(slots=batch_size, max_waiting=max_queue)
        self._pending: list[_Job] = []
        self._pending_lock = threading.Lock()
        self._batching = False  # a batch loop is queued or running on the generation thread
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
        return await collect(self.stream(request), model=self._source.model_id, provider=self.name)

    async def open_stream(self, request: ChatRequest) -> ChunkStream:
        """Start generating; returns once the first chunk is out (errors before it are raised)."""
        return await open_chunks(self.stream(request))

    async def stream(self, request: ChatRequest) -> AsyncIterator[Chunk]:
        """Tokens as they are generated; closing the iterator stops generation."""
        loaded = await self._ensure_loaded()
        input_ids, _ = self._encode(loaded, request)
        prompt_tokens = int(input_ids.shape[1])
        max_new = token_budget(prompt_tokens=prompt_tokens, context_length=loaded.context_length,
                               requested=request.max_tokens, cap=self._max_tokens)
        async with self._admission.slot():
            job = _Job(input_ids=input_ids[0].tolist(), max_new=max_new, sampling=self._sampling(request),
                       loop=asyncio.get_running_loop())
            self._submit(loaded, job)
            emitted = ""
            stopped = False
            try:
                while True:
                    item = await job.queue.get()
                    if item is _END:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    if stopped:
                        continue
                    emitted_before = len(emitted)
                    emitted, stopped = cut_at_stop(emitted + item, request.stop)
                    if stopped:
                        job.cancel.set()
                    if len(emitted) > emitted_before:
                        yield Chunk(model=self._source.model_id, provider=self.name,
                                    text=emitted[emitted_before:])
                generated = len(job.tokens)
                hit_limit = generated >= max_new and not stopped
                yield Chunk(model=self._source.model_id, provider=self.name,
                            finish_reason="length" if hit_limit else "stop",
                            usage=Usage(prompt_tokens, generated))
            finally:
                job.cancel.set()

    @staticmethod
    def _sampling(request: ChatRequest) -> tuple[Any, ...]:
        if not request.temperature:
            return ("greedy",)
        if request.seed is not None:
            return ("seeded", request.temperature, request.top_p, request.seed, object())  # runs alone
        return ("sample", request.temperature, request.top_p)

    def _submit(self, loaded: _Loaded, job: _Job) -> None:
        """Queue `job` for the generation thread, starting its batch loop if it is idle."""
        with self._pending_lock:
            self._pending.append(job)
            if self._batching:
                return
            self._batching = True
        self._executor.submit(self._run_batches, loaded)

    def _run_batches(self, loaded: _Loaded) -> None:
        """Generation thread: run batches of compatible pending requests until none is left."""
        while True:
            time.sleep(self._batch_window)  # let requests arriving together share a batch
            with self._pending_lock:
                for gone in [j for j in self._pending if j.cancel.is_set()]:  # left while waiting
                    self._pending.remove(gone)
                    gone.send(_END)
                if not self._pending:
                    self._batching = False
                    return
                key = self._pending[0].sampling
                batch = [j for j in self._pending if j.sampling == key][: self._batch_size]
                self._pending = [j for j in self._pending if j not in batch]
                self.largest_batch = max(self.largest_batch, len(batch))
            try:
                self._generate_batch(loaded, batch)
            except Exception as exc:  # noqa: BLE001  (handed to each request's consumer)
                log.exception("local generation failed")
                for job in batch:
                    job.send(ProviderUnavailable(f"Local generation failed ({type(exc).__name__})."))
            finally:
                for job in batch:
                    job.send(_END)

    def _generate_batch(self, loaded: _Loaded, jobs: list[_Job]) -> None:
        tokenizer = loaded.tokenizer
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        width = max(len(j.input_ids) for j in jobs)
        input_ids = torch.full((len(jobs), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(jobs), width), dtype=torch.long)
        for row, job in enumerate(jobs):  # left padding: every row's next token is at the end
            input_ids[row, width - len(job.input_ids):] = torch.tensor(job.input_ids)
            attention_mask[row, width - len(job.input_ids):] = 1
        eos = loaded.model.generation_config.eos_token_id
        stop_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        stop_ids.add(tokenizer.eos_token_id)
        streamer = _BatchStreamer(jobs, tokenizer, stop_ids, self._count_tokens)
        try:
            with torch.inference_mode():
                self._decode(loaded.model, input_ids, attention_mask, jobs, streamer)
        finally:
            streamer.end()

    @staticmethod
    def _decode(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                jobs: list[_Job], streamer: _BatchStreamer) -> None:
        """Prefill, then one token per row per step, until every row is done.

        A plain loop over the model's forward: `generate()` adds ~25% per token
        on this model (logits processors, criteria, bookkeeping) for features we do not use.
        """
        sampling = jobs[0].sampling
        generator = None
        if sampling[0] == "seeded":
            generator = torch.Generator().manual_seed(sampling[3])
        cache = DynamicCache(config=model.config)
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        step_ids, step_positions, mask = input_ids, positions, attention_mask
        steps = max(j.max_new for j in jobs)
        fast: _FastDecoder | None = None
        for step in range(steps):
            if fast is not None:
                logits = fast.step(step_ids, step_positions)
            else:
                out = model(input_ids=step_ids, attention_mask=mask, position_ids=step_positions,
                            cache=cache, use_cache=True, logits_to_keep=1)
                logits = out.logits[:, -1, :].float()
                if step == 0 and _FastDecoder.fits(model):
                    fast = _FastDecoder(model, cache, attention_mask, steps)
            if sampling[0] == "greedy":
                next_tokens = logits.argmax(dim=-1)
            else:
                next_tokens = _sample(logits, temperature=sampling[1], top_p=sampling[2] or 1.0,
                                      generator=generator)
            streamer.put(next_tokens)
            if streamer.all_done:
                break
            step_ids = next_tokens[:, None]
            step_positions = step_positions[:, -1:] + 1
            if fast is None:
                mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)

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
        if self._weights != "float32" and not kwargs:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float16)
        else:  # GGUF files dequantize to float32 only
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **kwargs)
        model.eval()
        if self._weights == "int4":
            fp16_linear_weights(model, torch.float16, int4=True)
            four_bit = sum(isinstance(m, _Int4Linear) for m in model.modules())
            linear = sum(isinstance(m, _Fp16Linear) for m in model.modules())
            log.info("%d of %d linear layers decode with 4-bit weights, the rest float16", four_bit, linear)
            _release_freed_memory()
        elif self._weights != "float32":
            fp16_linear_weights(model, getattr(torch, self._weights))
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
