"""A channel between two processes' event loops: calls and answers, in batches.

The REST API's worker processes (:mod:`actors.api.workers`) reach their node's
actors through one of these, over a Unix socket pair.  Either end may call the
other (``await channel.call(name, *args)``); the other end's ``serve`` answers.

- Messages are pickled, and go in frames: everything sent in one turn of the
  loop is one ``write`` (a length, then a pickled list), so a burst of requests
  costs the two processes one wake-up each, not one a request.
- An error raised by ``serve`` comes back as the same class with the same
  fields (:func:`pack_error`), for the errors of :mod:`scheduled_db.errors` and
  the built-in ones a backend raises; anything else becomes a RuntimeError
  naming its class (its text stays in the process that raised it).
- When the other end goes away, every call waiting fails with ConnectionError and
  :meth:`Channel.closed` completes.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import pickle
import struct
from collections.abc import Awaitable, Callable
from typing import Any

from scheduled_db import errors

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("!I")
_CALL, _OK, _ERROR = 0, 1, 2
# Built-in errors a backend raises on purpose (a bad cursor, a timeout).
_BUILTIN_ERRORS = frozenset({"ValueError", "TimeoutError", "LookupError", "KeyError"})

Serve = Callable[[str, tuple[Any, ...]], Awaitable[Any]]


def pack_error(exc: BaseException) -> tuple[str, str, tuple[Any, ...], dict[str, Any]]:
    """What crosses the channel for ``exc``: its class's name and its state."""
    cls = type(exc)
    if cls.__module__ == errors.__name__:
        return ("errors", cls.__name__, exc.args, dict(vars(exc)))
    if cls.__module__ == "builtins" and cls.__name__ in _BUILTIN_ERRORS:
        return ("builtins", cls.__name__, exc.args, {})
    log.error("channel: a call failed unexpectedly: %r", exc)
    return ("builtins", "RuntimeError", (f"the node failed ({cls.__name__})",), {})


def unpack_error(packed: tuple[str, str, tuple[Any, ...], dict[str, Any]]) -> BaseException:
    """The error :func:`pack_error` described, made without calling its ``__init__``
    (the errors' constructors take their fields, not their message)."""
    where, name, args, state = packed
    module = errors if where == "errors" else builtins
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        return RuntimeError(f"the node failed ({name})")
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class Channel:
    """One end of a channel; :meth:`run` reads until the other end closes."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, serve: Serve
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._serve = serve
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._outbox: list[tuple[Any, ...]] = []
        self._next_id = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, sock: Any, serve: Serve) -> Channel:
        """A channel over a connected stream socket (the loop owns it from now on)."""
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer, serve)

    async def call(self, name: str, *args: Any) -> Any:
        """The other end's answer to ``name(*args)``; raises its error, or
        ConnectionError once the channel is closed."""
        if self._closed.done():
            raise ConnectionError("the channel is closed")
        self._next_id += 1
        call_id = self._next_id
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        self._send((_CALL, call_id, name, args))
        try:
            return await future
        finally:
            self._waiting.pop(call_id, None)

    async def closed(self) -> None:
        """Return once the other end has gone (or :meth:`close` was called)."""
        await asyncio.shield(self._closed)

    def close(self) -> None:
        self._writer.close()
        self._end()

    async def run(self) -> None:
        """Read frames and act on them until the other end closes."""
        try:
            while True:
                header = await self._reader.readexactly(_LENGTH.size)
                frame = await self._reader.readexactly(_LENGTH.unpack(header)[0])
                for message in pickle.loads(frame):
                    self._receive(message)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            self._end()

    def _receive(self, message: tuple[Any, ...]) -> None:
        kind, call_id = message[0], message[1]
        if kind == _CALL:
            task = asyncio.ensure_future(self._answer(call_id, message[2], message[3]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        future = self._waiting.get(call_id)
        if future is None or future.done():
            return  # its caller stopped waiting
        if kind == _OK:
            future.set_result(message[2])
        else:
            future.set_exception(unpack_error(message[2]))

    async def _answer(self, call_id: int, name: str, args: tuple[Any, ...]) -> None:
        try:
            result = await self._serve(name, args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._send((_ERROR, call_id, pack_error(exc)))
        else:
            self._send((_OK, call_id, result))

    def _send(self, message: tuple[Any, ...]) -> None:
        if self._closed.done():
            return
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append(message)

    def _flush(self) -> None:
        outbox, self._outbox = self._outbox, []
        if self._closed.done() or not outbox:
            return
        frame = pickle.dumps(outbox, pickle.HIGHEST_PROTOCOL)
        try:
            self._writer.write(_LENGTH.pack(len(frame)) + frame)
        except (ConnectionError, RuntimeError):  # the transport is closing
            self._end()

    def _end(self) -> None:
        if self._closed.done():
            return
        self._closed.set_result(None)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the channel closed"))
        for task in self._tasks:
            task.cancel()
