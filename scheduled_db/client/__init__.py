"""The Python client of scheduled-db's REST API: :class:`Client` (docs/client.md).

Standard library only.  Typed answers (:class:`Job`, :class:`Execution`, ...) keep
the server's JSON as ``raw``; errors are :class:`ApiError` subclasses by status
(:class:`NotFound`, :class:`Conflict`, :class:`PreconditionFailed`, ...) carrying
``status``, ``code``, ``message`` and ``field``, and :class:`Unreachable`.
"""

from scheduled_db.client.client import Client
from scheduled_db.client.errors import (
    ApiError,
    BadCaFile,
    BadRequest,
    ClientError,
    Conflict,
    Forbidden,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    RateLimited,
    ServerError,
    Unauthorized,
    Unavailable,
    UnexpectedAnswer,
    Unreachable,
)
from scheduled_db.client.models import (
    BatchItem,
    BatchResult,
    Cancelled,
    Execution,
    Job,
    JobState,
    Page,
    Run,
    Trigger,
    Upcoming,
    pages,
)
from scheduled_db.client.node_info import Cluster, Health, Member, Readiness
from scheduled_db.client.query import job_path, since_param
from scheduled_db.client.retry import NO_RETRY, RetryPolicy

__all__ = [
    "NO_RETRY",
    "ApiError",
    "BadCaFile",
    "BadRequest",
    "BatchItem",
    "BatchResult",
    "Cancelled",
    "Client",
    "ClientError",
    "Cluster",
    "Conflict",
    "Execution",
    "Forbidden",
    "Health",
    "InsufficientStorage",
    "Job",
    "JobState",
    "Member",
    "NotFound",
    "Page",
    "PayloadTooLarge",
    "PreconditionFailed",
    "RateLimited",
    "Readiness",
    "RetryPolicy",
    "Run",
    "ServerError",
    "Trigger",
    "Unauthorized",
    "Unavailable",
    "UnexpectedAnswer",
    "Unreachable",
    "Upcoming",
    "job_path",
    "pages",
    "since_param",
]
