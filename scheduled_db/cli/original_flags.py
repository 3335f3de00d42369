"""The original's command-line flags, in our spelling.

The original took Go ``flag`` flags: ``-peers=a:7000,b:7000`` or ``--peers a:7000``,
with one dash or two, the value after ``=`` or as the next argument.  Before
``run`` parses its arguments, :func:`translate` rewrites each of the original's
flags into the flag of the key it maps to (``-bootstrap-expect 3`` becomes
``--cluster-bootstrap-expect 3``), drops the ones that are ignored here (each
with a notice the node logs at start) and refuses the ones that are not
supported, in one line naming the flag.  Our own flags pass untouched.
"""

from __future__ import annotations

from collections.abc import Sequence

from scheduled_db.cli.errors import UsageError
from scheduled_db.config.keys import KEYS_BY_PATH
from scheduled_db.config.original import ORIGINAL_BY_FLAG, OriginalSetting, Treatment, notice


def translate(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """``args`` (what follows ``run``) with the original's flags in our spelling, and
    a notice for each ignored flag.  Raises ``UsageError`` for a refused one."""
    out: list[str] = []
    notices: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":  # the end of the options
            out.extend(args[i:])
            break
        setting, written, value = _original_flag(arg)
        if setting is None:
            out.append(arg)
            i += 1
            continue
        if setting.treatment is Treatment.REFUSED:
            raise UsageError(f"run: flag {written} (a flag of the original): {setting.reason}")
        separate = value is None and setting.takes_value
        if setting.treatment is Treatment.IGNORED:
            notices.append(notice(setting, f"flag {written}"))
        else:
            ours = KEYS_BY_PATH[str(setting.path)].flag
            out.append(ours if value is None else f"{ours}={value}")
            out.extend(args[i + 1 : i + 2] if separate else [])
        i += 2 if separate else 1
    return out, notices


def _original_flag(arg: str) -> tuple[OriginalSetting | None, str, str | None]:
    """(the setting, the flag as written, the value after ``=`` or None) of ``arg``
    if it is one of the original's flags; (None, arg, None) otherwise."""
    if not arg.startswith("-") or arg.startswith("---") or arg in ("-", "--"):
        return None, arg, None
    written, eq, value = arg.partition("=")
    setting = ORIGINAL_BY_FLAG.get(written.lstrip("-"))
    return setting, written, (value if eq else None)
