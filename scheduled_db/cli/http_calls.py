"""Where the command line's errors used to live, with its HTTP transport.

The transport is now the client's (:mod:`scheduled_db.client.transport`) and the
errors are in :mod:`scheduled_db.cli.errors`; this name stays only for
``actors/runtime/launcher.py``, which imports ``CliError`` from here, until that
import is changed (then this module goes).
"""

from scheduled_db.cli.errors import CliError, UsageError

__all__ = ["CliError", "UsageError"]
