"""The real app under a real uvicorn process on a loopback port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from app.settings import Settings

from tests.support.net import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
# Settings the developer's shell may carry; each test states its own.
_APP_VARIABLES = tuple(name.upper() for name in Settings.model_fields)


class AppServer:
    """`uvicorn app.main:create_app --factory` in a child process, in its own working dir."""

    def __init__(self, workdir: Path, env: dict[str, str], *, extra_args: tuple[str, ...] = ()) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"server-{self.port}.log"
        self._env = {k: v for k, v in os.environ.items() if k not in _APP_VARIABLES}
        self._env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"})
        self._env.update(env)
        self._args = extra_args
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> AppServer:
        """Start and wait until /healthz answers."""
        log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--no-proxy-headers",
             "--app-dir", str(REPO_ROOT),
             "--host", "127.0.0.1", "--port", str(self.port), *self._args],
            cwd=self.workdir, env=self._env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start in {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        """SIGTERM (as Render sends), then SIGKILL if it lingers."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=5)

    @property
    def pid(self) -> int:
        """The server process's id (uvicorn runs in it: read its /proc/<pid>/status)."""
        assert self._process is not None, "not started"
        return self._process.pid

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
