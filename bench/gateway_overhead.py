"""What the gateway adds to a request, measured side by side with direct calls (issue 14).

One run starts, on loopback only:
- a canned OpenAI-compatible upstream (raw asyncio on uvloop, one process) answering
  `GET /models` and `POST /chat/completions`, whole or streamed, with fixed bodies;
- this gateway as `make serve` starts it (same uvicorn flags), pointed at that upstream,
  with `--workers 1` and then `--workers 2` (sharing their metrics: PROMETHEUS_MULTIPROC_DIR);
- LiteLLM's proxy, when `/tmp/litellm-venv` holds it (`make bench-gateway LITELLM=1` tries
  to create it, bounded to 5 minutes); otherwise its rows say "not installed".

Load comes from wrk (Debian's `wrk`; a Lua script POSTs the body), each cell bounded by
DURATION seconds, at concurrency 1, 16 and 64, whole and streamed. A raw-socket client
measures the time to the first streamed byte at concurrency 1. Printed per cell: p50/p99,
the latency added over direct calls, requests/s, and the gateway's RSS after the load.
The numbers are for comparison within one run: the upstream, wrk and the gateway share the cores.

Then issue 14's targets are measured again with the targets taking turns (`--rounds`,
`--round-seconds`): each round runs direct calls and every gateway one after the other
(whole at concurrency 1, then concurrency 16), then asks each target for the time to first byte
of 100 streamed requests in turns of 50 back to back (as wrk asks the whole answers), then of 100
more alternating request by request, each request after a pause. The medians over the rounds are
what to quote: minutes apart, the same code's figures move by 15% or more on these shared machines
(a first-byte p50 taken in one stretch of the run moved from 0.73 to 1.20 ms between two runs of the
same code, where the per-round medians of the other targets held). Those rounds also
print the CPU time each gateway spent per request (at concurrency 1 the gateway is busy for most
of each request, so that is most of its added latency) and, next to the worker ratio, what two busy
processes give over one on this machine in that round, and the ratio of the plainest Python proxy
(`bench/plain_proxy.py`, one and two workers, taking the same turns); the run ends with the CPU steal it
saw and a round trip to another process back to back and after a pause (how slow this machine
is to wake an idle core).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
MODEL = "llama-3.3-70b-versatile"
CONCURRENCIES = (1, 16, 64)
TTFB_SAMPLES = 300
TTFB_TURN = 50  # first-byte requests in a row per target when they take turns
TTFB_ROUND_SAMPLES = 100  # first-byte requests per target in each round of the turn-taking section
LITELLM_VENV = Path("/tmp/litellm-venv")
REPO = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------- the canned upstream

COMPLETION = json.dumps({
    "id": "chatcmpl-canned", "object": "chat.completion", "created": 1700000000, "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                 "finish_reason": "stop", "logprobs": None}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21},
}).encode()


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
    body = {"id": "chatcmpl-canned", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}
    if usage is not None:
        body["x_groq"] = {"id": "req_canned", "usage": usage}
    return b"data: " + json.dumps(body).encode() + b"\n\n"


STREAM = b"".join([
    _chunk({"role": "assistant", "content": ""}),
    *(_chunk({"content": word}) for word in ("Hello", "!", " How", " can", " I", " help", " you", " today", "?")),
    _chunk({}, finish="stop", usage={"prompt_tokens": 12, "completion_tokens": 9, "total_tokens": 21}),
    b"data: [DONE]\n\n",
])
MODELS = json.dumps({"object": "list", "data": [
    {"id": MODEL, "object": "model", "created": 1700000000, "owned_by": "Meta", "active": True,
     "context_window": 131072}]}).encode()


def _response(status: str, content_type: str, body: bytes) -> bytes:
    return (f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n"
            "connection: keep-alive\r\n\r\n").encode() + body


def _streamed(body: bytes) -> bytes:
    # Two HTTP chunks: the first event alone, then the rest (a stream's first chunk comes first).
    first_end = body.index(b"\n\n") + 2
    parts = [body[:first_end], body[first_end:]]
    chunked = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"
    return (b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
            b"connection: keep-alive\r\n\r\n" + chunked)


ANSWERS = {
    "whole": _response("200 OK", "application/json", COMPLETION),
    "stream": _streamed(STREAM),
    "models": _response("200 OK", "application/json", MODELS),
    "missing": _response("404 Not Found", "application/json", b'{"error":{"message":"not found"}}'),
}


class CannedProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, just enough to answer the three requests with fixed bytes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            body, self.buffer = self.buffer[head_end + 4:end], self.buffer[end:]
            path = head.split(" ", 2)[1]
            if path.endswith("/chat/completions"):
                streamed = b'"stream":true' in body.replace(b" ", b"")
                self.transport.write(ANSWERS["stream" if streamed else "whole"])
            elif path.endswith("/models"):
                self.transport.write(ANSWERS["models"])
            else:
                self.transport.write(ANSWERS["missing"])


def serve_upstream(port: int) -> None:
    """Run the canned upstream until killed."""
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(CannedProtocol, HOST, port, backlog=1024)
        await server.serve_forever()

    asyncio.run(main())


# ---------------------------------------------------------------- processes

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {seconds:g} s")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def process_tree(pid: int) -> list[int]:
    """A process and all its live descendants (uvicorn's workers are children of its supervisor)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
        found.append(current)
    return found


def rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    total = 0
    for current in process_tree(pid):
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1024


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process and its live descendants have used so far, in seconds."""
    total = 0
    for current in process_tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat(5))
    return total / CLOCK_TICKS


def gateway_command(port: int, workers: int) -> list[str]:
    """`make serve`'s uvicorn command (keep the flags in step with the Makefile), plus --workers."""
    return [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--no-proxy-headers",
            "--host", HOST, "--port", str(port),
            "--http", "app.entrypoints.http.head_guard:HeadGuardedProtocol", "--limit-concurrency", "64",
            "--workers", str(workers)]


def start_gateway(upstream: int, workers: int, tmp: Path) -> tuple[subprocess.Popen, int, str]:
    port = free_port()
    key_file = tmp / f"key-{port}.json"
    env = {**os.environ, "GROQ_API_KEY": "gsk_bench_not_a_real_key", "GROQ_BASE_URL": f"http://{HOST}:{upstream}",
           "KEY_FILE": str(key_file), "LOCAL_PRELOAD": "false", "LOG_LEVEL": "info",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    if workers > 1:  # as the README's Metrics section has several workers run: their metrics summed
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / f"metrics-{port}")
    log = open(tmp / f"gateway-{port}.log", "wb")
    proc = subprocess.Popen(gateway_command(port, workers), cwd=REPO, env=env, stdout=log, stderr=log,
                            start_new_session=True)
    wait_for_port(port, proc, 60)
    deadline = time.monotonic() + 30
    while not key_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    key = json.loads(key_file.read_text())["api_key"]
    time.sleep(1.0 if workers == 1 else 3.0)  # let every worker finish its start-up
    return proc, port, key


def start_plain_proxy(upstream: int, workers: int, tmp: Path) -> tuple[subprocess.Popen, int]:
    """`bench/plain_proxy.py` under uvicorn's fast HTTP stack, the reference for the worker ratio."""
    port = free_port()
    env = {**os.environ, "PLAIN_PROXY_UPSTREAM": f"http://{HOST}:{upstream}/chat/completions"}
    log = open(tmp / f"plain-proxy-{port}.log", "wb")
    command = [sys.executable, "-m", "uvicorn", "plain_proxy:app", "--app-dir", str(REPO / "bench"),
               "--host", HOST, "--port", str(port), "--http", "httptools", "--loop", "uvloop",
               "--no-access-log", "--workers", str(workers)]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
    wait_for_port(port, proc, 30)
    time.sleep(1.0 if workers == 1 else 3.0)
    return proc, port


def start_litellm(upstream: int, tmp: Path) -> tuple[subprocess.Popen, int, str] | None:
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        return None
    port = free_port()
    config = tmp / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: http://{HOST}:{upstream}\n"
        "      api_key: bench-not-a-real-key\n"
        "litellm_settings:\n  telemetry: false\n")
    # HF_HUB_OFFLINE: for a `llama-3` model LiteLLM's streams count tokens with a tokenizer it fetches from
    # huggingface.co; with no internet, each fetch is retried for ~20 s and no stream finished in a cell.
    # Offline, it counts with the tokenizer it ships (as a deployment without internet would).
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": "sk-bench", "HF_HUB_OFFLINE": "1",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_DOCS": "True", "DISABLE_SCHEMA_UPDATE": "True"}
    log = open(tmp / "litellm.log", "wb")
    proc = subprocess.Popen([str(binary), "--config", str(config), "--host", HOST, "--port", str(port),
                             "--num_workers", "1"], env=env, stdout=log, stderr=log, start_new_session=True)
    try:
        wait_for_port(port, proc, 120)
    except RuntimeError as exc:
        print(f"litellm did not start ({exc}); see {tmp / 'litellm.log'}")
        stop(proc)
        return None
    time.sleep(2)
    return proc, port, "sk-bench"


