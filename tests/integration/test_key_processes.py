"""Key stores across real OS processes: derived keys agree, the file store survives races and SIGKILL."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from app.adapters.json_file_key_store import JsonFileKeyStore
from app.domain.keys import looks_like_key, random_key_value
from tests.support.metrics import Scrape
from tests.integration.keys_helpers import (
    WORKTREE,
    child_env,
    fake_upstream,
    free_port,
    kill,
    read_line,
    run_python,
    spawn_python,
    wait_for,
)

SECRET = "p" * 16 + "derived-secret-for-process-tests"
ADMIN = "admin-secret-for-process-tests"

DERIVED_KEY = """
from datetime import datetime
from app.adapters.hmac_derived_key_store import HmacDerivedKeyStore
from app.adapters.system_clock import SystemClock
from app.domain.keys import KeyRotationService

class FixedClock:
    def __init__(self, at): self.at = at
    def now(self): return self.at

at = sys.argv[2]
clock = FixedClock(datetime.fromisoformat(at)) if at != "now" else SystemClock()
store = HmacDerivedKeyStore(secret=sys.argv[1], clock=clock, rotation_days=7)
service = KeyRotationService(store=store, clock=clock, rotation_days=7)
key = service.current()
print(key.value, key.expires_at.isoformat())
"""


# --- derived keys -------------------------------------------------------------------------------

def test_two_processes_with_the_same_secret_agree_on_the_key():
    env = child_env(PYTHONHASHSEED="random")
    first = spawn_python(DERIVED_KEY, SECRET, "2026-03-04T05:06:07+00:00", env=env)
    second = spawn_python(DERIVED_KEY, SECRET, "2026-03-04T05:06:07+00:00", env=env)
    try:
        a, b = read_line(first, 30), read_line(second, 30)
    finally:
        kill(first)
        kill(second)
    assert a == b
    assert looks_like_key(a.split()[0]) and a.split()[1] == "2026-03-05T00:00:00+00:00"


def test_a_new_process_keeps_the_derived_key_and_changes_it_only_at_the_boundary():
    before = run_python(DERIVED_KEY, SECRET, "2026-03-04T23:59:59+00:00").split()
    restarted = run_python(DERIVED_KEY, SECRET, "2026-03-04T23:59:59+00:00").split()
    after = run_python(DERIVED_KEY, SECRET, "2026-03-05T00:00:00+00:00").split()
    other_secret = run_python(DERIVED_KEY, SECRET + "2", "2026-03-04T23:59:59+00:00").split()
    assert restarted == before
    assert after[0] != before[0] and after[1] == "2026-03-12T00:00:00+00:00"
    assert other_secret[0] != before[0]


def test_two_processes_on_the_real_clock_agree():
    a = run_python(DERIVED_KEY, SECRET, "now").split()
    b = run_python(DERIVED_KEY, SECRET, "now").split()
    assert a == b or a[1] != b[1]  # equal unless a period boundary fell between the two runs


# --- the file store under several processes -----------------------------------------------------

FILE_BOOT = """
import os, time
from pathlib import Path
from app.adapters.json_file_key_store import JsonFileKeyStore
from app.adapters.system_clock import SystemClock
from app.domain.keys import KeyRotationService

key_file, sync_dir, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
service = KeyRotationService(store=JsonFileKeyStore(path=key_file, lock_timeout=20),
                             clock=SystemClock(), rotation_days=7)

def wait(path):
    deadline = time.monotonic() + 30
    while not path.exists():
        if time.monotonic() > deadline:
            sys.exit("barrier timed out")
        time.sleep(0.001)

