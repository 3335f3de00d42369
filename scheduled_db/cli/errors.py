"""The command line's own errors: each is one line on stderr and exit code 2."""

from __future__ import annotations


class CliError(Exception):
    """A problem the command line reports as one line on stderr, with exit code 2."""


class UsageError(CliError):
    """The command was used wrongly: a bad argument, an unreadable request body."""
