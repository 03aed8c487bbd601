"""Which upstream models are live, which one a request goes to, and which are gone for good.

Groq retires models (its Llama 3 70B models answer 404 since 2026), so the
gateway reads the upstream's model list instead of trusting its configuration:
at start (waiting only briefly), again when the list is older than
`refresh_seconds` (in the background, on the next request), and whenever the
upstream says a model is gone. A request that names no model, or one that is
not served, goes to the first live model of the preference list.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from app.domain.errors import DomainError
from app.domain.models import UpstreamModel
from app.ports import Clock
from app.ports.model_lister import ModelLister

log = logging.getLogger(__name__)

# The seed's "Llama 3 70B" and its successors: names of the preferred live model
# (a name that is itself live is served as itself).
SEED_ALIASES = ("llama3-70b-8192", "llama-3.1-70b-versatile", "llama-3.3-70b-versatile")
# Listed by Groq but not chat models (speech to text, text to speech): never routed to.
_NOT_CHAT = re.compile(r"whisper|tts|orpheus|playai", re.IGNORECASE)
FAILED_LISTING_RETRY_SECONDS = 60.0


class _Served(NamedTuple):
    """What the catalog serves, as of the last change."""

    models: tuple[UpstreamModel, ...]  # in order: preferred, then the others
    ids: tuple[str, ...]
    id_set: frozenset[str]
    default: tuple[str, ...]


class ModelCatalog:
    """The upstream's live models, the preference list, and the models found retired.

    A model the upstream called retired is remembered for the life of the
    process, whatever later lists say, so no request pays a round trip for it again.
    """

    def __init__(self, *, lister: ModelLister, clock: Clock, preferred: Sequence[str],
                 refresh_seconds: float = 3600.0, aliases: Sequence[str] = SEED_ALIASES,
                 label: str = "Groq", setting: str = "GROQ_MODELS") -> None:
        if not preferred:
            raise ValueError("the preference list needs at least one model")
        self._lister = lister
        self._clock = clock
        self._preferred = list(dict.fromkeys(preferred))
        self._refresh = timedelta(seconds=refresh_seconds)
        self._aliases = set(aliases)
        self._label = label
        self._setting = setting
        self._live: dict[str, UpstreamModel] | None = None  # None: never read
        self._retired: set[str] = set()
        self._next_refresh: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_reason = "the model list has not been read yet"
        self._announced: str | None = None
        self._view: _Served | None = None  # computed once per change of the list or the retired set

    # --- what is served -----------------------------------------------------------------------

    def served(self) -> list[UpstreamModel]:
        """Models a client may name: the live preferred ones first, then the other live chat models.

        Before the list was ever read: the preference list, less what was found retired.
        """
        return list(self._served().models)

    def served_ids(self) -> list[str]:
        """The ids of `served()`."""
        return list(self._served().ids)

    def default_route(self) -> list[str]:
        """The preference list's live models, in order: where a request naming no model goes."""
        return list(self._served().default)

    def _served(self) -> _Served:
        # Asked several times by every request: computed again only when what it depends on changes.
        if self._view is None:
            live = self._live
            if live is None:
                models = [UpstreamModel(m) for m in self._preferred if m not in self._retired]
            else:
                preferred = [live[m] for m in self._preferred if m in live]
                others = [m for m in live.values() if m.id not in self._preferred]
                models = [m for m in preferred + others if m.id not in self._retired and not _NOT_CHAT.search(m.id)]
            default = [m for m in self._preferred if m not in self._retired and (live is None or m in live)]
            ids = tuple(m.id for m in models)
            self._view = _Served(models=tuple(models), ids=ids, id_set=frozenset(ids), default=tuple(default))
        return self._view

    def route(self, requested: str | None) -> list[str]:
        """Models to try for a request, in order: the named one when it is served, then the default route.

        The seed's names (SEED_ALIASES) always mean the default route.
        """
        self.refresh_if_due()
        served = self._served()
        if requested and requested not in self._aliases and requested in served.id_set:
            return list(dict.fromkeys([requested, *served.default]))
        return list(served.default)

    def retire(self, model: str, reason: str) -> None:
        """The upstream said `model` is gone: never route to it again, and read the list anew."""
        if model not in self._retired:
            self._retired.add(model)
            self._view = None
            log.warning("%s model %s is retired or not served to this account (%s); "
                        "it is skipped from now on", self._label, model, reason)
            self._schedule_refresh()
            self._announce()

    # --- keeping the list fresh ---------------------------------------------------------------

    async def start(self, *, wait_seconds: float) -> None:
        """Read the list at start, waiting at most `wait_seconds` (then it goes on in the background)."""
        task = self._schedule_refresh()
        if task is not None:
            await asyncio.wait({task}, timeout=wait_seconds)
            if not task.done():
                self._last_reason = f"the model list did not arrive within {wait_seconds:g} s"
        self._announce(force=True)

    def refresh_if_due(self) -> None:
        """Start a background refresh when the list is older than the refresh interval."""
        if self._next_refresh is not None and self._clock.now() >= self._next_refresh:
            self._schedule_refresh()

    async def refresh(self) -> None:
        """Read the upstream's list now; on failure keep what was known and try again later."""
        try:
            listed = await self._lister.list_models()
        except DomainError as exc:
            self._last_reason = f"the model list could not be read ({exc.message})"
            retry = min(self._refresh, timedelta(seconds=FAILED_LISTING_RETRY_SECONDS))
            self._next_refresh = self._clock.now() + retry
            log.warning("%s; retrying in %.0f s", self._last_reason, retry.total_seconds())
            return
        self._live = {m.id: m for m in listed}
        self._view = None
        self._next_refresh = self._clock.now() + self._refresh
        self._announce()

    async def close(self) -> None:
        """Stop a refresh in flight (at shutdown)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _schedule_refresh(self) -> asyncio.Task[None] | None:
        if self._task is not None and not self._task.done():
            return self._task
        try:
            self._task = asyncio.get_running_loop().create_task(self.refresh())
        except RuntimeError:  # no event loop (a synchronous caller): the next request will refresh
            self._next_refresh = self._clock.now()
            return None
        return self._task

    def _announce(self, *, force: bool = False) -> None:
        """Log which model serves the default route, and why: at start, then whenever it changes."""
        route = self.default_route()
        first = route[0] if route else None
        if not force and (self._announced is None or first == self._announced):
            return
        self._announced = first or ""
        (log.warning if first is None else log.info)("%s", self._explain(first))

    def _explain(self, first: str | None) -> str:
        label, setting, preferred = self._label, self._setting, ", ".join(self._preferred)
        if first is None and self._live is None:
            return (f"{label} default route: none of {setting} ({preferred}) is left to try; "
                    f"requests go to the local model ({self._last_reason})")
        if first is None:
            live = ", ".join(self.served_ids()) or "none"
            return (f"{label} default route: {label} serves none of {setting} ({preferred}) to this account, "
                    f"so requests go to the local model; chat models {label} serves: {live}")
        if self._live is None:
            return (f"{label} default route: {first}, the first of {setting} not known to be retired "
                    f"({self._last_reason}; if it is gone, the next ones are tried in order)")
        why = f"the first model of {setting} that {label} serves to this account"
        skipped = self._preferred[:self._preferred.index(first)]
        if skipped:
            why += f"; not served: {', '.join(skipped)}"
        return f"{label} default route: {first} ({why})"
