"""The local tier: one `LLMProvider` and `ModelLoader` over a local engine (transformers or llama.cpp).

Everything but the runtime lives here, once for every engine: the model loads
once (concurrent callers share the load); a bounded queue admits requests;
one generation thread runs the engine, batching compatible requests; one
bridge carries its text back to the event loop; stop sequences are held back
until decided; usage and the finish reason are counted here. A JSON answer
(`response_format`) is decoded under a grammar (`constraints.py`) the engine applies.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import aclosing
from typing import Any

from app.adapters.local.admission import AdmissionQueue
from app.adapters.local.constraints import Grammar, GrammarMatcher
from app.adapters.local.engine import Engine, Sampling
from app.domain.errors import NotSupportedLocally, ProviderUnavailable
from app.domain.generation import (
    check_prompt_characters,
    check_prompt_text,
    collect,
    prompt_param,
    token_budget,
)
from app.domain.models import ChatRequest, Chunk, Completion, FinishReason, Usage
from app.domain.stops import StopHoldback
from app.domain.streams import ChunkStream, open_chunks

log = logging.getLogger(__name__)

_END = object()  # the engine is done with a job


class BridgedJob:
    """A request on the generation thread; what the engine emits comes back to the waiting event loop.

    Implements the engine's `Job`. The one way from the generation thread to an event loop.
    """

    def __init__(self, *, prompt: Sequence[int], max_new: int, sampling: Sampling,
                 constraint: GrammarMatcher | None, on_tokens: Callable[[int], None]) -> None:
        self.prompt = prompt
        self.max_new = max_new
        self.sampling = sampling
        self.constraint = constraint
        self._on_tokens = on_tokens
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._cancel = threading.Event()

    @property
    def cancelled(self) -> bool:
        """True once the request needs no more tokens."""
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the engine to stop generating this job (any thread)."""
        self._cancel.set()

    def emit(self, text: str, *, tokens: int) -> None:
        """(Generation thread) hand on `text`, generated with `tokens` more tokens."""
        if tokens:
            self._on_tokens(tokens)
        self._send((text, tokens))

    def fail(self, error: BaseException) -> None:
        """(Generation thread) the engine failed: the waiting request raises `error`."""
        self._send(error)

    def finish(self) -> None:
        """(Generation thread) the engine is done with this job."""
        self._send(_END)

    async def next_piece(self) -> tuple[str, int] | None:
        """The next (text, tokens) the engine emitted; None once it is done. Raises its failure."""
        item = await self._queue.get()
        if item is _END:
            return None
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[no-any-return]

    def _send(self, item: object) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the waiting event loop is gone: nobody is listening
            self._cancel.set()


