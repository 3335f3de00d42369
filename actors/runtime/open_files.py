"""The process's open-file limit, and the share of it webhook requests may use.

Every webhook request in flight holds a socket, so ``execution.concurrency`` is a
number of file descriptors.  A node raises its soft limit to the hard one at start
(as Go's runtime does): the soft default of many systems, 1,024, is a leftover that
``select()`` needed, not a budget anyone chose.  Webhooks then get at most half of
it; RocksDB's files, the API's clients, the peers and the logs need the rest.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger(__name__)


def raise_soft_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit where the system allows it;
    return the soft limit in force (``resource.RLIM_INFINITY`` if unlimited)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # a container may refuse it: keep the soft one
            log.info("open-file limit stays %d (could not raise it to %d: %s)", soft, hard, exc)
    return soft


def webhook_slots(configured: int, soft_limit: int) -> int:
    """``configured`` (``execution.concurrency``), at most half of ``soft_limit``."""
    if soft_limit == resource.RLIM_INFINITY:
        return configured
    usable = max(1, soft_limit // 2)
    if configured <= usable:
        return configured
    log.warning(
        "execution.concurrency %d needs more sockets than half the open-file limit (%d): "
        "using %d; raise the limit (ulimit -n) to allow more",
        configured,
        soft_limit,
        usable,
    )
    return usable
