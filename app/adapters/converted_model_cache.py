"""A directory of converted model copies, keyed by the identity of their source file.

Converting a GGUF file for transformers takes tens of seconds (dequantization,
tokenizer built from the GGUF vocabulary); loading the converted copy takes one
or two. A copy is written to a temporary directory, marked complete last and
renamed into place, so a crash mid-way leaves nothing that looks usable.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

log = logging.getLogger(__name__)

MARKER = "conversion-complete"
DEFAULT_CACHE_DIR = "~/.cache/ai-api-server/models"


def source_key(source: Path) -> str:
    """Short hash of the file's absolute path, size and modification time."""
    stat = source.stat()
    identity = f"{source.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}"
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


class ConvertedModelCache:
    """Finds or makes the converted copy of a source file under `root`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    def entry(self, source: Path) -> Path:
        """Where the converted copy of `source` lives (whether or not it exists yet)."""
        return self.root / f"{source.stem}-{source_key(source)}"

    def is_complete(self, source: Path) -> bool:
        """True when a finished copy of this very source file is present."""
        return (self.entry(source) / MARKER).is_file()

    def discard(self, source: Path) -> None:
        """Remove the copy of `source` (it turned out unreadable)."""
        shutil.rmtree(self.entry(source), ignore_errors=True)

    def ensure(self, source: Path, convert: Callable[[Path], None]) -> tuple[Path, bool]:
        """The complete copy's directory, and whether `convert` had to run to make it.

        `convert(directory)` writes the copy's files into an empty directory.
        Processes sharing the cache convert one at a time; the others then reuse it.
        """
        target = self.entry(source)
        if (target / MARKER).is_file():
            return target, False
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target) + ".lock"):
            if (target / MARKER).is_file():  # another process converted it meanwhile
                return target, False
            if target.exists():
                log.warning("discarding incomplete converted copy %s", target)
                shutil.rmtree(target, ignore_errors=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=self.root))
            staging.chmod(0o755)
            try:
                convert(staging)
                (staging / MARKER).write_text(f"{source.resolve()}\n")
                os.replace(staging, target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return target, True
