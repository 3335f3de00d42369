"""An asyncio event loop in a daemon thread of its own, owned by one actor.

Actors that speak asyncio (the HTTP server, the webhook client) keep their loop
here so the actor thread never blocks on it, except for a bounded start and stop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class LoopThread:
    """Start with :meth:`start`; :meth:`stop` is idempotent and bounded in time."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopped = False

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(
        self,
        opening: Coroutine[Any, Any, T],
        timeout: float,
        closing: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> T:
        """Run the loop and ``opening`` on it; its result, or stop (running
        ``closing`` on what was opened so far) and raise."""
        self._thread.start()
        try:
            return asyncio.run_coroutine_threadsafe(opening, self.loop).result(timeout)
        except BaseException:
            self.stop(closing, timeout)
            raise

    def call(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on the loop thread (from any thread)."""
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self, closing: Callable[[], Coroutine[Any, Any, None]] | None, timeout: float) -> None:
        """Run ``closing()`` on the loop, then stop the loop and join its thread."""
        if self._stopped:
            return
        self._stopped = True
        loop = self.loop
        if closing is not None and loop.is_running():  # else nothing was opened on it
            try:
                asyncio.run_coroutine_threadsafe(closing(), loop).result(timeout)
            except Exception:
                log.exception("%s: did not shut down cleanly", self.name)
        loop.call_soon_threadsafe(loop.stop)  # also stops a loop that has yet to start
        if self._thread.is_alive() or self._thread.ident is not None:
            self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("%s: event loop thread did not stop within %.1fs", self.name, timeout)
            return  # closing a running loop raises; the daemon thread dies with the process
        loop.close()
