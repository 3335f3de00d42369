"""Whether a node's ports are free, checked before it opens anything.

A port in use was found only when the HTTP actor failed to bind, after the data
directory had been opened and created and the scheduler had started, with a
Pykka traceback before the one line that said why.  The node now tries each port
it will listen on first (bind, then close at once, with ``SO_REUSEADDR`` as the
servers use, so a port in TIME_WAIT is not taken for busy) and stops in one line
naming the key.  Another process may still take a port between this check and
the real bind; that rarer case keeps its own one-line error.
"""

from __future__ import annotations

import contextlib
import errno
import socket

from scheduled_db.config.model import NodeConfig


class PortInUse(OSError):
    """A port the node is to listen on cannot be bound: ``str()`` names the key."""


def listeners(config: NodeConfig) -> list[tuple[str, str, int]]:
    """(key, host, port) of every listener this node opens."""
    found = [("http.port", config.http.host, config.http.port)]
    if config.metrics.enabled:
        found.append(("metrics.port", config.http.host, config.metrics.port))
    if config.cluster.has_peers(config.node.id):
        found.append(("raft.port", config.raft.host, config.raft.port))
    return found


def check_ports(config: NodeConfig) -> None:
    """Raise :class:`PortInUse` for the first listener whose port cannot be bound."""
    for key, host, port in listeners(config):
        problem = _bind_problem(host.strip("[]"), port)
        if problem is not None:
            raise PortInUse(f"{key} {port} on {host} cannot be used: {problem}")


def _bind_problem(host: str, port: int) -> str | None:
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError as exc:
        return f"cannot resolve {host!r} ({exc.strerror or exc})"
    family, kind, proto, _, address = infos[0]
    with contextlib.closing(socket.socket(family, kind, proto)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            return "in use by another process" if _in_use(exc) else str(exc.strerror or exc)
    return None


def _in_use(exc: OSError) -> bool:
    return exc.errno == errno.EADDRINUSE
