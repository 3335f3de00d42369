"""The node's shell (``actors``), reached from the command line by name."""

from __future__ import annotations

import importlib
from typing import Any


def shell(module: str, name: str) -> Any:
    """``name`` from the node's shell, imported only by the commands that use it.

    By name rather than by an import statement: the client commands start without
    loading threads, sockets and RocksDB, and type-checking the core does not pull
    in (and depend on) every module of the shell.
    """
    return getattr(importlib.import_module(module), name)
