"""What hostile and slow clients cost the server: memory, CPU and held connections.

Starts `uvicorn app.main:create_app --factory` (LOCAL_RUNNER=llamacpp, no Groq key) with the
given flags and prints, per scenario, the server's resident memory (VmRSS, and the peak VmHWM)
from /proc/<pid>/status, its CPU time, and what the client saw:

    python bench/hostile_clients.py                      # as `make serve` runs it
    python bench/hostile_clients.py --flags ''           # plain uvicorn (httptools), no head guard
    python bench/hostile_clients.py --app-dir /path/to/an/older/checkout --flags ''

Scenarios: a 30 MB body with no key (Content-Length announced); a 30 MB chunked body with
a key; a 64 MB header; 64 clients holding a 1 MiB body each; 300 slow connections (half a
head, or a chunked body that never ends) and how many are still open after 45 s.
"""

from __future__ import annotations

import argparse
import os
import select
import shlex
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024
DEFAULT_FLAGS = "--http app.entrypoints.http.head_guard:HeadGuardedProtocol --limit-concurrency 64"


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    def __init__(self, app_dir: Path, flags: list[str], env: dict[str, str]) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.workdir = Path(tempfile.mkdtemp(prefix="hostile-"))
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "LOCAL_RUNNER": "llamacpp",
                    "ADMIN_SECRET": "bench-admin-secret", **env}
        full_env.pop("GROQ_API_KEY", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--app-dir", str(app_dir),
             "--port", str(self.port), "--no-access-log", *flags],
            cwd=self.workdir, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(600):
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            raise RuntimeError("server did not start")
        self.key = httpx.get(f"{self.url}/current-key", headers={"admin-secret": "bench-admin-secret"},
                             timeout=5).json()["api_key"]

    @property
    def pid(self) -> int:
        return self.process.pid

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=60)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:  # uvicorn waits for connections still held by slow clients
            print("server still up 20 s after SIGTERM: killed")
            self.process.kill()
            self.process.wait(timeout=5)


def push(sock: socket.socket, head: bytes, piece: bytes, total: int, tail: bytes = b"") -> tuple[int, bytes]:
    """Send `head`, then `piece` until `total` bytes (then `tail`), a response or a closed connection."""
    sent, answer = 0, b""
    try:
        sock.sendall(head)
        while sent < total:
            if select.select([sock], [], [], 0)[0]:
                break
            sock.sendall(piece)
            sent += len(piece)
        if sent >= total:
            sock.sendall(tail)
        answer = sock.recv(200)
    except OSError:
        pass
    return sent, answer


def measure(server: Server, name: str, attack) -> None:  # noqa: ANN001 (a callable of the server)
    """Run `attack` while /healthz is probed; print memory, CPU and the worst /healthz latency."""
    rss0, hwm0, cpu0 = status_kib(server.pid, "VmRSS"), status_kib(server.pid, "VmHWM"), cpu_seconds(server.pid)
    worst, stop = 0.0, threading.Event()

    def probe() -> None:
        nonlocal worst
        while not stop.is_set():
            start = time.monotonic()
            try:
                httpx.get(f"{server.url}/healthz", timeout=30)
            except httpx.HTTPError:
                pass
            worst = max(worst, time.monotonic() - start)
            time.sleep(0.05)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    start = time.monotonic()
    outcome = attack(server)
    elapsed = time.monotonic() - start
    stop.set()
    prober.join()
    print(f"{name:<34} {elapsed:7.2f} s  RSS {rss0 / 1024:6.0f} -> {status_kib(server.pid, 'VmRSS') / 1024:6.0f} MB"
          f"  peak +{(status_kib(server.pid, 'VmHWM') - hwm0) / 1024:5.0f} MB"
          f"  CPU {cpu_seconds(server.pid) - cpu0:5.2f} s  /healthz worst {worst * 1000:5.0f} ms  {outcome}")


PREFIX, SUFFIX = b'{"messages": [{"role": "user", "content": "', b'"}]}'  # valid JSON around the bulk


def big_body_no_key(server: Server) -> str:
    with server.connect() as sock:
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % (len(PREFIX) + 30 * MiB + len(SUFFIX)))
        sent, answer = push(sock, head + PREFIX, b"x" * (256 * 1024), 30 * MiB, SUFFIX)
    return f"sent {sent / MiB:.1f} MB, answer {answer[:12]!r}"


def big_chunked_body(server: Server) -> str:
    def chunk(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data)

    with server.connect() as sock:
        head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\nx-api-key: " + server.key.encode() + b"\r\n\r\n")
        sent, answer = push(sock, head + chunk(PREFIX), chunk(b"x" * 0x40000), 30 * MiB,
                            chunk(SUFFIX) + b"0\r\n\r\n")
    return f"sent {sent / MiB:.1f} MB, answer {answer[:12]!r}"


def big_header(server: Server) -> str:
    with server.connect() as sock:
        sent, answer = push(sock, b"GET /healthz HTTP/1.1\r\nHost: b\r\nX-Big: ", b"a" * MiB, 64 * MiB)
        if sent >= 64 * MiB:
            try:
                sock.sendall(b"\r\n\r\n")
                answer = sock.recv(200)
            except OSError:
                pass
    return f"sent {sent / MiB:.1f} MB, answer {answer[:12]!r}"


def held_bodies(server: Server, clients: int = 64) -> str:
    socks = []
    body = b'{"messages": [{"role": "user", "content": "' + b"w" * (MiB - 100)
    for _ in range(clients):
        sock = server.connect()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nx-api-key: %s\r\n\r\n" % (len(body) + 4, server.key.encode()) + body)
        socks.append(sock)
    time.sleep(2)
    held = status_kib(server.pid, "VmRSS") / 1024
    for sock in socks:
        sock.close()
    return f"{clients} clients x 1 MiB held: RSS {held:.0f} MB while held"


def slow_clients(server: Server, count: int = 300, wait: float = 45.0) -> str:
    socks = []
    for i in range(count):
        try:
            sock = server.connect()
            if i % 2:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: b\r\nX-Slow: ")
            else:
                sock.sendall(b"POST /chat HTTP/1.1\r\nHost: b\r\nContent-Type: application/json\r\n"
                             b"Transfer-Encoding: chunked\r\nx-api-key: " + server.key.encode() + b"\r\n\r\n1\r\n{\r\n")
            socks.append(sock)
        except OSError:
            pass
    deadline, open_ = time.monotonic() + wait, set(socks)
    while open_ and time.monotonic() < deadline:
        for sock in select.select(list(open_), [], [], 1)[0]:
            try:
                if not sock.recv(65536):
                    open_.discard(sock)
            except OSError:
                open_.discard(sock)
    for sock in socks:
        sock.close()
    return f"{len(socks)} slow connections, {len(open_)} still open after {wait:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--app-dir", default=str(ROOT), help="checkout whose app is served")
    parser.add_argument("--flags", default=DEFAULT_FLAGS, help="uvicorn flags (default: as make serve)")
    parser.add_argument("--slow-wait", type=float, default=45.0, help="seconds to watch the slow clients")
    args = parser.parse_args()
    server = Server(Path(args.app_dir), shlex.split(args.flags), {})
    print(f"app {args.app_dir}, flags {args.flags or '(none)'}")
    try:
        measure(server, "30 MB body, no key", big_body_no_key)
        measure(server, "30 MB chunked body, key", big_chunked_body)
        measure(server, "64 MB header", big_header)
        measure(server, "64 held 1 MiB bodies", held_bodies)
        measure(server, "300 slow connections", lambda s: slow_clients(s, wait=args.slow_wait))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
