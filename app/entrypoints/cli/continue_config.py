"""Continue's `~/.continue/config.yaml`: the gateway's model entries, printed or updated in place.

ruamel.yaml reads and writes the file round-trip, so the user's comments, key order, quoting and
every other entry stay as they were; only the `apiKey` of the entries pointing at this gateway
changes (or, when there are none yet, the gateway's entries are appended to `models`).
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

DEFAULT_PATH = Path("~/.continue/config.yaml")
CHAT_ROLES = ("chat", "edit", "apply")
AUTOCOMPLETE_ROLES = ("autocomplete",)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What `write_config` did: how many entries got the new key, how many were added."""

    updated: int
    added: int


def _yaml() -> YAML:
    yaml = YAML()  # round-trip mode
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # never fold a long apiBase or key
    return yaml


def _entry(name: str, model: str, api_base: str, key: str, roles: tuple[str, ...]) -> CommentedMap:
    entry = CommentedMap(name=name, provider="openai", model=model, apiBase=api_base, apiKey=key)
    entry["roles"] = CommentedSeq(roles)
    entry["roles"].fa.set_flow_style()
    return entry


def gateway_entries(*, openai_base_url: str, key: str, chat_model: str,
                    autocomplete_model: str) -> list[CommentedMap]:
    """The gateway's two model entries: chat (and edit/apply), and autocomplete."""
    return [_entry("Gateway chat", chat_model, openai_base_url, key, CHAT_ROLES),
            _entry("Gateway autocomplete", autocomplete_model, openai_base_url, key, AUTOCOMPLETE_ROLES)]


def render_models_block(entries: list[CommentedMap]) -> str:
    """`models:` with the entries, as YAML text to paste into config.yaml."""
    out = io.StringIO()
    _yaml().dump(CommentedMap(models=CommentedSeq(entries)), out)
    return out.getvalue()


def _same_server(api_base: Any, base_url: str) -> bool:
    if not isinstance(api_base, str):
        return False
    normalised = api_base.strip().rstrip("/")
    return normalised.removesuffix("/v1") == base_url


def write_config(path: Path, *, base_url: str, key: str, entries: list[CommentedMap]) -> WriteResult:
    """Put `key` into every `openai` entry whose apiBase is `base_url` (with or without `/v1`).

    With no such entry, append `entries`. A missing file is created (a new config holding
    only them). The file is replaced atomically and keeps its mode; a new one is 0600,
    since it holds a key.
    """
    yaml = _yaml()
    existed = path.exists()
    try:
        document = yaml.load(path.read_text(encoding="utf-8")) if existed else None
    except YAMLError as exc:
        raise ValueError(f"not valid YAML ({type(exc).__name__})") from None
    if document is None:
        document = CommentedMap(name="Local config", version="1.0.0", schema="v1")
    if not isinstance(document, dict):
        raise ValueError(f"{path} does not hold a YAML mapping")
    models = document.get("models")
    if models is None:
        models = document["models"] = CommentedSeq()
    if not isinstance(models, list):
        raise ValueError(f"`models` in {path} is not a list")
    ours = [m for m in models if isinstance(m, dict) and m.get("provider") == "openai"
            and _same_server(m.get("apiBase"), base_url)]
    for entry in ours:
        entry["apiKey"] = key
    if not ours:
        models.extend(entries)
    out = io.StringIO()
    yaml.dump(document, out)
    _replace(path, out.getvalue(), mode=path.stat().st_mode & 0o777 if existed else 0o600)
    return WriteResult(updated=len(ours), added=0 if ours else len(entries))


def _replace(path: Path, text: str, *, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
