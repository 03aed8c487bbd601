"""Running the `aiapi` console script as a user would, against a test server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
_CLIENT_VARIABLES = ("AIAPI_URL", "AIAPI_KEY", "ADMIN_SECRET")


def aiapi_command() -> list[str]:
    """The `aiapi` script pip installed beside this Python.

    A virtualenv installed before the script was declared lacks it; then the same
    `main()` runs through `python -m app.entrypoints.cli`.
    """
    script = Path(sys.executable).with_name("aiapi")
    return [str(script)] if script.exists() else [sys.executable, "-m", "app.entrypoints.cli"]


def aiapi_bin_dir(scratch: Path) -> Path:
    """A directory to put first on PATH so that `aiapi` runs this checkout's client."""
    script = Path(sys.executable).with_name("aiapi")
    if script.exists():
        return script.parent
    shim = scratch / "bin" / "aiapi"
    shim.parent.mkdir(parents=True, exist_ok=True)
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m app.entrypoints.cli "$@"\n')
    shim.chmod(0o755)
    return shim.parent


def aiapi_env(home: Path, **variables: str) -> dict[str, str]:
    """The environment of a user whose home is `home`, with this checkout's `app` first on the path."""
    env = {k: v for k, v in os.environ.items() if k not in _CLIENT_VARIABLES}
    env.update({"HOME": str(home), "XDG_STATE_HOME": str(home / ".local" / "state"),
                "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p),
                "NO_COLOR": "1", "COLUMNS": "200"})
    env.update(variables)
    return env


def run_aiapi(*args: str, env: dict[str, str], stdin: str | None = None,
              timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `aiapi ARGS...` to the end; stdin is empty unless given."""
    return subprocess.run([*aiapi_command(), *args], env=env, input=stdin if stdin is not None else "",
                          capture_output=True, text=True, timeout=timeout)
