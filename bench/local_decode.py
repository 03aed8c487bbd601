"""Local runners compared on the embedded model: load, first token, decode speed, memory, concurrency.

    python bench/local_decode.py [--tokens 128] [--runs 3] [--runners transformers,llamacpp]

Every scenario runs in its own child process, so peak RSS (ru_maxrss of the
child) belongs to that runner alone. Greedy decoding, the same prompts for
every runner. Prints a table; nothing here is asserted by tests.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROMPTS = [
    "Write a short poem about the sea.",
    "Explain how a bicycle works to a ten-year-old.",
    "List some tips for staying productive when working from home.",
]
RUNNERS = ["transformers", "transformers-fp16", "transformers-bf16", "transformers-fp32", "llamacpp"]


def _provider(runner: str, cache: str, max_tokens: int, context: int) -> Any:
    """The local provider over the runner's engine (each engine imported only when benchmarked)."""
    from app.adapters.local.provider import LocalProvider
    from app.adapters.local.source import resolve_model_source

    source = resolve_model_source(os.environ.get("LOCAL_MODEL", ""))
    engine: Any
    if runner == "llamacpp":
        from app.adapters.local.llamacpp import LlamaCppEngine

        engine = LlamaCppEngine(source=source, context_tokens=context)
    else:
        from app.adapters.local.transformers.engine import TransformersEngine

        weights = {"transformers-fp32": "float32", "transformers-bf16": "bfloat16",
                   "transformers-fp16": "float16"}.get(runner, "int4")
        engine = TransformersEngine(source=source, cache_dir=cache, weights=weights, context_tokens=context)
    return LocalProvider(engine=engine, model_id=source.model_id, max_tokens=max_tokens)


def _ask(text: str, max_tokens: int) -> Any:
    from app.domain.models import ChatMessage, ChatRequest

    return ChatRequest(messages=(ChatMessage(role="user", content=text),), max_tokens=max_tokens)


async def _timed_stream(provider: Any, text: str, max_tokens: int) -> dict[str, Any]:
    """Time to first text, decode speed after it, tokens and text of one greedy answer."""
    started = time.perf_counter()
    first = None
    parts: list[str] = []
    tokens = 0
    async with await provider.open_stream(_ask(text, max_tokens)) as stream:
        async for chunk in stream:
            if chunk.text and first is None:
                first = time.perf_counter()
            parts.append(chunk.text)
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
    ended = time.perf_counter()
    first = first or ended
    decode = (tokens - 1) / (ended - first) if tokens > 1 and ended > first else 0.0
    return {"ttft": first - started, "decode": decode, "tokens": tokens, "seconds": ended - started,
            "text": "".join(parts)}


async def _child(runner: str, scenario: str, cache: str, tokens: int, runs: int) -> dict[str, Any]:
    provider = _provider(runner, cache, tokens, context=2048)
    started = time.perf_counter()
    await provider.load()
    result: dict[str, Any] = {"load": time.perf_counter() - started,
                              "converted": bool(getattr(provider.engine.load_info, "converted", False))}
    if scenario == "decode":
        await _timed_stream(provider, "Say hi.", 4)  # warm-up: first-call allocations
        samples = [await _timed_stream(provider, p, tokens) for _ in range(runs) for p in PROMPTS]
        result.update(ttft=statistics.median(s["ttft"] for s in samples),
                      decode=statistics.median(s["decode"] for s in samples),
                      tokens=statistics.median(s["tokens"] for s in samples),
                      text=samples[0]["text"])
    elif scenario == "concurrent":
        await _timed_stream(provider, "Say hi.", 4)
        for clients in (1, 4):
            began = time.perf_counter()
            answers = await asyncio.gather(*(_timed_stream(provider, PROMPTS[i % len(PROMPTS)], tokens)
                                             for i in range(clients)))
            result[f"aggregate_{clients}"] = sum(a["tokens"] for a in answers) / (time.perf_counter() - began)
    provider.close()
    result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _run_child(runner: str, scenario: str, cache: str, tokens: int, runs: int) -> dict[str, Any]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, __file__, "--child", runner, scenario, "--cache", cache,
                           "--tokens", str(tokens), "--runs", str(runs)],
                          capture_output=True, text=True, env=env, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode or not lines:
        print(f"  {runner}/{scenario} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return {}
    return json.loads(lines[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=128, help="tokens generated per answer")
    parser.add_argument("--runs", type=int, default=3, help="runs of each prompt for the decode median")
    parser.add_argument("--runners", default=",".join(RUNNERS), help="comma-separated runners")
    parser.add_argument("--cache", default="", help="(child) model cache directory")
    parser.add_argument("--child", nargs=2, metavar=("RUNNER", "SCENARIO"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = asyncio.run(_child(*args.child, args.cache, args.tokens, args.runs))
        print(json.dumps(result))
        return

    runners = [r for r in args.runners.split(",") if r]
    if "llamacpp" in runners and importlib.util.find_spec("llama_cpp") is None:
        print("llama-cpp-python is not installed: skipping the llamacpp runner")
        runners.remove("llamacpp")
    print(f"cpus={os.cpu_count()} tokens={args.tokens} runs={args.runs}x{len(PROMPTS)} prompts, greedy; "
          f"load average {os.getloadavg()[0]:.2f}")
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-model-cache-") as cache:
        for runner in runners:
            results[runner] = {}
            for scenario in ("cold", "decode", "concurrent"):
                print(f"  running {runner}/{scenario} ...", file=sys.stderr, flush=True)
                results[runner][scenario] = _run_child(runner, scenario, cache, args.tokens, args.runs)

    header = (f"{'runner':<18} {'first load s':>12} {'cached load s':>13} {'TTFT ms':>8} {'decode tok/s':>12} "
              f"{'peak RSS MB':>11} {'1 client tok/s':>14} {'4 clients tok/s':>15}")
    print(header)
    print("-" * len(header))
    for runner, by in results.items():
        cold, decode, conc = by.get("cold", {}), by.get("decode", {}), by.get("concurrent", {})
        first = f"{cold.get('load', float('nan')):.2f}" + (" conv" if cold.get("converted") else "")
        print(f"{runner:<18} {first:>12} {decode.get('load', float('nan')):>13.2f} "
              f"{decode.get('ttft', float('nan')) * 1000:>8.0f} {decode.get('decode', float('nan')):>12.1f} "
              f"{decode.get('rss_mb', float('nan')):>11.0f} {conc.get('aggregate_1', float('nan')):>14.1f} "
              f"{conc.get('aggregate_4', float('nan')):>15.1f}")
    print("\nfirst load: 'conv' = the GGUF file was converted (first start with an empty LOCAL_MODEL_CACHE);")
    print("llama.cpp reads the GGUF file directly. cached load: a later start.")
    print("peak RSS: of the decode child (load + generation), ru_maxrss.")
    fast = results.get("transformers", {}).get("decode", {}).get("text")
    exact = results.get("transformers-fp32", {}).get("decode", {}).get("text")
    if fast is not None and exact is not None:
        print(f"default (int4) greedy text == fp32 greedy text: {fast == exact}")
    half = results.get("transformers-fp16", {}).get("decode", {}).get("text")
    if half is not None and exact is not None:
        print(f"fp16-linear greedy text == fp32 greedy text: {half == exact}")
    for runner, by in results.items():
        text = by.get("decode", {}).get("text", "")
        print(f"{runner} answer to {PROMPTS[0]!r}: {text[:120]!r}")


if __name__ == "__main__":
    main()
