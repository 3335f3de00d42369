"""The one way an actor answers a request (docs/architecture.md, "One way to reply").

A request that is answered carries a :data:`Reply`: a callable the sender built,
called once by the replier, from the replier's thread, with the answer.  It must
not block: an actor passes ``self.actor_ref.tell`` (or a closure that tags the
answer and tells it), the HTTP side a hop onto its event loop.  It may raise
``pykka.ActorDeadError`` if the sender is gone; repliers drop the answer then.

Outside every actor (the supervisor in actors/node.py, tests) a caller may wait
for the answer: :func:`wait_reply`.  A handler never does (tests/actors/test_no_blocking.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import time
from collections.abc import Callable
from typing import Any

import pykka

log = logging.getLogger(__name__)

Reply = Callable[[Any], None]

DEAD_CHECK_S = 0.05  # how often wait_reply looks whether the actor still lives

# A reference to an actor of any class, for the places where any actor may be
# the one told (subscribers, a transport's inbox, the supervisor's table).  Where
# the class is known the reference names it: ``pykka.ActorRef[StorageActor]``.
# (pykka's ActorRef is invariant in its actor class, so "any" is ``Any``.)
ActorRef = pykka.ActorRef[Any]


def loop_callback(loop: asyncio.AbstractEventLoop, fn: Callable[[Any], None]) -> Reply:
    """A :data:`Reply` that runs ``fn(answer)`` on ``loop``: callable from any thread
    (the answer hops over with ``call_soon_threadsafe``); an answer after the loop
    closed (the node is stopping, nobody waits) is dropped."""

    def reply(value: Any) -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(fn, value)

    return reply


def loop_reply(loop: asyncio.AbstractEventLoop) -> tuple[asyncio.Future[Any], Reply]:
    """A future on ``loop`` and the :data:`Reply` that resolves it (see
    :func:`loop_callback`); a later answer, or one after the waiter gave up, is dropped."""
    future: asyncio.Future[Any] = loop.create_future()

    def resolve(value: Any) -> None:
        if not future.done():
            future.set_result(value)

    return future, loop_callback(loop, resolve)


def answer(reply: Reply, value: Any) -> None:
    """Give ``value`` to ``reply``; if the asker is gone, drop it (logged at DEBUG)."""
    try:
        reply(value)
    except pykka.ActorDeadError:
        log.debug("the asker is gone: dropping %s", type(value).__name__)


def wait_reply(
    ref: pykka.ActorRef[Any], make: Callable[[Reply], object], timeout: float | None
) -> Any:
    """Tell ``ref`` the request ``make(reply)`` builds and wait up to ``timeout``
    seconds (None: no bound) for its first answer; later ones are dropped.

    Raises ``pykka.Timeout`` when the time is up, and ``pykka.ActorDeadError`` if
    the actor stops without answering (a stopped actor drops its mailbox).  For
    the supervisor and tests only: an actor's handler never waits on another.
    """
    future: pykka.ThreadingFuture[Any] = pykka.ThreadingFuture()

    def reply(value: Any) -> None:
        with contextlib.suppress(queue.Full):  # only the first answer counts
            future.set(value)

    ref.tell(make(reply))
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = DEAD_CHECK_S if deadline is None else deadline - time.monotonic()
        try:
            return future.get(timeout=max(0.0, min(DEAD_CHECK_S, left)))
        except pykka.Timeout:
            if not ref.is_alive():
                raise pykka.ActorDeadError(f"{ref} stopped without answering") from None
            if deadline is not None and time.monotonic() >= deadline:
                raise
