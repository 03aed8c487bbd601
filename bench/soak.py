"""Soak: many mixed requests against a real uvicorn, Groq at the fake Groq on loopback; memory and fds.

    python bench/soak.py                       # 20,000 requests after 2,000 of warm-up
    python bench/soak.py --requests 50000 --concurrency 32 --max-seconds 1200

The mix, request by request: non-streamed and streamed answers, upstream
failures (a Groq 400, a 500, a stream cut mid-body), clients that leave (a
non-streamed request abandoned while Groq stalls, a stream closed after its
first event) and wrong keys (401). The server is `uvicorn app.main:create_app`
as `make serve` runs it (head guard, no proxy headers, no access log), with no
fallback to the local model, so only the HTTP edge and the upstream path are
soaked. It prints the server's VmRSS and open file descriptors (from
/proc/<pid>/status and /proc/<pid>/fd) at start, after warm-up and at the end,
with the growth after warm-up (targets: under 10% RSS, no fd growth). Each
measure is taken after the load stops and the clients' connections close.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.fake_groq import (  # noqa: E402
    FAKE_GROQ_KEY,
    BrokenStream,
    Fail,
    FakeGroq,
    Stall,
    groq_error,
)
from tests.support.server import AppServer  # noqa: E402

ADMIN = "soak-admin-secret-0123456789"
FLAGS = ("--http", "app.entrypoints.http.head_guard:HeadGuardedProtocol", "--no-access-log")
# A Groq model by name: with FALLBACK_TO_LOCAL=false no failure loads the local model (~300 MB),
# which would hide any growth of the HTTP path.
BODY = {"model": "openai/gpt-oss-120b", "messages": [{"role": "user", "content": "hello"}]}
# One cycle of 20 requests: what each slot does.
MIX = (["whole"] * 7 + ["stream"] * 5 + ["groq_400", "groq_500", "stream_cut"]
       + ["abandon_whole", "abandon_stream"] + ["wrong_key"] * 3)


# What the fake Groq does for each kind of request (a 500 is retried: the retry gets an answer).
BEHAVIOURS = {"groq_400": Fail(400, groq_error("bad request")),
              "groq_500": Fail(500, groq_error("boom", type_="internal_server_error")),
              "stream_cut": BrokenStream(chunks=1), "abandon_whole": Stall(3.0)}
USERS = itertools.count()


def measure(pid: int) -> tuple[int, int]:
    """The server's VmRSS (KiB) and its number of open file descriptors."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def outcome(response: httpx.Response) -> str:
    """The status, and for a 5xx the error code the gateway gave (why it could not answer)."""
    if response.status_code < 500:
        return str(response.status_code)
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = "no envelope"
    return f"{response.status_code} {code}"


async def one(client: httpx.AsyncClient, groq: FakeGroq, kind: str, key: str) -> str:
    """Send one request of `kind`; what came of it (a status, or how the client left)."""
    auth = {"authorization": f"Bearer {'sk-wrong' if kind == 'wrong_key' else key}"}
    stream = kind in ("stream", "stream_cut", "abandon_stream")
    user = f"soak-{next(USERS)}"  # the fake Groq pairs a scripted behaviour with its request by `user`
    body = {**BODY, "user": user, "stream": stream}
    behaviour = BEHAVIOURS.get(kind)
    if behaviour is not None:
        groq.script_for(user, behaviour)
    try:
        if kind == "abandon_whole":
            await client.post("/v1/chat/completions", json=body, headers=auth, timeout=0.2)
            return "not abandoned"
        if not stream:
            return outcome(await client.post("/v1/chat/completions", json=body, headers=auth))
        async with client.stream("POST", "/v1/chat/completions", json=body, headers=auth) as response:
            if kind == "abandon_stream":
                async for _ in response.aiter_bytes():
                    break
                return "left stream"
            await response.aread()
            return outcome(response)
    except httpx.TimeoutException:
        return "left (timeout)" if kind == "abandon_whole" else "timeout"
    except httpx.HTTPError as exc:
        return type(exc).__name__


