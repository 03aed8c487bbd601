"""A scripted local engine: plays text pieces, one token each, and records what the provider asked of it."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from llguidance import LLTokenizer

from app.adapters.local.engine import Job
from app.domain.errors import NotSupportedLocally
from app.domain.models import ChatRequest


class ScriptedEngine:
    """Implements the local `Engine` protocol without a model.

    Each job gets `pieces` in order, one token per piece, until its token limit
    or its cancellation. While `gate` is clear, generation waits before each
    token: a test can hold a request mid-generation, then let it go.
    """

    def __init__(self, pieces: Sequence[str] = ("Hello", " world"), *, context_length: int = 512,
                 batch_size: int = 1, pause: float = 0.0, fail_load: int = 0,
                 fail_generate: bool = False) -> None:
        self.pieces = list(pieces)
        self.context_length = context_length
        self.batch_size = batch_size
        self.gate = threading.Event()
        self.gate.set()
        self.pause = pause  # seconds each token takes
        self.loads = 0
        self.encode_threads: list[int] = []  # thread id of each encode call
        self.tokens_emitted = 0
        self.started = threading.Event()  # set whenever a generate call begins
        self.finished = threading.Event()  # set whenever a generate call returns
        self._fail_load = fail_load  # how many loads fail before one succeeds
        self._fail_generate = fail_generate

    def load(self) -> int:
        """Count the load; fail the first `fail_load` ones."""
        self.loads += 1
        if self.loads <= self._fail_load:
            raise OSError("weights unreadable")
        return self.context_length

    def encode(self, request: ChatRequest) -> list[int]:
        """One token per word of the prompt or messages."""
        self.encode_threads.append(threading.get_ident())
        text = request.prompt if request.prompt is not None else " ".join(m.content for m in request.messages)
        return [1] * max(1, len(text.split()))

    def vocabulary(self) -> LLTokenizer:
        """No vocabulary: the script cannot follow a grammar, so a constrained request fails here."""
        raise NotSupportedLocally("The scripted engine cannot constrain its output.", param="response_format")

    def generate(self, batch: Sequence[Job]) -> None:
        """Emit the script to every job of the batch, a token at a time."""
        self.started.set()
        try:
            if self._fail_generate:
                raise RuntimeError("the runtime crashed")
            for job in batch:
                for piece in self.pieces[: job.max_new]:
                    while not self.gate.wait(0.01):
                        if job.cancelled:
                            break
                    if job.cancelled:
                        break
                    time.sleep(self.pause)
                    self.tokens_emitted += 1
                    job.emit(piece, tokens=1)
        finally:
            self.finished.set()
