"""The container picks the local engine from LOCAL_RUNNER and imports only that engine's runtime."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Builds the local provider as the app does, in a fresh interpreter, and reports what got imported.
PROBE = """
import json, sys
from app.containers import Container
from app.settings import Settings
container = Container()
container.settings.override(Settings(_env_file=None, key_file=sys.argv[1], local_runner=sys.argv[2]))
local = container.local()
print(json.dumps({"engine": type(local.engine).__name__, "torch": "torch" in sys.modules,
                  "llama_cpp": "llama_cpp" in sys.modules, "same": container.local() is local}))
"""


@pytest.mark.parametrize(("runner", "engine", "torch", "llama_cpp"), [
    ("llamacpp", "LlamaCppEngine", False, False),
    ("transformers", "TransformersEngine", True, False),
])
def test_the_container_builds_one_provider_over_the_selected_engine_only(
        tmp_path: Path, runner: str, engine: str, torch: bool, llama_cpp: bool) -> None:
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "key.json"), runner], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)

    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {"engine": engine, "torch": torch, "llama_cpp": llama_cpp, "same": True}