(sync_dir / f"ready-{name}").touch()
wait(sync_dir / "go")
print(service.current().value, flush=True)          # boot: everyone finds the file missing
wait(sync_dir / "verify")
service.authenticate((sync_dir / "verify").read_text().strip())
print("accepted", flush=True)
"""


@pytest.mark.parametrize("round_", range(3))
def test_four_processes_booting_together_end_with_one_key_all_accept(tmp_path: Path, round_: int):
    key_file, sync = tmp_path / "current_key.json", tmp_path / "sync"
    sync.mkdir()
    procs = [spawn_python(FILE_BOOT, str(key_file), str(sync), str(i)) for i in range(4)]
    try:
        wait_for(lambda: len(list(sync.glob("ready-*"))) == 4, timeout=30, what="4 processes ready")
        (sync / "go").touch()
        keys = [read_line(p, 30) for p in procs]
        stored = json.loads(key_file.read_text())
        assert len(set(keys)) == 1 and keys[0] == stored["api_key"]
        assert "previous" not in stored  # minted once: the losers took the winner's key
        (sync / "verify.tmp").write_text(stored["api_key"])
        (sync / "verify.tmp").rename(sync / "verify")  # children must never see it half-written
        assert [read_line(p, 30) for p in procs] == ["accepted"] * 4
        assert [p.wait(timeout=30) for p in procs] == [0] * 4
    finally:
        for p in procs:
            kill(p)


SERVICE_LOOP = """
from app.adapters.json_file_key_store import JsonFileKeyStore
from app.adapters.system_clock import SystemClock
from app.domain.errors import InvalidApiKey
from app.domain.keys import KeyRotationService

service = KeyRotationService(store=JsonFileKeyStore(path=sys.argv[1]), clock=SystemClock(),
                             rotation_days=7, grace_seconds=0)
print(service.current().value, flush=True)
for line in sys.stdin:
    command, _, key = line.strip().partition(" ")
    if command == "auth":
        try:
            service.authenticate(key)
            print("accepted", flush=True)
        except InvalidApiKey:
            print("rejected", flush=True)
"""

ROTATE = """
from app.adapters.json_file_key_store import JsonFileKeyStore
from app.adapters.system_clock import SystemClock
from app.domain.keys import KeyRotationService

store = JsonFileKeyStore(path=sys.argv[1], lock_timeout=5)  # a stuck lock fails the child
service = KeyRotationService(store=store, clock=SystemClock(), rotation_days=7)
print(service.rotate_now().value)
"""


def test_a_rotation_in_one_process_is_honoured_by_another_on_its_next_request(tmp_path: Path):
    key_file = tmp_path / "current_key.json"
    server = spawn_python(SERVICE_LOOP, str(key_file), stdin=subprocess.PIPE)
    try:
        old = read_line(server, 30)

        def ask(key: str) -> str:
            server.stdin.write(f"auth {key}\n")
            server.stdin.flush()
            return read_line(server, 10)

        assert ask(old) == "accepted"
        new = run_python(ROTATE, str(key_file)).strip()
        assert new != old and looks_like_key(new)
        assert ask(old) == "rejected"
        assert ask(new) == "accepted"
    finally:
        kill(server)


# --- crashes mid-write ---------------------------------------------------------------------------

KILLED_BETWEEN_TEMP_AND_RENAME = """
import os, time
from app.adapters.json_file_key_store import JsonFileKeyStore
from app.adapters.system_clock import SystemClock
from app.domain.keys import KeyRotationService

service = KeyRotationService(store=JsonFileKeyStore(path=sys.argv[1]), clock=SystemClock(), rotation_days=7)
print(service.current().value, flush=True)

def stalled_replace(src, dst):
    print("temp-written", src, flush=True)
    time.sleep(60)  # SIGKILLed here, with the lock held and the new key only in the temp file

