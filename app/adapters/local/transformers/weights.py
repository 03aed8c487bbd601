"""Weight precision of the transformers engine: the policy, and the 16-bit and 4-bit layers it installs.

Decoding one token at a time reads every weight once, so it is bound by memory
bandwidth: 16-bit weights halve the bytes of float32, 4-bit groups quarter
them again. Norms, softmax and the residual stream stay float32.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

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


class Fp16Linear(nn.Module):
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


class Int4Linear(Fp16Linear):
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
        self.shared: SharedInput | None = None  # set when siblings reading the same input compute as one
        self.columns = slice(0, self.out_features)  # this layer's outputs within the shared product

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.shape[-1]
        if rows >= PREFILL_ROWS:
            return super().forward(x)
        if self.shared is not None:
            out = self.shared.product(x)[..., self.columns]
        else:
            out = int4_mm(x, self.packed, self.scales_zeros)
        return out if self.bias is None else out + self.bias


def int4_mm(x: torch.Tensor, packed: torch.Tensor, scales_zeros: torch.Tensor) -> torch.Tensor:
    """x (float32, any leading shape) times a packed 4-bit weight, in float32."""
    rows = x.numel() // x.shape[-1]
    out = torch.ops.aten._weight_int4pack_mm_for_cpu(
        x.reshape(rows, x.shape[-1]).to(torch.bfloat16), packed, INT4_GROUP, scales_zeros)
    return out.reshape(*x.shape[:-1], out.shape[-1]).to(torch.float32)


class SharedInput:
    """The 4-bit weights of sibling layers applied to one input (q, k, v; gate, up) as one product.

    Each kernel call costs a fixed ~10 us on top of its weight reads; the first
    sibling called with an input computes every sibling's outputs, the others
    slice theirs. A sibling called with another tensor gets a fresh product.
    """

    def __init__(self, layers: list[Int4Linear]) -> None:
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
        """Every sibling's outputs for `x`, computed once per input tensor."""
        if self._input is not x or self._output is None:
            self._input, self._output = x, int4_mm(x, self.packed, self.scales_zeros)
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


class Fp16Embedding(nn.Module):
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
                        release_freed_memory()
                setattr(module, name, Fp16Linear(half(child.weight), child.bias) if groups is None
                        else Int4Linear(half(child.weight), child.bias, *groups))
            elif isinstance(child, nn.Embedding):
                setattr(module, name, Fp16Embedding(half(child.weight)))
    for module in list(model.modules()):
        for names in SIBLINGS:
            layers = [getattr(module, name, None) for name in names]
            if all(isinstance(layer, Int4Linear) for layer in layers):
                SharedInput(layers)  # type: ignore[arg-type]
    for param in model.parameters():
        param.data = param.data.to(torch.float32)
    for module in model.modules():
        if isinstance(module, (Fp16Linear, Fp16Embedding)):
            continue
        for name, buffer in list(module.named_buffers(recurse=False)):
            if buffer is not None and buffer.is_floating_point() and buffer.dtype != torch.float32:
                setattr(module, name, buffer.to(torch.float32))
    return model


def apply_weights(model: nn.Module, weights: Weights) -> None:
    """Give a loaded float model the layers of `weights` (resolved, not `auto`; float32 leaves it as it is)."""
    if weights == "int4":
        fp16_linear_weights(model, torch.float16, int4=True)
        four_bit = sum(isinstance(m, Int4Linear) for m in model.modules())
        linear = sum(isinstance(m, Fp16Linear) for m in model.modules())
        log.info("%d of %d linear layers decode with 4-bit weights, the rest float16", four_bit, linear)
        release_freed_memory()
    elif weights != "float32":
        fp16_linear_weights(model, getattr(torch, weights))


def release_freed_memory() -> None:
    """Give the C heap's free pages back to the system (glibc only; elsewhere a no-op).

    Packing the 4-bit weights frees float32 temporaries that glibc would
    otherwise keep in the process's resident memory: ~400 MB over the model.
    """
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass

