"""Decode steps of a Llama-type int4 model as plain tensor code, outside transformers' forward."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import DynamicCache, PreTrainedModel

from app.adapters.local.transformers.weights import INT4_GROUP, Fp16Embedding, Fp16Linear, Int4Linear


class FastDecoder:
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
                or not isinstance(getattr(model, "lm_head", None), Fp16Linear)
                or not isinstance(getattr(inner, "embed_tokens", None), Fp16Embedding)):
            return False
        for layer in inner.layers:
            attn, mlp = layer.self_attn, layer.mlp
            fused = [attn.q_proj, attn.k_proj, attn.v_proj, mlp.gate_proj, mlp.up_proj]
            if not all(isinstance(m, Int4Linear) and m.shared is not None and m.bias is None for m in fused):
                return False
            if attn.q_proj.shared is not attn.v_proj.shared or mlp.gate_proj.shared is not mlp.up_proj.shared:
                return False
            if not all(isinstance(m, Int4Linear) and m.shared is None and m.bias is None
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

