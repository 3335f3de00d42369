"""Webhook receivers that accept a connection, read what is sent, and never answer.

``HangingReceivers(n)`` listens on ``n`` ephemeral ports of 127.0.0.1 (so ``n``
distinct origins) from an event loop on a thread of its own; each connection is
held open until :meth:`HangingReceivers.stop`.  It counts the connections it
accepted, so a test can wait for the requests it expects to be held.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from types import TracebackType
from typing import Any

TIMEOUT_S = 10.0


class HangingReceivers:
    """Use as a context manager: entering starts the listeners, leaving closes them
    and every connection they hold."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.ports: list[int] = []
        self.accepted = 0
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hanging")
        self._servers: list[asyncio.Server] = []
        self._held: set[asyncio.StreamWriter] = set()

    def url(self, i: int) -> str:
        """The URL of the ``i``-th listener (modulo ``n``)."""
        return f"http://127.0.0.1:{self.ports[i % self.n]}/hang"

    def wait_accepted(self, n: int, timeout: float = TIMEOUT_S) -> None:
        """Wait (bounded) until at least ``n`` connections were accepted."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.accepted < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{self.accepted} of {n} connections within {timeout}s")
                self._cond.wait(left)

    def __enter__(self) -> HangingReceivers:
        self._thread.start()
        self._run(self._listen())
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._run(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(TIMEOUT_S)
        assert not self._thread.is_alive(), "hanging receivers' loop did not stop"
        self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(TIMEOUT_S)

    async def _listen(self) -> None:
        for _ in range(self.n):
            server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
            self._servers.append(server)
            self.ports.append(server.sockets[0].getsockname()[1])

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._held.add(writer)
        with self._cond:
            self.accepted += 1
            self._cond.notify_all()
        while await reader.read(65536):  # drain the request; answer nothing
            pass

    async def _close(self) -> None:
        for server in self._servers:
            server.close()
        for writer in self._held:
            writer.close()
        for server in self._servers:
            await server.wait_closed()
