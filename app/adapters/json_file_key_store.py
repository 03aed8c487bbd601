"""Key store adapter: one JSON file, written atomically under an OS file lock."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock

from app.domain.models import ApiKey, KeyState

log = logging.getLogger(__name__)


def _key_to_json(key: ApiKey) -> dict[str, str]:
    return {"api_key": key.value, "created_at": key.created_at.isoformat(),
            "expires_at": key.expires_at.isoformat()}


def _key_from_json(data: dict[str, Any]) -> ApiKey:
    key = ApiKey(value=str(data["api_key"]), created_at=datetime.fromisoformat(data["created_at"]),
                 expires_at=datetime.fromisoformat(data["expires_at"]))
    if key.created_at.tzinfo is None or key.expires_at.tzinfo is None:
        raise ValueError("timestamps must carry a timezone")
    return key


class JsonFileKeyStore:
    """Keeps the key state in `path` (mode 0600).

    Read-compare-write happens under a lock file beside it, so processes
    sharing the file (uvicorn workers, several servers) agree on one key; the
    write goes to a temp file that is fsynced and renamed over the old one, so
    a crash leaves either the old or the new file, never half of one.
    """

    def __init__(self, *, path: str | Path, lock_timeout: float = 30.0) -> None:
        self._path = Path(path)
        self._lock = FileLock(f"{self._path}.lock", timeout=lock_timeout)

    def load(self) -> KeyState | None:
        """The stored state, or None when the file is missing or unreadable."""
        try:
            data = json.loads(self._path.read_text(encoding="utf-8"))
            previous = data.get("previous")
            return KeyState(current=_key_from_json(data),
                            previous=_key_from_json(previous) if previous else None)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("key file %s is unreadable (%s); a new key will be minted",
                        self._path, type(exc).__name__)
            return None

    def replace(self, *, expected: KeyState | None, new: ApiKey) -> KeyState:
        """Write `new` as current unless another process changed the file first."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            stored = self.load()
            if stored is not None and stored != expected:
                return stored
            state = KeyState(current=new, previous=stored.current if stored else None)
            self._write(state)
            return state

    def _write(self, state: KeyState) -> None:
        data: dict[str, Any] = _key_to_json(state.current)
        if state.previous is not None:
            data["previous"] = _key_to_json(state.previous)
        fd, tmp = tempfile.mkstemp(dir=self._path.parent, prefix=f".{self._path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(f.fileno(), 0o600)
                json.dump(data, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)
