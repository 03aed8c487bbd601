"""A batch of jobs decoded together: left-padded prompts, then one token per row per step.

Rows share each step's fixed cost (weight reads, per-layer overhead), and each
row's text is what it would be alone: left padding puts every row's next token
at the end, and padded positions stay masked out. A row under a constraint (a
JSON schema) has the tokens its grammar forbids masked out of its own logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from app.adapters.local.engine import Job, Sampling
from app.adapters.local.transformers.fast_decode import FastDecoder


def decode_batch(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, jobs: Sequence[Job]) -> None:
    """Generate every job of `jobs` (equal sampling) on this thread, emitting text as tokens come."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = max(len(job.prompt) for job in jobs)
    input_ids = torch.full((len(jobs), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(jobs), width), dtype=torch.long)
    for row, job in enumerate(jobs):
        input_ids[row, width - len(job.prompt):] = torch.tensor(list(job.prompt))
        attention_mask[row, width - len(job.prompt):] = 1
    streamer = BatchStreamer(jobs, tokenizer, stop_ids(model, tokenizer))
    try:
        with torch.inference_mode():
            _decode(model, input_ids, attention_mask, jobs[0].sampling, streamer)
    finally:
        streamer.end()


def stop_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> set[int]:
    """The tokens that end an answer: the model's end-of-sequence tokens and the tokenizer's."""
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    ids.add(tokenizer.eos_token_id)
    return ids


def _decode(model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor,
            sampling: Sampling, streamer: BatchStreamer) -> None:
    """Prefill, then one token per row per step, until every row is done.

    A plain loop over the model's forward: `generate()` adds ~25% per token on
    this model (logits processors, criteria, bookkeeping) for features we do not use.
    """
    generator = None if sampling.seed is None else torch.Generator().manual_seed(sampling.seed)
    cache = DynamicCache(config=model.config)
    positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    step_ids, step_positions, mask = input_ids, positions, attention_mask
    steps = streamer.most_tokens
    fast: FastDecoder | None = None
    for step in range(steps):
        if fast is not None:
            logits = fast.step(step_ids, step_positions)
        else:
            out = model(input_ids=step_ids, attention_mask=mask, position_ids=step_positions,
                        cache=cache, use_cache=True, logits_to_keep=1)
            logits = out.logits[:, -1, :].float()
            if step == 0 and FastDecoder.fits(model):
                fast = FastDecoder(model, cache, attention_mask, steps)
        streamer.constrain(logits)
        if sampling.greedy:
            next_tokens = logits.argmax(dim=-1)
        else:
            next_tokens = sample(logits, temperature=sampling.temperature, top_p=sampling.top_p,
                                 generator=generator)
        streamer.put(next_tokens)
        if streamer.all_done:
            break
        step_ids = next_tokens[:, None]
        step_positions = step_positions[:, -1:] + 1
        if fast is None:
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)


def sample(logits: torch.Tensor, *, temperature: float, top_p: float,
           generator: torch.Generator | None) -> torch.Tensor:
    """One token per row from temperature-scaled logits, within the top-p nucleus."""
    probs = torch.softmax(logits / max(temperature, 1e-5), dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs > top_p  # keep the first token always
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


@dataclass(slots=True)
class _Row:
    """One job's place in the batch: its tokens so far and how much of their text went out."""

    job: Job
    tokens: list[int] = field(default_factory=list)
    sent: int = 0
    done: bool = False


class BatchStreamer:
    """Splits each generated step of a batch into its jobs' text."""

    def __init__(self, jobs: Sequence[Job], tokenizer: PreTrainedTokenizerBase, stop_ids: set[int]) -> None:
        self._rows = [_Row(job) for job in jobs]
        self._tokenizer = tokenizer
        self._stop_ids = stop_ids

    @property
    def most_tokens(self) -> int:
        """Steps the batch may take: the largest token limit of its jobs."""
        return max(row.job.max_new for row in self._rows)

    @property
    def all_done(self) -> bool:
        """True when no row needs another token."""
        return all(row.done or row.job.cancelled for row in self._rows)

    def constrain(self, logits: torch.Tensor) -> None:
        """Mask out of each constrained row's logits (rows, vocabulary) the tokens its grammar forbids."""
        for index, row in enumerate(self._rows):
            if row.job.constraint is not None and not row.done:
                allowed = torch.from_numpy(row.job.constraint.allowed(logits.shape[-1]))
                logits[index].masked_fill_(~allowed, float("-inf"))

    def put(self, value: torch.Tensor) -> None:
        """Take one generated token per row."""
        for row, token in zip(self._rows, value.reshape(len(self._rows), -1)[:, -1].tolist(), strict=True):
            if row.done:
                continue
            if row.job.cancelled or token in self._stop_ids:
                row.done = True
                continue
            row.tokens.append(int(token))
            if row.job.constraint is not None:
                row.job.constraint.advance(int(token))
            row.job.emit(self._new_text(row, final=False), tokens=1)
            if len(row.tokens) >= row.job.max_new or (row.job.constraint is not None
                                                       and row.job.constraint.complete):
                row.done = True

    def end(self) -> None:
        """Hand on each row's last characters (bytes held back until now)."""
        for row in self._rows:
            tail = self._new_text(row, final=True)
            if tail:
                row.job.emit(tail, tokens=0)
            row.done = True

    def _new_text(self, row: _Row, *, final: bool) -> str:
        text = self._tokenizer.decode(row.tokens, skip_special_tokens=True)
        if not final and text.endswith("\ufffd"):
            return ""  # a character split across tokens: wait for its last byte
        new, row.sent = text[row.sent:], max(row.sent, len(text))
        return new