# ---------------------------------------------------------------- load and latency

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_KEY")
function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("BENCH {\\"p50\\": %d, \\"p99\\": %d, \\"requests\\": %d, \\"us\\": %d, " ..
    "\\"errors\\": %d, \\"non2xx\\": %d}\\n", latency:percentile(50), latency:percentile(99),
    summary.requests, summary.duration, errors, summary.errors.status))
end
"""


def body_for(streamed: bool) -> bytes:
    return json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Say hello."}],
                       "stream": streamed}).encode()


@dataclass
class Cell:
    """One wrk run."""

    p50_ms: float
    p99_ms: float
    rps: float
    failed: int
    requests: int


def wrk(port: int, path: str, key: str, streamed: bool, connections: int, seconds: int, script: Path) -> Cell:
    threads = min(connections, 2)
    env = {**os.environ, "BENCH_BODY": body_for(streamed).decode(), "BENCH_KEY": key}
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s",
                          "--timeout", "10s", "-s", str(script), f"http://{HOST}:{port}{path}"],
                         env=env, capture_output=True, text=True, timeout=seconds + 30)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result: {out.stdout[-500:]} {out.stderr[-500:]}")
    data = json.loads(line[6:])
    return Cell(p50_ms=data["p50"] / 1000, p99_ms=data["p99"] / 1000,
                rps=data["requests"] / (data["us"] / 1e6), failed=data["errors"] + data["non2xx"],
                requests=data["requests"])


class FirstByteProbe:
    """Streamed requests one at a time on a keep-alive socket, each timed from sending to its first `data:` byte.

    The rest of each response is read to its end before the next request (a server that closes
    the connection after `[DONE]` gets a new one). Each read waits 10 s at most.
    """

    def __init__(self, port: int, path: str, key: str) -> None:
        body = body_for(True)
        self.address = (HOST, port)
        self.request = (f"POST {path} HTTP/1.1\r\nhost: {HOST}:{port}\r\ncontent-type: application/json\r\n"
                        f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body
        self.sock: socket.socket | None = None

    def once(self) -> float:
        """One request's time to its first event, in ms."""
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=10)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        start = time.perf_counter()
        self.sock.sendall(self.request)
        seen, first = b"", None
        while True:
            piece = self.sock.recv(65536)
            if not piece:
                if b"[DONE]" not in seen:
                    raise RuntimeError("connection closed mid-answer")
                self.close()
                break
            seen += piece
            if first is None and b"data:" in seen:
                first = time.perf_counter() - start
            if seen.endswith(b"0\r\n\r\n"):
                break
        assert first is not None
        return first * 1000

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def p50_p99(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def first_byte_ms(probes: list[FirstByteProbe], samples: int, turn: int = 1) -> list[tuple[float, float]]:
    """p50/p99 of each probe's time to first byte, the probes taking turns every `turn` requests.

    Taking turns, the targets see the same moments of a noisy machine. With `turn` 1 each
    request comes after the other targets' requests, a pause in which this one sat idle; with
    a longer turn, most come back to back, as wrk's requests do. First, 20 requests to each
    warm the connection pools up and are not counted.
    """
    times: list[list[float]] = [[] for _ in probes]
    try:
        for probe in probes:
            for _ in range(20):
                probe.once()
        for _ in range(-(-samples // turn)):
            for probe, kept in zip(probes, times):
                kept += [probe.once() for _ in range(turn)]
    finally:
        for probe in probes:
            probe.close()
    return [p50_p99(kept) for kept in times]


# ---------------------------------------------------------------- the run

@dataclass
class Target:
    """One thing under load: its label, port, path and key."""

    label: str
    port: int
    path: str
    key: str
    pid: int | None = None
    workers: int = 1


def measure(target: Target, seconds: int, script: Path) -> dict:
    results: dict = {"cells": {}}
    for streamed in (False, True):  # warm-up (a first stream may load what streams need)
        wrk(target.port, target.path, target.key, streamed, 16, 1, script)
    for streamed in (False, True):
        for connections in CONCURRENCIES:
            results["cells"][(streamed, connections)] = wrk(target.port, target.path, target.key, streamed,
                                                            connections, seconds, script)
    try:
        [results["ttfb"]] = first_byte_ms([FirstByteProbe(target.port, target.path, target.key)], TTFB_SAMPLES)
    except (OSError, RuntimeError) as exc:  # socket.timeout is an OSError
        print(f"{target.label}: time to first byte not measured ({exc!r})", flush=True)
        results["ttfb"] = None
    results["rss"] = rss_mb(target.pid) if target.pid else None
    return results


CELL_HEADER = (f"{'target':<20} {'mode':<6} {'conc':>4} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} "
               f"{'+p99 ms':>8} {'req/s':>8} {'failed':>6}")


def print_cells(label: str, results: dict, direct: dict) -> None:
    """One target's wrk rows, printed as soon as it is measured (a later target may fail or hang)."""
    for (streamed, connections), cell in results["cells"].items():
        base = direct["cells"][(streamed, connections)]
        mode = f"{label:<20} {'stream' if streamed else 'whole':<6} {connections:>4}"
        if not cell.requests:  # wrk's latencies are zeros then, not figures
            print(f"{mode} no answer completed in the cell ({cell.failed} failed)", flush=True)
            continue
        added = "" if label == "direct" else f"{cell.p50_ms - base.p50_ms:8.2f} {cell.p99_ms - base.p99_ms:8.2f}"
        print(f"{mode} {cell.p50_ms:8.2f} {cell.p99_ms:8.2f} {added or ' ' * 17:>17} {cell.rps:8.0f} "
              f"{cell.failed:>6}", flush=True)


def report(all_results: dict[str, dict | None]) -> None:
    """The summary: every target's rows again, then time to first byte and RSS, then the worker ratio."""
    direct = all_results["direct"]
    assert direct is not None
    print()
    print(CELL_HEADER)
    for label, results in all_results.items():
        if results is None:
            print(f"{label:<20} not measured")
            continue
        print_cells(label, results, direct)
    print()
    print(f"{'target':<20} {'TTFB p50':>9} {'TTFB p99':>9} {'+p50 ms':>8} {'+p99 ms':>8} {'RSS MB':>8}")
    for label, results in all_results.items():
        if results is None or results["ttfb"] is None:
            continue
        p50, p99 = results["ttfb"]
        added = "" if label == "direct" else f"{p50 - direct['ttfb'][0]:8.2f} {p99 - direct['ttfb'][1]:8.2f}"
        rss = f"{results['rss']:8.0f}" if results["rss"] else f"{'-':>8}"
        print(f"{label:<20} {p50:9.2f} {p99:9.2f} {added or ' ' * 17:>17} {rss}")
    one, two = all_results.get("gateway --workers 1"), all_results.get("gateway --workers 2")
    if one and two:
        ratio = two["cells"][(False, 16)].rps / one["cells"][(False, 16)].rps
        print(f"\n--workers 2 / --workers 1 at concurrency 16, whole: {ratio:.2f}x "
              "(one pass, its cells minutes apart: the turn-taking figure below is the one to quote)")


def spread(values: list[float], fmt: str = "{:.2f}") -> str:
    """`median (min-max)` of one figure over the rounds."""
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def preemptions(pid: int) -> int:
    """How often a process and its live descendants were taken off a core while they could still run."""
    total = 0
    for current in process_tree(pid):
        try:
            status = Path(f"/proc/{current}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += int(status.rpartition("nonvoluntary_ctxt_switches:")[2].split()[0])
    return total


@dataclass
class Spent:
    """A whole-answer wrk cell on a gateway, and what it cost the machine per request."""

    cell: Cell
    gateway_ms: float  # the gateway's CPU time (all its workers)
    load_ms: float  # the CPU time of wrk and the canned upstream, which share the cores with it
    preempted: float  # times a gateway worker was taken off its core while it could still run


def with_cpu(target: Target, upstream: int, connections: int, seconds: int, script: Path) -> Spent:
    """One whole-answer wrk cell on a gateway, and its CPU cost per request in ms (`Spent`).

    At concurrency 1 the gateway is busy for most of each request, so its added latency is
    mostly this CPU time: a figure that moves less with the machine's moment than the latency.
    """
    assert target.pid is not None
    before = cpu_seconds(target.pid), cpu_seconds(upstream), children_cpu_seconds(), preemptions(target.pid)
    cell = wrk(target.port, target.path, target.key, False, connections, seconds, script)
    after = cpu_seconds(target.pid), cpu_seconds(upstream), children_cpu_seconds(), preemptions(target.pid)
    per_request = [(b - a) / max(1, cell.requests) for a, b in zip(before, after)]
    return Spent(cell, 1000 * per_request[0], 1000 * (per_request[1] + per_request[2]), per_request[3])


def children_cpu_seconds() -> float:
    """CPU time of this script's ended children: the wrk runs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def two_turns(spent: list[Spent]) -> Spent:
    """One gateway's two cells of a round, pooled: requests/s over both, CPU per request over both."""
    requests = sum(s.cell.requests for s in spent)
    pooled = Cell(p50_ms=statistics.median(s.cell.p50_ms for s in spent),
                  p99_ms=max(s.cell.p99_ms for s in spent), rps=statistics.fmean(s.cell.rps for s in spent),
                  failed=sum(s.cell.failed for s in spent), requests=requests)
    return Spent(pooled, *(sum(getattr(s, name) * s.cell.requests for s in spent) / max(1, requests)
                           for name in ("gateway_ms", "load_ms", "preempted")))


def there_and_back(targets: list[Target], upstream: int, seconds: int, script: Path) -> list[Spent]:
    """Whole answers at concurrency 16 on each target, there and back (1, 2, 2, 1 workers), pooled."""
    turns: dict[str, list[Spent]] = {t.label: [] for t in targets}
    for target in [*targets, *reversed(targets)]:
        turns[target.label].append(with_cpu(target, upstream, 16, seconds, script))
    return [two_turns(turns[t.label]) for t in targets]


def ratio_and_bound(one: Spent, two: Spent) -> tuple[float, float]:
    """Two workers' throughput over one's, and the most the CPU allowed it: 2 x one / (two + load)."""
    return two.cell.rps / one.cell.rps, 2 * one.gateway_ms / (two.gateway_ms + two.load_ms)


def alternating(direct: Target, gateways: list[Target], plain: list[Target], rounds: int, seconds: int,
                script: Path) -> None:
    """Issue 14's targets measured again, the targets taking turns, so that each round they see the same machine.

    Minutes apart, the same code's figures move by 15% or more on these shared machines:
    each round measures direct calls and every gateway one after the other (whole answers at
    concurrency 1 and 16, then the time to first streamed byte), and the figures quoted are the
    medians over the rounds of what each round measured. At concurrency 16 the
    gateways go there and back (1, 2, 2, 1 workers), so a machine slowing or speeding up
    during a round weighs on both alike.

    `direct.pid` is the canned upstream's: its CPU time and wrk's are the load's share of the
    cores. With both cores full, the worker ratio cannot pass 2 x (one worker's CPU per request)
    / (two workers' CPU per request + the load's): that bound is printed next to the ratio,
    and under it what two busy processes give over one on the machine in that round.

    `plain` (one and two workers of `bench/plain_proxy.py`, the plainest Python proxy) takes the
    same turns at concurrency 16: its ratio is what this harness allows a proxy that spends as
    little CPU per request as Python can. The cheaper a proxy's request, the larger the load's
    share of the cores and the lower its ratio.
    """
    assert direct.pid is not None
    print(f"\nissue 14's targets, the targets taking turns: {rounds} rounds of {seconds} s cells; "
          "median (lowest-highest) over the rounds", flush=True)
    added_p50: dict[str, list[float]] = {t.label: [] for t in gateways}
    added_p99: dict[str, list[float]] = {t.label: [] for t in gateways}
    cpu_c1: dict[str, list[float]] = {t.label: [] for t in gateways}
    loaded: dict[str, list[Spent]] = {t.label: [] for t in gateways}
    ttfb_added: dict[str, list[float]] = {t.label: [] for t in gateways}
    paused_added: dict[str, list[float]] = {t.label: [] for t in gateways}
    ratios: list[float] = []
    bounds: list[float] = []
    plain_ratios: list[float] = []
    plain_bounds: list[float] = []
    plain_cpu: list[float] = []
    scalings: list[float] = []
    steals: list[float] = []
    for _ in range(rounds):
        ticks = cpu_ticks()
        base = wrk(direct.port, direct.path, direct.key, False, 1, seconds, script)
        for target in gateways:
            spent = with_cpu(target, direct.pid, 1, seconds, script)
            added_p50[target.label].append(spent.cell.p50_ms - base.p50_ms)
            added_p99[target.label].append(spent.cell.p99_ms - base.p99_ms)
            cpu_c1[target.label].append(spent.gateway_ms)
        pooled = there_and_back(gateways, direct.pid, seconds, script)
        for target, spent in zip(gateways, pooled):
            loaded[target.label].append(spent)
        if len(pooled) == 2:
            ratio, bound = ratio_and_bound(*pooled)
            ratios.append(ratio)
            bounds.append(bound)
            scalings.append(machine_scaling())
        if len(plain) == 2:
            one, two = there_and_back(plain, direct.pid, seconds, script)
            ratio, bound = ratio_and_bound(one, two)
            plain_ratios.append(ratio)
            plain_bounds.append(bound)
            plain_cpu.append(one.gateway_ms)
        probes = [FirstByteProbe(t.port, t.path, t.key) for t in (direct, *gateways)]
        for turn, added in ((TTFB_TURN, ttfb_added), (1, paused_added)):
            [(direct_p50, _), *ttfbs] = first_byte_ms(probes, TTFB_ROUND_SAMPLES, turn=turn)
            for target, (p50, _) in zip(gateways, ttfbs):
                added[target.label].append(p50 - direct_p50)
        steals.append(steal_percent(ticks, cpu_ticks()))

    def at_16(figure: str, fmt: str = "{:.2f}") -> list[str]:
        return [spread([getattr(s, figure) for s in loaded[t.label]], fmt) for t in gateways]

    width = 44
    print(f"{'':<{width}} {'target':>8}   " + "   ".join(f"{t.label:>24}" for t in gateways))
    rows = [
        ("added p50, concurrency 1, whole (ms)", "<= 1", [spread(added_p50[t.label]) for t in gateways]),
        ("added p99, concurrency 1, whole (ms)", "<= 3", [spread(added_p99[t.label]) for t in gateways]),
        ("req/s per worker, concurrency 16, whole", ">= 1000",
         [spread([s.cell.rps / t.workers for s in loaded[t.label]], "{:.0f}") for t in gateways]),
        ("streamed TTFB added, p50, back to back (ms)", "<= 1", [spread(ttfb_added[t.label]) for t in gateways]),
        ("  the same, each request after a pause (ms)", "", [spread(paused_added[t.label]) for t in gateways]),
        ("gateway CPU per request, concurrency 1 (ms)", "", [spread(cpu_c1[t.label]) for t in gateways]),
        ("gateway CPU per request, concurrency 16 (ms)", "", at_16("gateway_ms")),
        ("wrk + upstream CPU per request, conc. 16 (ms)", "", at_16("load_ms", "{:.3f}")),
        ("gateway preempted per request, conc. 16", "", at_16("preempted")),
    ]
    for name, goal, cells in rows:
        print(f"{name:<{width}} {goal:>8}   " + "   ".join(f"{cell:>24}" for cell in cells))
    if ratios:
        print(f"{'--workers 2 / --workers 1, concurrency 16':<{width}} {'>= 1.7x':>8}   {spread(ratios):>24}"
              f"   (each round: {' '.join(f'{r:.2f}' for r in ratios)})")
        print(f"{'  bound from CPU: 2 x one / (two + load)':<{width}} {'':>8}   {spread(bounds):>24}"
              f"   (each round: {' '.join(f'{r:.2f}' for r in bounds)})")
        print(f"{'  two busy processes / one, this machine':<{width}} {'':>8}   {spread(scalings):>24}"
              f"   (each round: {' '.join(f'{r:.2f}' for r in scalings)})")
    if plain_ratios:
        print("the plainest Python proxy (bench/plain_proxy.py), for reference, on the same cores:")
        print(f"{'  its CPU per request, 1 worker, conc. 16':<{width}} {'':>8}   {spread(plain_cpu):>24}")
        print(f"{'  its --workers 2 / --workers 1':<{width}} {'':>8}   {spread(plain_ratios):>24}"
              f"   (each round: {' '.join(f'{r:.2f}' for r in plain_ratios)})")
        print(f"{'  its bound from CPU':<{width}} {'':>8}   {spread(plain_bounds):>24}"
              f"   (each round: {' '.join(f'{r:.2f}' for r in plain_bounds)})")
    print(f"{'CPU steal in each round (%)':<{width}} {'':>8}   {' '.join(f'{x:.1f}' for x in steals)}")


def spin_rate(seconds: float) -> float:
    """Turns per second of a busy Python loop (dictionary and string work, as a request's) in this process."""
    table: dict[int, str] = {}
    turns, start = 0, time.perf_counter()
    end = start + seconds
    while (now := time.perf_counter()) < end:
        for i in range(256):
            table[i] = str(i)
        turns += 1
    return turns / (now - start)


def busy_processes(count: int, seconds: float) -> float:
    """The summed `spin_rate` of `count` forked processes spinning at once."""
    children = []
    for _ in range(count):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: spin, report, leave without running the parent's cleanup
            os.close(read)
            os.write(write, struct.pack("d", spin_rate(seconds)))
            os._exit(0)
        os.close(write)
        children.append((pid, read))
    total = 0.0
    for pid, read in children:
        with os.fdopen(read, "rb") as pipe:
            total += struct.unpack("d", pipe.read(8))[0]
        os.waitpid(pid, 0)
    return total


def machine_scaling(seconds: float = 1.0) -> float:
    """Two busy processes over one, there and back (1, 2, 2, 1): what the machine's two cores give now.

    Nothing else runs meanwhile (the gateways are idle between cells). Two vCPUs that share a
    physical core, or neighbours on the host, give less than 2x, and whatever two gateway
    workers give is bounded by it too.
    """
    ones, twos = [], []
    for count in (1, 2, 2, 1):
        (ones if count == 1 else twos).append(busy_processes(count, seconds))
    return statistics.fmean(twos) / statistics.fmean(ones)


def cpu_ticks() -> list[int]:
    """The machine's CPU time so far, by state (user, nice, system, idle, iowait, irq, softirq, steal)."""
    return [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]


def steal_percent(before: list[int], after: list[int]) -> float:
    """The share of the machine's time the hypervisor gave to others between two `cpu_ticks()`."""
    spent = [b - a for a, b in zip(before, after)]
    return 100 * spent[7] / max(1, sum(spent))


def print_steal(before: list[int], after: list[int]) -> None:
    """How much CPU the hypervisor gave to others during the run: above a few percent, the figures are noisy."""
    print(f"\nCPU steal during the run: {steal_percent(before, after):.1f}% of the machine's time")


WAKE_GAPS_MS = (0.0, 0.5, 2.0)


def wake_up_round_trips(samples: int = 500) -> dict[float, float]:
    """p50 of a one-byte round trip to another process (µs), back to back and after each idle gap.

    On a VM an idle vCPU is slow to wake: a proxied request crosses two more processes than a
    direct call, so it may pay this once more each way. That is one reason a request asked after
    a pause (the turn-taking first-byte probe) can take longer than one asked back to back.
    """
    ours, theirs = socket.socketpair()
    child = os.fork()
    if child == 0:  # the echo: answers each byte until the socket closes
        ours.close()
        while piece := theirs.recv(16):
            theirs.sendall(piece)
        os._exit(0)
    theirs.close()
    found = {}
    try:
        for gap_ms in WAKE_GAPS_MS:
            took = []
            for _ in range(samples):
                if gap_ms:
                    time.sleep(gap_ms / 1000)
                start = time.perf_counter()
                ours.sendall(b"x")
                ours.recv(16)
                took.append(time.perf_counter() - start)
            found[gap_ms] = statistics.median(took) * 1e6
    finally:
        ours.close()
        os.waitpid(child, 0)
    return found


def print_wake_ups() -> None:
    """The machine's wake-up cost, printed under the run."""
    found = wake_up_round_trips()
    print("a round trip to another process: " + ", ".join(
        f"{us:.0f} us {'back to back' if not gap else f'after {gap:g} ms idle'}" for gap, us in found.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk cell")
    parser.add_argument("--workers", default="1,2", help="gateway worker counts to measure")
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM even when installed")
    parser.add_argument("--rounds", type=int, default=5,
                        help="rounds of the targets taking turns at the end (0: none)")
    parser.add_argument("--round-seconds", type=int, default=3, help="seconds per wrk cell in those rounds")
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)  # internal: run the canned upstream
    args = parser.parse_args()
    if args.upstream:
        serve_upstream(args.upstream)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (Debian: apt-get install -y wrk)")
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as name:
        tmp = Path(name)
        script = tmp / "post.lua"
        script.write_text(WRK_SCRIPT)
        up_port = free_port()
        upstream = subprocess.Popen([sys.executable, __file__, "--upstream", str(up_port)],
                                    start_new_session=True)
        running: list[subprocess.Popen] = [upstream]
        results: dict[str, dict | None] = {}
        ticks = cpu_ticks()
        try:
            wait_for_port(up_port, upstream, 10)
            print(f"canned upstream on {up_port}; {args.duration} s per cell", flush=True)
            results["direct"] = measure(Target("direct", up_port, "/chat/completions", "x"), args.duration, script)
            print(CELL_HEADER, flush=True)
            print_cells("direct", results["direct"], results["direct"])
            gateways = []  # all up at once (an idle one costs the others nothing): they take turns below
            for workers in (int(w) for w in args.workers.split(",")):
                proc, port, key = start_gateway(up_port, workers, tmp)
                running.append(proc)
                gateways.append(Target(f"gateway --workers {workers}", port, "/v1/chat/completions", key,
                                       proc.pid, workers))
            for target in gateways:
                print(f"measuring {target.label}", flush=True)
                results[target.label] = measure(target, args.duration, script)
                print_cells(target.label, results[target.label], results["direct"])
            started = None if args.no_litellm else start_litellm(up_port, tmp)
            if started is None:
                results["litellm proxy"] = None
            else:
                proc, port, key = started
                running.append(proc)
                print("measuring litellm proxy", flush=True)
                results["litellm proxy"] = measure(Target("litellm proxy", port, "/v1/chat/completions", key,
                                                          proc.pid), args.duration, script)
                print_cells("litellm proxy", results["litellm proxy"], results["direct"])
                stop(proc)
            report(results)
            if args.rounds:
                direct = Target("direct", up_port, "/chat/completions", "x", upstream.pid)
                plain = []
                if len(gateways) == 2:
                    for workers in (1, 2):
                        proc, port = start_plain_proxy(up_port, workers, tmp)
                        running.append(proc)
                        plain.append(Target(f"plain proxy --workers {workers}", port, "/v1/chat/completions",
                                            "x", proc.pid, workers))
                alternating(direct, gateways, plain, args.rounds, args.round_seconds, script)
        finally:
            for proc in running:
                stop(proc)
        print_steal(ticks, cpu_ticks())
        print_wake_ups()


if __name__ == "__main__":
    main()
