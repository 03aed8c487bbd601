"""What constrained decoding (a JSON schema, llguidance) costs per token on the transformers engine.

    python bench/constrained_decoding.py [--tokens 64] [--runs 7] [--weights int4]

One process, one loaded model: the same prompt is answered greedily, in turns,
without a constraint and under a JSON schema whose one string field lets the
answer run to `--tokens`. Per answer, the decode time per token after the first
(so the prompt's prefill is left out); printed: the median of each, and the
difference. The machine may be shared: read the figures as an order of magnitude.
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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
        provider.close()

    free, constrained = (statistics.median(figures[flag]) for flag in (False, True))
    print(f"transformers ({args.weights}), {source.name}, {args.runs} runs each, up to {args.tokens} tokens")
    print(f"  free text:           {free:6.2f} ms/token (median; tokens {counts[False]})")
    print(f"  under a JSON schema: {constrained:6.2f} ms/token (median; tokens {counts[True]})")
    print(f"  constraint costs:    {constrained - free:+6.2f} ms/token ({(constrained / free - 1) * 100:+.0f}%)")


if __name__ == "__main__":
    asyncio.run(main())
