"""What constrained decoding (a JSON schema, llguidance) costs per token on the transformers engine.

    python bench/constrained_decoding.py [--tokens 64] [--runs 7] [--weights int4]

One process, one loaded model: the same prompt is answered greedily, in turns,
without a constraint and under a JSON schema whose one string field lets the
answer run to `--tokens`. Per answer, the decode time per token after the first
(so the prompt's prefill is left out); printed: the median of each, and the
difference. On a shared machine that difference drowns in noise, so the
constraint's own work is also timed alone: a constrained answer's tokens replayed
through a fresh matcher (mask computed, applied to logits, token taken), median per token.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPT = "Write a long story about the sea, as JSON with the story in `story`."
SCHEMA = {"type": "object", "properties": {"story": {"type": "string"}}, "required": ["story"]}


def _request(max_tokens: int, constrained: bool) -> Any:
    from app.domain.models import ChatMessage, ChatRequest

    response_format = ({"type": "json_schema", "json_schema": {"name": "story", "schema": SCHEMA}}
                       if constrained else None)
    return ChatRequest(messages=(ChatMessage(role="user", content=PROMPT),), max_tokens=max_tokens,
                       response_format=response_format)


def _replay_ms_per_token(engine: Any, text: str) -> float:
    """Milliseconds per token of the constraint's own work: `text`'s tokens replayed through a new matcher."""
    import torch

    from app.adapters.local.constraints import Grammar

    grammar = Grammar.of(_request(1, True))
    assert grammar is not None
    matcher = grammar.matcher(engine.vocabulary())
    logits = torch.zeros(engine.model.config.vocab_size)
    times = []
    for token in engine.tokenizer(text, add_special_tokens=False)["input_ids"]:
        started = time.perf_counter()
        logits.masked_fill_(~torch.from_numpy(matcher.allowed(logits.shape[-1])), float("-inf"))
        matcher.advance(token)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _ms_per_token(provider: Any, request: Any) -> tuple[float, int]:
    """Decode milliseconds per token after the first, and the tokens generated."""
    first = None
    tokens = 0
    async with await provider.open_stream(request) as stream:
        async for chunk in stream:
            if chunk.text and first is None:
                first = time.perf_counter()
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
    ended = time.perf_counter()
    if first is None or tokens < 2:
        return float("nan"), tokens
    return (ended - first) * 1000 / (tokens - 1), tokens


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--weights", default="int4")
    args = parser.parse_args()

    from app.adapters.local.provider import LocalProvider
    from app.adapters.local.source import resolve_model_source
    from app.adapters.local.transformers.engine import TransformersEngine

    source = resolve_model_source("")
    with tempfile.TemporaryDirectory() as cache:
        engine = TransformersEngine(source=source, cache_dir=cache, weights=args.weights, batch_size=1)
        provider = LocalProvider(engine=engine, model_id=source.model_id, max_tokens=args.tokens)
        await provider.load()
        for constrained in (False, True):  # warm-up: first steps, the vocabulary llguidance reads
            await _ms_per_token(provider, _request(args.tokens, constrained))
        figures: dict[bool, list[float]] = {False: [], True: []}
        counts: dict[bool, list[int]] = {False: [], True: []}
        for _ in range(args.runs):
            for constrained in (False, True):  # in turns, so drift in the machine's load hits both
                ms, tokens = await _ms_per_token(provider, _request(args.tokens, constrained))
                figures[constrained].append(ms)
                counts[constrained].append(tokens)
        answer = await provider.complete(_request(args.tokens, True))
        replay = _replay_ms_per_token(engine, answer.text or "")
        provider.close()

    free, constrained = (statistics.median(figures[flag]) for flag in (False, True))
    print(f"transformers ({args.weights}), {source.name}, {args.runs} runs each, "
          f"up to {args.tokens} tokens")
    print(f"  free text:           {free:6.2f} ms/token (median; tokens {counts[False]})")
    print(f"  under a JSON schema: {constrained:6.2f} ms/token (median; tokens {counts[True]})")
    print(f"  difference:          {constrained - free:+6.2f} ms/token ({(constrained / free - 1) * 100:+.0f}%)")
    print(f"  the constraint alone: {replay:5.3f} ms/token (median: mask, apply, take the token)")


if __name__ == "__main__":
    asyncio.run(main())
