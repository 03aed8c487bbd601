"""Key store adapter: one JSON file, written atomically under an OS file lock, with a backup copy."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Hashable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from app.domain.errors import KeyStoreUnavailable
from app.domain.keys import looks_like_key
from app.domain.models import ApiKey, KeyState, KeyStoreHealth

log = logging.getLogger(__name__)


class _Corrupt(Exception):
    """The key file exists but does not hold a key state."""


def _key_to_json(key: ApiKey) -> dict[str, str]:
    return {"api_key": key.value, "created_at": key.created_at.isoformat(),
            "expires_at": key.expires_at.isoformat()}


def _key_from_json(data: Any) -> ApiKey:
    try:
        key = ApiKey(value=str(data["api_key"]), created_at=datetime.fromisoformat(data["created_at"]),
                     expires_at=datetime.fromisoformat(data["expires_at"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise _Corrupt(type(exc).__name__) from None
    if key.created_at.tzinfo is None or key.expires_at.tzinfo is None:
        raise _Corrupt("timestamps without a timezone")
    if not looks_like_key(key.value):
        raise _Corrupt("not a client key")
    return key


def _state_from_text(text: str) -> KeyState:
    try:
        data = json.loads(text)
    except ValueError:
        raise _Corrupt("not JSON") from None
    if not isinstance(data, dict):
        raise _Corrupt(f"JSON {type(data).__name__}, not an object")
    previous = data.get("previous")
    return KeyState(current=_key_from_json(data), previous=_key_from_json(previous) if previous else None)


def _unusable(path: Path, exc: OSError) -> KeyStoreUnavailable:
    if isinstance(exc, IsADirectoryError):
        return KeyStoreUnavailable(f"the key file {path} is a directory")
    return KeyStoreUnavailable(f"the key file {path} or its directory cannot be used "
                               f"({exc.strerror or type(exc).__name__})")


class JsonFileKeyStore:
    """Keeps the key state in `path` (mode 0600) and a copy in `<path>.bak`.

    Read-compare-write happens under a lock file beside it, so processes
    sharing the file (uvicorn workers, several servers) agree on one key; each
    write goes to a temp file that is fsynced and renamed over the old one, so
    a crash leaves either the old or the new file, never half of one. Every
    write gives the file a later mtime than the one it replaces, so `version()`
    (one stat: inode, size, mtime) changes with every rotation.

    A key file that does not hold a key state is renamed `<path>.corrupt-<UTC
    time>` and reported in the log when the next key is written; the key the
    backup holds then becomes the previous key, so the grace rule applies to it.
    """

    def __init__(self, *, path: str | Path, lock_timeout: float = 30.0) -> None:
        self._path = Path(path)
        self._backup = self._path.with_name(self._path.name + ".bak")
        self._lock_timeout = lock_timeout
        self._lock = FileLock(f"{self._path}.lock", timeout=lock_timeout)

    def version(self) -> Hashable:
        """(inode, size, mtime in ns) of the file; None when it is missing."""
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return ("unusable", exc.errno)
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def load(self) -> KeyState | None:
        """The stored state, or None when the file is missing or corrupt."""
        try:
            return self._read(self._path)
        except _Corrupt:
            return None

    def replace(self, *, expected: KeyState | None, new: ApiKey) -> KeyState:
        """Write `new` as current unless another process changed the file first."""
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock:
                return self._replace_locked(expected, new)
        except Timeout:
            raise KeyStoreUnavailable(f"no lock on {self._lock.lock_file} within {self._lock_timeout:g} s "
                                      "(another process holds it)") from None
        except OSError as exc:
            raise _unusable(self._path, exc) from None

    def health(self) -> KeyStoreHealth:
        """Readable: the file is missing or a readable file; writable: its directory takes new files."""
        try:
            if self._path.is_dir():
                return KeyStoreHealth(serving=False, readable=False, writable=False,
                                      message="the key file is a directory")
            readable = not self._path.exists() or os.access(self._path, os.R_OK)
            directory = _existing_ancestor(self._path.parent)
            writable = directory.is_dir() and os.access(directory, os.W_OK | os.X_OK)
        except OSError:
            return KeyStoreHealth(serving=False, readable=False, writable=False,
                                  message="the key file's directory cannot be searched")
        problems = []
        if not readable:
            problems.append("the key file is not readable")
        if not writable:
            problems.append("the key file's directory is not writable, so no new key can be written")
        return KeyStoreHealth(serving=readable, readable=readable, writable=writable,
                              message="; ".join(problems) or "ok")

    def _read(self, path: Path) -> KeyState | None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise _Corrupt("not UTF-8") from None
        except OSError as exc:
            raise _unusable(path, exc) from None
        return _state_from_text(text)

    def _replace_locked(self, expected: KeyState | None, new: ApiKey) -> KeyState:
        lost = False
        try:
            stored = self._read(self._path)
        except _Corrupt as exc:
            stored, lost = None, True
            self._set_aside(str(exc))
        if stored is not None and stored != expected:
            return stored
        if stored is not None:
            previous: ApiKey | None = stored.current
        elif lost or self._backup.exists():
            previous = self._recover()
        else:
            previous = None  # the first key ever
        state = KeyState(current=new, previous=previous)
        try:
            self._write(self._backup, state)  # first: a crash between leaves no retired key in it
        except OSError as exc:
            log.warning("could not write the key backup %s (%s); a corrupt key file would then lose "
                        "the current key", self._backup, exc.strerror or type(exc).__name__)
        self._write(self._path, state)
        return state

    def _set_aside(self, why: str) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        aside = self._path.with_name(f"{self._path.name}.corrupt-{stamp}")
        os.replace(self._path, aside)
        log.warning("key file %s is corrupt (%s): moved it to %s; minting a new client key",
                    self._path, why, aside)

    def _recover(self) -> ApiKey | None:
        """The key the backup holds, when the key file was lost; None when it holds none."""
        try:
            state = self._read(self._backup)
        except (_Corrupt, KeyStoreUnavailable):
            state = None
        if state is None:
            log.warning("key file %s was lost and %s holds no key to recover: clients need the new key",
                        self._path, self._backup)
            return None
        log.warning("key file %s was lost: the key saved in %s stays valid as the previous key "
                    "(for KEY_GRACE_SECONDS after the new one)", self._path, self._backup)
        return state.current

    def _write(self, path: Path, state: KeyState) -> None:
        data: dict[str, Any] = _key_to_json(state.current)
        if state.previous is not None:
            data["previous"] = _key_to_json(state.previous)
        try:
            replaced_mtime = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            replaced_mtime = 0
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                os.fchmod(f.fileno(), 0o600)
                json.dump(data, f, indent=2)
                f.write("\n")
                f.flush()
                # a coarse clock could give the new file the old one's mtime (and inode reuse its
                # inode): then version() would not change and other processes keep the old key
                mtime = max(time.time_ns(), replaced_mtime + 1)
                os.utime(f.fileno(), ns=(mtime, mtime))
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # make the rename itself durable
        finally:
            os.close(dir_fd)


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path
