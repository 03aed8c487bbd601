"""Stop sequences: cut generated text at the first stop, and hold back what could still become one.

Text is generated a piece at a time, and a stop sequence can span pieces
(`" of"` then `" the"`). Whatever could be the start of a stop is held back
until the next pieces decide it, so no part of a stop sequence is ever sent.
The answer is the text before the first stop sequence to complete (when two
complete together, the longer one: none of its text is sent either).
"""

from __future__ import annotations

from collections.abc import Iterable


def cut_at_stop(text: str, stops: Iterable[str]) -> tuple[str, bool]:
    """`text` before the first stop sequence to complete in it, and whether one did."""
    best: tuple[int, int] | None = None  # (end, start) of the first stop to complete
    for stop in stops:
        start = text.find(stop) if stop else -1
        if start >= 0 and (best is None or (start + len(stop), start) < best):
            best = (start + len(stop), start)
    return (text, False) if best is None else (text[: best[1]], True)


class StopHoldback:
    """Takes generated text piece by piece and releases only what no stop sequence can claim.

    `feed` returns the text that may be sent now; once `stopped`, the answer is
    over and later text is ignored. `flush` releases what is held back when
    generation ends without a stop.
    """

    def __init__(self, stops: Iterable[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """The part of what was held plus `text` that is decided now: it is not, and cannot become, a stop."""
        if self.stopped:
            return ""
        pending = self._held + text
        released, self.stopped = cut_at_stop(pending, self._stops)
        if self.stopped:
            self._held = ""
            return released
        keep = self._undecided_tail(pending)
        self._held = pending[len(pending) - keep:] if keep else ""
        return pending[: len(pending) - keep]

    def flush(self) -> str:
        """Generation ended without a stop: the held-back tail is plain text after all."""
        if self.stopped:
            return ""
        tail, self._held = self._held, ""
        return tail

    def _undecided_tail(self, text: str) -> int:
        """Length of the longest end of `text` that begins some stop sequence."""
        longest = max((len(s) for s in self._stops), default=1) - 1
        for size in range(min(longest, len(text)), 0, -1):
            tail = text[-size:]
            if any(s.startswith(tail) for s in self._stops):
                return size
        return 0