os.replace = stalled_replace
service.rotate_now()
"""


def test_sigkill_between_temp_write_and_rename_leaves_the_old_key_and_frees_the_lock(tmp_path: Path):
    key_file = tmp_path / "current_key.json"
    writer = spawn_python(KILLED_BETWEEN_TEMP_AND_RENAME, str(key_file))
    try:
        old = read_line(writer, 30)
        marker, temp = read_line(writer, 30).split()
        assert marker == "temp-written"
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
    finally:
        kill(writer)
    assert writer.returncode == -signal.SIGKILL
    state = JsonFileKeyStore(path=key_file).load()
    assert state is not None and state.current.value == old and looks_like_key(old)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    json.loads(Path(temp).read_text())  # the unrenamed temp file is whole too (fsynced first)
    # the dead writer's OS lock died with it: the next writer gets it (else filelock.Timeout, exit 1)
    newer = run_python(ROTATE, str(key_file)).strip()
    assert JsonFileKeyStore(path=key_file).load().current.value == newer != old


ROTATE_FOREVER = """
from app.adapters.json_file_key_store import JsonFileKeyStore
from app.adapters.system_clock import SystemClock
from app.domain.keys import KeyRotationService

service = KeyRotationService(store=JsonFileKeyStore(path=sys.argv[1]), clock=SystemClock(), rotation_days=7)
service.current()
n = 0
while True:
    service.rotate_now()
    n += 1
    if n % 10 == 0:
        print(n, flush=True)