async def load(base_url: str, groq: FakeGroq, key: str, *, start: int, count: int, concurrency: int,
               deadline: float) -> collections.Counter[str]:
    """`count` requests of the mix, `concurrency` at a time, stopping early at `deadline`."""
    outcomes: collections.Counter[str] = collections.Counter()
    queue = iter(range(start, start + count))
    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:

        async def worker() -> None:
            for i in queue:
                if time.monotonic() > deadline:
                    return
                kind = MIX[i % len(MIX)]
                outcomes[f"{kind}: {await one(client, groq, kind, key)}"] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return outcomes


def connections_by_peer_port(pid: int) -> collections.Counter[int]:
    """The server's established TCP connections, counted by the remote port (which peer holds them)."""
    inodes = {os.readlink(f"/proc/{pid}/fd/{fd}")[8:-1] for fd in os.listdir(f"/proc/{pid}/fd")
              if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:[")}
    peers: collections.Counter[int] = collections.Counter()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and fields[9] in inodes:  # 01: ESTABLISHED
                peers[int(fields[2].rsplit(":", 1)[1], 16)] += 1
    return peers


def report(label: str, pid: int, settle: float, groq_port: int | None = None) -> tuple[int, int]:
    time.sleep(settle)  # abandoned work and closing connections finish first
    rss, fds = measure(pid)
    upstream = f"   of which idle upstream keep-alive {connections_by_peer_port(pid)[groq_port]}" if groq_port else ""
    print(f"{label:<14} RSS {rss / 1024:8.1f} MiB   open fds {fds}{upstream}", flush=True)
    return rss, fds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20_000, help="requests after warm-up")
    parser.add_argument("--warmup", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=900, help="stop sending after this long")
    args = parser.parse_args()

    groq = FakeGroq().start()
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)  # the fake Groq's deliberate stream cuts
    env = {"GROQ_API_KEY": FAKE_GROQ_KEY, "GROQ_BASE_URL": groq.base_url, "ADMIN_SECRET": ADMIN,
           "LOCAL_RUNNER": "llamacpp", "FALLBACK_TO_LOCAL": "false", "LOG_LEVEL": "WARNING",
           "GROQ_TIMEOUT_SECONDS": "10", "AUTH_MAX_FAILURES": "1000000000",
           "CIRCUIT_FAILURE_THRESHOLD": "1000000000"}
    started = time.monotonic()
    deadline = started + args.max_seconds
    with tempfile.TemporaryDirectory(prefix="soak-") as workdir, \
            AppServer(Path(workdir), env, extra_args=FLAGS) as server:
        key = httpx.get(f"{server.base_url}/current-key", headers={"admin-secret": ADMIN}).json()["api_key"]
        report("start", server.pid, 0, groq.port)
        warm = asyncio.run(load(server.base_url, groq, key, start=0, count=args.warmup,
                                concurrency=args.concurrency, deadline=deadline))
        warm_rss, warm_fds = report("after warm-up", server.pid, 6, groq.port)
        soak_started = time.monotonic()
        outcomes = asyncio.run(load(server.base_url, groq, key, start=args.warmup, count=args.requests,
                                    concurrency=args.concurrency, deadline=deadline))
        elapsed = time.monotonic() - soak_started
        end_rss, end_fds = report("end", server.pid, 6, groq.port)
        alive = httpx.get(f"{server.base_url}/healthz").status_code
        log = server.log()
        errors = log.count("Traceback")
        if errors:
            print(log[log.index("Traceback"):][:3000])
    sent = sum(outcomes.values())
    print(f"\nsent {sum(warm.values())} warm-up + {sent} requests in {elapsed:.0f} s "
          f"({sent / elapsed:.0f}/s, concurrency {args.concurrency}); /healthz after: {alive}; "
          f"tracebacks in the server log: {errors}")
    for outcome, count in sorted(outcomes.items()):
        print(f"  {count:6d}  {outcome}")
    growth = 100 * (end_rss - warm_rss) / warm_rss
    print(f"\ngrowth after warm-up: RSS {growth:+.1f}% ({(end_rss - warm_rss) / 1024:+.1f} MiB; "
          "target < 10%), "
          f"fds {end_fds - warm_fds:+d} (target 0)")
    groq.stop()


if __name__ == "__main__":
    main()