class GenerationThread:
    """The one thread that runs the engine: the load, then batches of compatible pending jobs."""

    def __init__(self, engine: Engine, *, batch_window: float) -> None:
        self._engine = engine
        self._window = batch_window if engine.batch_size > 1 else 0.0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-generate")
        self._pending: list[BridgedJob] = []
        self._lock = threading.Lock()
        self._running = False  # a batch loop is queued or running on the thread
        self.largest_batch = 0

    def call(self, fn: Callable[[], Any]) -> Future[Any]:
        """Run `fn` on the generation thread."""
        return self._executor.submit(fn)

    def submit(self, job: BridgedJob) -> None:
        """Queue `job`, starting the batch loop if it is idle."""
        with self._lock:
            self._pending.append(job)
            if self._running:
                return
            self._running = True
        self._executor.submit(self._run_batches)

    def close(self) -> None:
        """Stop the thread once the running batch ends; pending requests fail at once."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            dropped, self._pending = self._pending, []
        for job in dropped:
            job.fail(ProviderUnavailable("The local model is shutting down."))

    def _run_batches(self) -> None:
        while True:
            if self._window:
                time.sleep(self._window)  # let requests arriving together share a batch
            with self._lock:
                for gone in [job for job in self._pending if job.cancelled]:  # left while waiting
                    self._pending.remove(gone)
                    gone.finish()
                if not self._pending:
                    self._running = False
                    return
                first = self._pending[0]
                batch = [job for job in self._pending
                         if job is first or first.sampling.batches_with(job.sampling)][: self._engine.batch_size]
                self._pending = [job for job in self._pending if job not in batch]
                self.largest_batch = max(self.largest_batch, len(batch))
            try:
                self._engine.generate(batch)
            except Exception as exc:  # noqa: BLE001  (handed to each waiting request)
                log.exception("local generation failed")
                for job in batch:
                    job.fail(ProviderUnavailable(f"Local generation failed ({type(exc).__name__})."))
            finally:
                for job in batch:
                    job.finish()


def refuse_what_engines_cannot_do(request: ChatRequest) -> None:
    """Refuse (503, saying why) a request whose answer must be a tool call.

    The in-process engines produce no tool calls: a plain-text answer would look
    like success to the client (LangChain's structured output then returns None).
    """
    if request.requires_tool_call:
        raise NotSupportedLocally(
            "This request requires a tool call (`tool_choice`), and the local model that would answer it "
            "cannot call tools. Retry when Groq is available, or serve the local tier from an inference "
            "server that can (LOCAL_RUNNER=server).", param="tool_choice")


class LocalProvider:
    """The local model, whatever its engine; loads once, on first use or at start.

    Generation runs on one thread off the event loop, tokenizing on another, so
    the server keeps answering. Up to the engine's `batch_size` requests run at
    once (compatible ones as one batch), `max_queue` more wait, later ones are
    refused with `Overloaded`. Closing a stream, or cancelling `complete()`,
    stops its generation.
    """

    name = "local"

    def __init__(self, *, engine: Engine, model_id: str, max_tokens: int = 256, max_queue: int = 8,
                 batch_window: float = 0.01) -> None:
        self.engine = engine
        self._model_id = model_id
        self._max_tokens = max_tokens
        self._admission = AdmissionQueue(slots=engine.batch_size, max_waiting=max_queue)
        self._generation = GenerationThread(engine, batch_window=batch_window)
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-encode")
        self._load_lock = threading.Lock()
        self._loading: Future[int] | None = None
        self._context_length: int | None = None
        self.tokens_generated = 0  # over the provider's life; lets tests see generation stop

    def model_ids(self) -> Sequence[str]:
        """The one local model's id."""
        return [self._model_id]

    @property
    def is_loaded(self) -> bool:
        """True once the model is in memory."""
        return self._context_length is not None

    @property
    def admission(self) -> AdmissionQueue:
        """The queue requests wait in for the generation thread."""
        return self._admission

    @property
    def largest_batch(self) -> int:
        """The most requests generated together so far."""
        return self._generation.largest_batch

    async def load(self) -> None:
        """Load the model now (concurrent callers share one load)."""
        await self._ensure_loaded()

    async def complete(self, request: ChatRequest) -> Completion:
        """Generate the whole answer; cancelling the awaiting task stops the generation."""
        async with aclosing(self._answer(request)) as chunks:
            return await collect(chunks, model=self._model_id, provider=self.name)

    async def open_stream(self, request: ChatRequest) -> ChunkStream:
        """Start generating; returns once the first chunk is out (errors before it are raised)."""
        return await open_chunks(self._answer(request))

    def close(self) -> None:
        """Stop the generation and tokenizing threads (requests still waiting for them fail)."""
        self._generation.close()
        self._encoder.shutdown(wait=False, cancel_futures=True)

    async def _answer(self, request: ChatRequest) -> AsyncGenerator[Chunk, None]:
        """The answer's chunks: text as stop sequences allow, then the finish with usage."""
        refuse_what_engines_cannot_do(request)
        sampling = Sampling.of(request)
        # Before the load (a bad schema is the client's mistake), off the event loop (up to ~20 ms).
        grammar = await asyncio.to_thread(Grammar.of, request) if request.requires_json else None
        context_length = await self._ensure_loaded()
        check_prompt_characters(request, context_length=context_length)
        async with self._admission.slot():  # the queue limit holds before any tokenizing
            prompt, constraint = await asyncio.wrap_future(
                self._encoder.submit(self._encode, request, grammar))
            max_new = token_budget(prompt_tokens=len(prompt), context_length=context_length,
                                   requested=request.max_tokens, cap=self._max_tokens,
                                   param=prompt_param(request))
            job = BridgedJob(prompt=prompt, max_new=max_new, sampling=sampling, constraint=constraint,
                             on_tokens=self._count)
            self._generation.submit(job)
            holdback = StopHoldback(request.stop)
            generated = 0
            try:
                while (piece := await job.next_piece()) is not None:
                    text, tokens = piece
                    generated += tokens
                    released = holdback.feed(text)
                    if holdback.stopped:
                        job.cancel()
                    if released:
                        yield self._chunk(text=released)
                    if holdback.stopped:
                        break
                tail = holdback.flush()
                if tail:
                    yield self._chunk(text=tail)
            finally:
                job.cancel()
            finish: FinishReason = "length" if generated >= max_new and not holdback.stopped else "stop"
            yield self._chunk(finish_reason=finish, usage=Usage(len(prompt), generated))

    def _encode(self, request: ChatRequest,
                grammar: Grammar | None) -> tuple[list[int], GrammarMatcher | None]:
        """(Tokenizing thread) the prompt's tokens (once its text is known readable), and its matcher."""
        check_prompt_text(request)
        prompt = self.engine.encode(request)
        return prompt, None if grammar is None else grammar.matcher(self.engine.vocabulary())

    def _chunk(self, **fields: Any) -> Chunk:
        return Chunk(model=self._model_id, provider=self.name, **fields)

    def _count(self, tokens: int) -> None:
        self.tokens_generated += tokens  # only the generation thread writes it

    async def _ensure_loaded(self) -> int:
        """The context length, once the model is loaded; the first caller starts the one load."""
        if self._context_length is not None:
            return self._context_length
        with self._load_lock:
            if self._loading is None:
                self._loading = self._generation.call(self._load)
            loading = self._loading
        # Shielded: one waiter giving up must not cancel the load the others wait for.
        return await asyncio.shield(asyncio.wrap_future(loading))

    def _load(self) -> int:
        """(Generation thread) load through the engine; a failure lets the next request try again."""
        try:
            self._context_length = self.engine.load()
            return self._context_length
        except ProviderUnavailable:
            self._forget_load()
            raise
        except Exception as exc:
            self._forget_load()
            log.exception("the local model failed to load")
            raise ProviderUnavailable(f"The local model failed to load ({type(exc).__name__}).") from exc

    def _forget_load(self) -> None:
        with self._load_lock:
            self._loading = None
