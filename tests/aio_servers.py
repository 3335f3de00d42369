"""Closing an asyncio server in the test process without leaking what it accepted.

Shared by the test servers (the TCP proxy, the echo server, the webhook receiver).
"""

from __future__ import annotations

import asyncio

ACCEPT_TURNS = 4  # loop turns from a listener's accept to its connection's handler task


async def close_server(server: asyncio.Server) -> None:
    """Close ``server`` without losing a connection its listener already accepted.

    asyncio 3.11 accepts a connection in one loop turn, attaches it to the server in
    the next, and starts its handler a turn or two later.  A server closed in between
    hands the connection to nobody: attaching to a closed server fails, or the handler
    starts after its caller took the list of connections to close.  Either way the
    transport stays open until the garbage collector finds it, and its ResourceWarning
    fails whichever test is running then (CPython gh-109564).  So the listeners stop
    accepting first (their readers removed: the server stays open), the accepted
    connections get their turns to reach their handlers, and only then does the server
    close; the caller then closes what its handlers hold."""
    loop = asyncio.get_running_loop()
    for sock in server.sockets:
        loop.remove_reader(sock.fileno())
    for _ in range(ACCEPT_TURNS):
        await asyncio.sleep(0)
    server.close()
