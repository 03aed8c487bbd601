"""The narrow protocol a local runtime implements; `LocalProvider` does everything around it.

An engine loads a model, turns a request into prompt tokens, and generates a
batch of jobs on the calling thread, handing each job its text as tokens come.
The provider calls all three on its own threads, never on the event loop, and
owns the rest: loading once, the admission queue, batching compatible jobs,
stop sequences, cancellation, usage and the finish reason.

Constrained decoding (JSON answers): a job may carry a `GrammarMatcher`
(`constraints.py`); before picking each of its tokens the engine keeps only the
tokens it allows, hands it the token picked, and ends the job once it is complete.
The engine's `vocabulary` is what the provider builds matchers over.

What is batched: one `generate` call carries up to `batch_size` jobs whose
`Sampling` are equal (see `Sampling.batches_with`); each job has its own
prompt, token limit, constraint and outlet. An engine that cannot batch says `batch_size = 1`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from llguidance import LLTokenizer

from app.adapters.local.constraints import GrammarMatcher
from app.domain.errors import InvalidRequest
from app.domain.models import ChatRequest

SEED_LIMIT = 2**64  # seeds are unsigned 64-bit integers, as torch and OpenAI's API take them


@dataclass(frozen=True, slots=True)
class Sampling:
    """How the next token is picked: greedy (temperature 0), or sampled within the top-p nucleus."""

    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    @classmethod
    def of(cls, request: ChatRequest) -> Sampling:
        """The request's sampling; raises InvalidRequest for a seed that is not an unsigned 64-bit integer."""
        if request.seed is not None and not 0 <= request.seed < SEED_LIMIT:
            raise InvalidRequest(f"`seed` must be an integer from 0 to {SEED_LIMIT - 1}.", param="seed")
        if not request.temperature:  # greedy: a small model samples poorly, and greedy is reproducible
            return cls()
        return cls(temperature=request.temperature, top_p=request.top_p or 1.0, seed=request.seed)

    @property
    def greedy(self) -> bool:
        """True when the most likely token is always taken."""
        return self.temperature == 0.0

    def batches_with(self, other: Sampling) -> bool:
        """True when jobs with these two samplings may generate in one batch.

        A seeded job runs alone: its random generator serves the whole batch, and
        its text must not depend on which requests arrived with it.
        """
        return self == other and self.seed is None


class Job(Protocol):
    """One admitted request, as an engine sees it."""

    @property
    def prompt(self) -> Sequence[int]:
        """Prompt token ids, as `Engine.encode` made them."""
        ...

    @property
    def max_new(self) -> int:
        """Tokens to generate at most."""
        ...

    @property
    def sampling(self) -> Sampling:
        """How to pick tokens (equal for every job of a batch)."""
        ...

    @property
    def constraint(self) -> GrammarMatcher | None:
        """The grammar the answer must follow (a JSON schema), or None for free text."""
        ...

    @property
    def cancelled(self) -> bool:
        """True once the request needs no more tokens (client gone, stop sequence seen)."""
        ...

    def emit(self, text: str, *, tokens: int) -> None:
        """Hand on `text` after `tokens` more tokens were generated (`text` may be empty, `tokens` 0)."""
        ...


class Engine(Protocol):
    """A local runtime: loads one model, encodes prompts, generates batches of jobs."""

    @property
    def batch_size(self) -> int:
        """Jobs one `generate` call may carry."""
        ...

    def load(self) -> int:
        """Load the model (blocking; called once); returns its context window in tokens."""
        ...

    def encode(self, request: ChatRequest) -> list[int]:
        """The prompt tokens of `request` (its chat template applied); blocking."""
        ...

    def vocabulary(self) -> LLTokenizer:
        """The model's vocabulary as llguidance reads it, for constrained decoding (built once; blocking)."""
        ...

    def generate(self, batch: Sequence[Job]) -> None:
        """Generate every job of `batch`, emitting text as tokens come, until each is done.

        A job is done at the end of sequence, after `max_new` tokens, once its
        constraint is complete, or once `cancelled`. Blocking; raises on a runtime failure.
        """
        ...
