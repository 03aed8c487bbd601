"""Metrics summed over several worker processes (`uvicorn --workers N`): prometheus-client multiprocess mode.

Each worker process keeps its own metrics, so with several workers a scrape of `/metrics`
saw only the worker that answered it: counters jumped between the workers' totals, which
Prometheus reads as resets. With PROMETHEUS_MULTIPROC_DIR set to a directory (created if
missing; empty it before each start, as prometheus-client asks), prometheus-client writes every
worker's values to files there, and whichever worker answers a scrape reads them all:
- counters and histograms are summed over the workers, ended ones included (totals never fall);
- the key's expiry is the latest any worker saw; the local decode speed the most recent;
- the circuit state (each worker has its own breaker) is the worst of the live workers'; the
  local queue, generations in flight and resident memory are summed over the live workers.
  Each worker writes those every REFRESH_SECONDS, and when it answers a scrape;
- the other `process_*` series (CPU time, open files) are not exported: they are per process.
A worker that ended is noticed by the next refresh of any live one, and its live gauges dropped.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

SHARED_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's: it picks the value store at import
REFRESH_SECONDS = 1.0
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def shared_dir() -> str | None:
    """The directory the workers share their metrics in (made if missing); None: metrics per process."""
    path = os.environ.get(SHARED_DIR_VARIABLE)
    if path is None:
        return None
    if not path.strip():  # prometheus-client would write its files wherever the server was started
        raise RuntimeError(f"{SHARED_DIR_VARIABLE} is set but empty: unset it, or name a directory")
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # the server cannot start: say why in one line
        raise RuntimeError(f"{SHARED_DIR_VARIABLE}={path}: {exc.strerror or exc}") from None
    return path


def shared_registry(path: str) -> CollectorRegistry:
    """A registry reading every worker's values from `path` (one per scrape, as prometheus-client advises)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    return registry


def drop_ended_workers(path: str) -> None:
    """Drop the live gauges of workers that ended (their counters and histograms keep counting)."""
    for file in Path(path).glob("gauge_live*_*.db"):
        pid = file.stem.rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            try:
                mark_process_dead(int(pid), path)
            except FileNotFoundError:  # another live worker dropped them first
                pass


def drop_this_worker(path: str) -> None:
    """This worker is stopping: its live gauges leave the sums now."""
    mark_process_dead(os.getpid(), path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def resident_bytes() -> float:
    """This process's resident memory (`/proc/self/statm`, as prometheus-client's process collector)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return float(int(statm.read().split()[1]) * _PAGE_BYTES)
    except OSError:
        return 0.0
