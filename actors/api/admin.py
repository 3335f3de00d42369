"""The node's administrative routes: ``GET /admin/snapshot`` streams a backup.

The backup (:mod:`scheduled_db.state.backup_format`) is read from a checkpoint on
the default executor's threads, a piece at a time, and written to the response as
it comes: the event loop never waits on the disk, and the node keeps serving
writes meanwhile (the checkpoint is a database of its own).  The checksum ends
the stream, so a client cut off midway holds a file that ``restore`` refuses.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from actors.api.auth import ROLE, require_secret
from actors.api.backend import Backend
from scheduled_db.policy.auth import Role
from scheduled_db.state.backup_format import MEDIA_TYPE

log = logging.getLogger(__name__)
BACKUP_TIMEOUT_S = 30.0


class AdminRoutes:
    def __init__(self, backend: Backend, secrets: tuple[str, ...]) -> None:
        self._backend = backend
        self._secrets = secrets

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/admin/snapshot", self.snapshot)]

    def _authorize(self, request: web.Request) -> None:
        """An admin token or the cluster secret (checked by :mod:`actors.api.auth`
        when the API has tokens); with none configured the API is open, and so is
        this, as every job is readable then anyway."""
        if request.get(ROLE) is Role.ADMIN or not self._secrets:
            return
        needs = "A backup needs Authorization: Bearer <admin token or cluster secret>"
        require_secret(request, self._secrets, needs)

    async def snapshot(self, request: web.Request) -> web.StreamResponse:
        self._authorize(request)
        stream = await self._backend.open_backup(BACKUP_TIMEOUT_S)
        loop = asyncio.get_running_loop()
        try:
            h = stream.header
            response = web.StreamResponse(
                headers={
                    "Content-Type": MEDIA_TYPE,
                    "Content-Disposition": (
                        f'attachment; filename="scheduled-db-{h.index}-{h.term}.backup"'
                    ),
                    "X-Snapshot-Index": str(h.index),
                    "X-Snapshot-Term": str(h.term),
                    "X-Snapshot-Digest": h.digest,
                    "X-Snapshot-Bytes": str(h.size),
                    "Cache-Control": "no-store",
                }
            )
            await response.prepare(request)
            pieces = stream.pieces()
            while (piece := await loop.run_in_executor(None, next, pieces, None)) is not None:
                await response.write(piece)
            await response.write_eof()
            log.info("backup at index %d (%d keys) sent to %s", h.index, h.keys, request.remote)
            return response
        finally:
            await loop.run_in_executor(None, stream.close)
