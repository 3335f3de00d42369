"""A probe actor that records every message told to it, with bounded waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pykka

T = TypeVar("T")


class Inbox:
    """Messages received by a :class:`Probe`, waited on with a deadline (never a sleep)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.items: list[Any] = []

    def put(self, msg: Any) -> None:
        with self._cond:
            self.items.append(msg)
            self._cond.notify_all()

    def wait_until(self, pred: Callable[[list[Any]], bool], timeout: float = 10.0) -> None:
        """Wait until ``pred`` holds of every message so far."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not pred(self.items):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not within {timeout}s: {self.items!r}")
                self._cond.wait(left)

    def of_type(self, cls: type[T]) -> list[T]:
        with self._cond:
            return [m for m in self.items if isinstance(m, cls)]

    def wait_for(
        self, cls: type[T], pred: Callable[[T], bool] = lambda _: True, timeout: float = 10.0
    ) -> T:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for m in self.items:
                    if isinstance(m, cls) and pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {cls.__name__} within {timeout}s: {self.items!r}")
                self._cond.wait(left)


class Probe(pykka.ThreadingActor):
    def __init__(self, inbox: Inbox) -> None:
        super().__init__()
        self.inbox = inbox

    def on_receive(self, message: Any) -> None:
        self.inbox.put(message)


def start_probe() -> tuple[pykka.ActorRef[Any], Inbox]:
    inbox = Inbox()
    return Probe.start(inbox), inbox