"""


@pytest.mark.parametrize("kill_after_lines", [1, 3, 7])
def test_sigkill_at_a_random_point_of_a_rotation_loop_leaves_a_valid_key(tmp_path: Path, kill_after_lines):
    key_file = tmp_path / "current_key.json"
    writer = spawn_python(ROTATE_FOREVER, str(key_file))
    try:
        for _ in range(kill_after_lines):
            read_line(writer, 30)
        time.sleep(0.003 * kill_after_lines)  # land somewhere inside a later write
        os.killpg(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
    finally:
        kill(writer)
    state = JsonFileKeyStore(path=key_file).load()
    assert state is not None and looks_like_key(state.current.value)
    assert state.previous is not None and looks_like_key(state.previous.value)


# --- real uvicorn with four workers --------------------------------------------------------------

def start_uvicorn(port: int, log: Path, prefix: tuple[str, ...] = (), **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--no-proxy-headers",
         "--host", "127.0.0.1",
         "--port", str(port), *env.pop("_args", "").split()],
        cwd=WORKTREE, env=child_env(**env), stdout=log.open("wb"), stderr=subprocess.STDOUT,
        start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def spawned_workers(supervisor: int) -> list[int]:
    """The worker processes uvicorn's supervisor spawned (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and "--multiprocessing-fork" in (entry / "cmdline").read_text() \
                    and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == supervisor:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def resident(pid: int) -> float:
    return int((Path(f"/proc/{pid}/statm")).read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def assert_metrics_of_every_worker(port: int, chats: int, rejected: int) -> None:
    """Every scrape, whichever worker answers it (a new connection each), counts every worker's requests."""
    for _ in range(8):
        scrape = Scrape(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
        assert scrape.value("http_server_request_duration_seconds_count", http_route="/chat",
                            http_response_status_code="200") == chats
        assert scrape.value("gateway_key_rejections_total") == rejected
        assert scrape.value("gateway_circuit_state") == 0 and scrape.has("gateway_key_expiry_timestamp_seconds")


def test_uvicorn_with_four_workers_on_one_key_file(tmp_path: Path):
    key_file, log = tmp_path / "current_key.json", tmp_path / "uvicorn.log"
    port = free_port()
    with fake_upstream() as upstream_url:
        # the workers share their metrics (app/adapters/telemetry/workers.py): a directory made at start
        server = start_uvicorn(port, log, KEY_FILE=str(key_file), ADMIN_SECRET=ADMIN, GROQ_API_KEY="gsk-fake",
                               GROQ_BASE_URL=upstream_url, FALLBACK_TO_LOCAL="false", AUTH_MAX_FAILURES="100",
                               PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"), _args="--workers 4")
        try:
            wait_for(lambda: log.read_text(errors="replace").count("Application startup complete") >= 4
                     or server.poll() is not None, timeout=150, interval=0.2, what="4 workers to start")
            assert server.poll() is None, log.read_text(errors="replace")
            stored = json.loads(key_file.read_text())
            assert "previous" not in stored  # four workers booted on no file: one key minted
            key = stored["api_key"]
            ping = {"prompt": "ping"}
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
                deadline = time.monotonic() + 60
                for _ in range(24):
                    assert time.monotonic() < deadline
                    chat = http.post("/chat", json=ping, headers={"Authorization": f"Bearer {key}"})
                    assert chat.status_code == 200
                    assert chat.json()["choices"][0]["message"]["content"] == "pong"
                    admin = http.get("/current-key", headers={"admin-secret": ADMIN})
                    assert admin.status_code == 200 and admin.json()["api_key"] == key
                wrong = http.post("/chat", json=ping, headers={"Authorization": "Bearer sk-wrong"})
                assert wrong.status_code == 401
                # one worker rotates; every worker holds to it from its next request (each keeps the
                # key in memory and re-reads the file when it changed)
                new = http.post("/rotate-key", headers={"admin-secret": ADMIN}).json()["api_key"]
                for _ in range(12):
                    assert http.post("/chat", json=ping, headers={"x-api-key": key}).status_code == 401
                    assert http.post("/chat", json=ping, headers={"x-api-key": new}).status_code == 200
            assert_metrics_of_every_worker(port, chats=36, rejected=13)
            workers = spawned_workers(server.pid)
            assert len(workers) == 4
            memory = Scrape(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text) \
                .value("process_resident_memory_bytes")
            assert 0.8 < memory / sum(resident(pid) for pid in workers) < 1.25  # the four summed, not one
            os.kill(workers[0], signal.SIGKILL)  # a worker that ended still counts what it served
            wait_for(lambda: workers[0] not in spawned_workers(server.pid), timeout=20, interval=0.2,
                     what="the killed worker to go")
            assert_metrics_of_every_worker(port, chats=36, rejected=13)
            assert "this worker's numbers alone" not in log.read_text(errors="replace")
            assert key not in log.read_text(errors="replace")  # the key is never logged
        finally:
            stop(server)


def test_derived_mode_without_key_secret_fails_to_start(tmp_path: Path):
    log = tmp_path / "uvicorn.log"
    server = start_uvicorn(free_port(), log, KEY_STORE="derived", KEY_SECRET="tooshort",
                           ADMIN_SECRET=ADMIN)
    try:
        server.wait(timeout=90)
    finally:
        stop(server)
    output = log.read_text(errors="replace")
    assert server.returncode != 0
    assert "KEY_SECRET" in output and "tooshort" not in output and ADMIN not in output


def without_root_file_access() -> tuple[str, ...]:
    """A command prefix under which file modes bind: root drops its capability to ignore them."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: a read-only directory cannot be made to bind")
    return (setpriv, "--bounding-set", "-dac_override,-dac_read_search")


def test_a_read_only_key_directory_starts_the_server_and_says_what_is_wrong(tmp_path: Path):
    keys_dir, log = tmp_path / "keys", tmp_path / "uvicorn.log"
    keys_dir.mkdir()
    keys_dir.chmod(0o555)
    key_file = keys_dir / "current_key.json"
    port = free_port()
    server = start_uvicorn(port, log, without_root_file_access(), KEY_FILE=str(key_file), ADMIN_SECRET=ADMIN)
    try:
        wait_for(lambda: "Application startup complete" in log.read_text(errors="replace")
                 or server.poll() is not None, timeout=150, interval=0.2, what="the server to start")
        assert server.poll() is None, log.read_text(errors="replace")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            ready = http.get("/readyz")
            chat = http.post("/chat", json={"prompt": "hi"}, headers={"x-api-key": random_key_value()})
            admin = http.get("/current-key", headers={"admin-secret": ADMIN})
        assert ready.status_code == 503 and ready.json()["error"]["code"] == "key_store_unavailable"
        assert "not writable" in ready.json()["error"]["message"]
        for response in (chat, admin):
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "key_store_unavailable"
    finally:
        stop(server)
        keys_dir.chmod(0o755)
    output = log.read_text(errors="replace")
    assert "Traceback" not in output
    assert f"client keys cannot be served: the key file {key_file} or its directory cannot be used" in output
