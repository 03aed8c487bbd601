"""The gateway's CPU instructions per request, counted by valgrind: a figure the machine's noise does not move.

Time per request on these shared 2-core machines varies by ±15% between two runs
of the same code (CPU steal, neighbours' caches), which hides a change worth 2%.
valgrind's callgrind counts the instructions the gateway process runs, in user
space, for a fixed number of sequential requests against the canned upstream of
`bench/gateway_overhead.py`: two runs of the same code agree within 0.3%. System
calls are not counted (their time is, by `gateway_overhead.py`).

The gateway starts under callgrind with counting off (start-up takes a minute
or so: everything runs ~50x slower under valgrind), answers warm-up requests,
then counts `--requests` of them. Needs valgrind (Debian: `apt-get install -y valgrind`).

    python bench/gateway_instructions.py [--requests 200] [--stream]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gateway_overhead as bench  # noqa: E402 - the canned upstream and the gateway's flags, shared

WARM_UP = 50


def request_bytes(port: int, key: str, streamed: bool) -> bytes:
    body = bench.body_for(streamed)
    return (f"POST /v1/chat/completions HTTP/1.1\r\nhost: {bench.HOST}:{port}\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer {key}\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body


def ask(sock: socket.socket, request: bytes, count: int) -> None:
    """`count` requests, one after another on one keep-alive connection, each read to its end."""
    for _ in range(count):
        sock.sendall(request)
        seen = b""
        while True:
            piece = sock.recv(65536)
            if not piece:
                raise RuntimeError("the gateway closed the connection")
            seen += piece
            head, found, body = seen.partition(b"\r\n\r\n")
            if not found:
                continue
            if not head.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"the gateway answered {head[:60]!r}")
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), None)
            if (length is not None and len(body) >= length) or (length is None and body.endswith(b"0\r\n\r\n")):
                break


def callgrind(pid: int, command: str) -> None:
    subprocess.run(["callgrind_control", command, str(pid)], check=True, capture_output=True, timeout=120)


def counted_instructions(out_dir: Path) -> int:
    total = 0
    for dump in out_dir.glob("callgrind.out*"):
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                total += int(line.split()[1])
    return total


def measure(requests: int, streamed: bool) -> int:
    """Instructions per request, for `requests` counted after the warm-up."""
    tmp = Path(tempfile.mkdtemp(prefix="gateway-instructions-"))
    upstream_port = bench.free_port()
    upstream = subprocess.Popen([sys.executable, str(Path(bench.__file__)), "--upstream", str(upstream_port)],
                                start_new_session=True)
    gateway = None
    try:
        bench.wait_for_port(upstream_port, upstream, 20)
        port = bench.free_port()
        key_file = tmp / "key.json"
        env = {**os.environ, "GROQ_API_KEY": "gsk_bench_not_a_real_key",
               "GROQ_BASE_URL": f"http://{bench.HOST}:{upstream_port}", "KEY_FILE": str(key_file),
               "LOCAL_PRELOAD": "false", "LOG_LEVEL": "info", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   f"--callgrind-out-file={tmp / 'callgrind.out'}", *bench.gateway_command(port, 1)]
        log = open(tmp / "gateway.log", "wb")
        gateway = subprocess.Popen(command, cwd=bench.REPO, env=env, stdout=log, stderr=log, start_new_session=True)
        print("starting the gateway under valgrind (a minute or two)...", flush=True)
        bench.wait_for_port(port, gateway, 600)
        deadline = time.monotonic() + 120
        while not key_file.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        request = request_bytes(port, json.loads(key_file.read_text())["api_key"], streamed)
        with socket.create_connection((bench.HOST, port), timeout=120) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            ask(sock, request, WARM_UP)
            callgrind(gateway.pid, "--instr=on")
            ask(sock, request, requests)
            callgrind(gateway.pid, "--dump")
            callgrind(gateway.pid, "--instr=off")
        time.sleep(1)
        return counted_instructions(tmp) // requests
    finally:
        if gateway is not None:
            bench.stop(gateway)
        bench.stop(upstream)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests counted, after 50 of warm-up")
    parser.add_argument("--stream", action="store_true", help="streamed requests (12 events each)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("needs valgrind (Debian: apt-get install -y valgrind)")
    per_request = measure(args.requests, args.stream)
    mode = "stream" if args.stream else "whole"
    print(f"instructions per request ({mode}, {args.requests} sequential requests): {per_request:,}")


if __name__ == "__main__":
    main()
