"""OpenAI's Codex CLI, installed from npm into a cache directory once, run against our server.

Like the model cache, the install happens on first use, so `make test` works on a
fresh machine that has Node.js and npm. Codex is configured to reach nothing but
the server under test (no update check, analytics, plugins or apps).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

CODEX_PACKAGE = "@openai/codex"
CODEX_VERSION = "0.171.0"  # the version the issue was measured with; bump deliberately
CODEX_DIR = Path(os.environ.get("CODEX_CACHE_DIR", "~/.cache/ai-api-server/codex")).expanduser()
INSTALL_TIMEOUT_SECONDS = 600
API_KEY_VARIABLE = "GATEWAY_API_KEY"


def codex_binary() -> Path:
    """The Codex CLI of the cache directory, installed there first when it is missing or another version."""
    binary = CODEX_DIR / "node_modules" / ".bin" / "codex"
    if _version(binary) == CODEX_VERSION:
        return binary
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"npm is not installed: the Codex CLI tests install {CODEX_PACKAGE}@{CODEX_VERSION} with "
                    f"npm into {CODEX_DIR}. Install Node.js 18+ with npm (e.g. `apt-get install npm`) "
                    "and run the tests again.", pytrace=False)
    CODEX_DIR.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([npm, "install", "--prefix", str(CODEX_DIR), "--no-audit", "--no-fund",
                           f"{CODEX_PACKAGE}@{CODEX_VERSION}"],
                          capture_output=True, text=True, timeout=INSTALL_TIMEOUT_SECONDS, check=False)
    if done.returncode != 0 or _version(binary) != CODEX_VERSION:
        pytest.fail(f"installing {CODEX_PACKAGE}@{CODEX_VERSION} into {CODEX_DIR} failed "
                    f"(exit {done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}", pytrace=False)
    return binary


def _version(binary: Path) -> str | None:
    if not binary.exists():
        return None
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    # "codex-cli 0.171.0"
    return done.stdout.split()[-1] if done.returncode == 0 and done.stdout.split() else None


def config_toml(base_url: str) -> str:
    """A `config.toml` whose model provider is the server at `base_url` (its `/v1`)."""
    return f"""\
model = "gpt-3.5-turbo"
model_provider = "gateway"
# Reach nothing but the server under test.
check_for_update_on_startup = false

[analytics]
enabled = false

[features]
plugins = false
remote_plugin = false
apps = false

[model_providers.gateway]
name = "Gateway"
base_url = "{base_url}/v1"
env_key = "{API_KEY_VARIABLE}"
wire_api = "responses"
# A failing stream fails the test at once instead of after Codex's five retries.
stream_max_retries = 0
request_max_retries = 0
"""


def run_codex(binary: Path, *, home: Path, workdir: Path, base_url: str, api_key: str, prompt: str,
              timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """`codex exec` one turn in a temporary HOME whose config points at `base_url`."""
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    (home / ".codex" / "config.toml").write_text(config_toml(base_url))
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"HOME": str(home), "CODEX_HOME": str(home / ".codex"), "PATH": os.environ.get("PATH", ""),
           "LANG": "C.UTF-8", API_KEY_VARIABLE: api_key}
    # No sandbox: the only command run is the fake Groq's scripted `echo`, and Codex's sandbox
    # needs user namespaces that containers often lack.
    return subprocess.run([str(binary), "exec", "--skip-git-repo-check", "--strict-config",
                           "--sandbox", "danger-full-access", "--cd", str(workdir), prompt],
                          env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False)
