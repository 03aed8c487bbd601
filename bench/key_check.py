"""Cost of checking a client key against the JSON file store, per request.

Prints microseconds per `authenticate()` (blocking) and per `authenticate_async()`
(the event loop's path, when the service has it), for a key file on a temp dir.
Run it with another checkout first on PYTHONPATH to compare versions.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from app.adapters.json_file_key_store import JsonFileKeyStore
from app.adapters.system_clock import SystemClock
from app.domain.keys import KeyRotationService

CHECKS = 20_000


def main() -> None:
    """Time CHECKS authentications of the current key, blocking and (if present) async."""
    with tempfile.TemporaryDirectory() as tmp:
        service = KeyRotationService(store=JsonFileKeyStore(path=Path(tmp) / "current_key.json"),
                                     clock=SystemClock(), rotation_days=7)
        key = service.current().value
        service.authenticate(key)  # warm up: the first check may read the file back
        start = time.perf_counter()
        for _ in range(CHECKS):
            service.authenticate(key)
        blocking = (time.perf_counter() - start) / CHECKS * 1e6
        print(f"authenticate():       {blocking:8.1f} us per check ({CHECKS} checks)")
        check_async = getattr(service, "authenticate_async", None)
        if check_async is None:
            print("authenticate_async(): not in this version")
            return

        async def run() -> float:
            await check_async(key)
            begin = time.perf_counter()
            for _ in range(CHECKS):
                await check_async(key)
            return (time.perf_counter() - begin) / CHECKS * 1e6

        print(f"authenticate_async(): {asyncio.run(run()):8.1f} us per check ({CHECKS} checks)")


if __name__ == "__main__":
    main()
