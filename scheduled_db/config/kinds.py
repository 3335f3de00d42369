"""Kinds of configuration values: how each is written, parsed and checked.

A ``Kind`` turns a value as YAML, an environment variable or a command-line flag
gives it (a YAML scalar or list, or a string) into its typed form, or raises
``ValueError`` saying what the value must be.  The loader in ``scheduled_db.config.loading``
adds the key and the source to that message.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from scheduled_db.config import units
from scheduled_db.config.original import REFUSED_DISCOVERY
from scheduled_db.policy import auth, signing
from scheduled_db.policy.ssrf import IPNetwork


class Invalid(ValueError):
    """A value is wrong: the message says what was expected ("must be ...").

    ``got`` narrows the value shown to the user when only part of it is at fault
    (one member of a list, say), where a plain ``ValueError`` shows the whole value;
    ``NOT_SHOWN`` shows none, for when the message already names the culprit.
    """

    def __init__(self, message: str, got: object) -> None:
        super().__init__(message)
        self.got = got


NOT_SHOWN = object()


class Discovery(StrEnum):
    """How a node finds the other members of its cluster."""

    STATIC = "static"  # the members are listed (cluster.members / PEERS)
    DNS = "dns"  # the members are looked up under cluster.dns_service


@dataclass(frozen=True, slots=True)
class Address:
    """A ``host:port`` network address; an IPv6 host keeps its brackets: ``[::1]:7000``."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Member:
    """One voting member of the cluster: its node id and where to reach it."""

    id: str
    raft_address: Address
    http_address: Address


@dataclass(frozen=True, slots=True)
class Kind:
    """How the values of a key are written and checked.

    ``parse`` takes a value as YAML, an env var or a flag gives it and returns the
    typed value, or raises ``ValueError`` saying what it must be.  ``suffix`` is
    appended to the key's name to form the attribute name, so that the unit of a
    converted value shows in code (``slot_gap`` -> ``slot_gap_ms``).
    """

    name: str
    parse: Callable[[object], object]
    suffix: str = ""


# --- kinds ----------------------------------------------------------------------------

_INT = re.compile(r"[+-]?\d+")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]/]+):(\d{1,5})")


def _to_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INT.fullmatch(value.strip()):
        return int(value)
    return None


def integer(low: int, high: int | None = None) -> Kind:
    wanted = f"between {low} and {high}" if high is not None else f">= {low}"

    def parse(value: object) -> int:
        number = _to_int(value)
        if number is None or number < low or (high is not None and number > high):
            raise ValueError(f"must be an integer {wanted}")
        return number

    return Kind(f"integer {wanted}", parse)


def number(low: float, high: float, *, above_low: bool = False) -> Kind:
    """A real number in [low, high], or in (low, high] when ``above_low``."""
    lower = f"above {low:g} and at most" if above_low else f"from {low:g} to"
    wanted = f"a number {lower} {high:g}"

    def parse(value: object) -> float:
        result = _to_float(value)
        if result is None or not low <= result <= high or (above_low and result == low):
            raise ValueError(f"must be {wanted}")
        return result

    return Kind(wanted, parse)


def _to_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        result = float(value)
    except ValueError:
        return None
    return result if math.isfinite(result) else None


def _text(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _secret(value: object) -> str:
    # Peers authenticate with it (ARCHITECTURE rule 8): a short one is guessable.
    if not isinstance(value, str) or len(value.strip()) < 16:
        raise ValueError("must be a string of at least 16 characters")
    return value.strip()


def _host(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value.strip()):
        raise ValueError("must be a host name or IP address")
    return value.strip()


def _node_id(value: object) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ValueError("must be 1-64 letters, digits, '.', '_' or '-', starting alphanumeric")
    return value


def _duration(value: object) -> int:
    ms = units.parse_duration_ms(value)
    if ms <= 0:
        raise ValueError(f"must be a positive duration ({units.DURATION_HELP})")
    return ms


def _size(value: object) -> int:
    size = units.parse_size_bytes(value)
    if size <= 0:
        raise ValueError(f"must be a positive size ({units.SIZE_HELP})")
    return size


def _str_list(value: object) -> tuple[str, ...]:
    """A YAML list of strings, or one comma-separated string from an env var or flag."""
    items = value.split(",") if isinstance(value, str) else [] if value is None else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError("must be a list of strings (or one comma-separated string)")
    return tuple(i.strip() for i in items if i.strip())


def _file(value: object) -> str:
    # Only the form is checked here (the core reads no files); the node opens the
    # file at start-up and reports a missing or unreadable one against the same key.
    path = value.strip() if isinstance(value, str) else ""
    if not path or any(c in path for c in "\0\n\r"):
        raise ValueError("must be a file path")
    return path


def _networks(value: object) -> tuple[IPNetwork, ...]:
    """CIDR networks (a bare address is a /32 or /128), as a list or comma-separated.
    Host bits set (``10.0.0.1/8``) are refused as the likely typo they are."""
    networks: list[IPNetwork] = []
    for item in _str_list(value):
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError:
            wanted = "must be CIDR networks such as 10.0.0.0/8 or fd00::/8, host bits zero"
            raise Invalid(wanted, item) from None
    return tuple(networks)


def _log_level(value: object) -> str:
    level = value.strip().upper() if isinstance(value, str) else ""
    level = "WARNING" if level == "WARN" else level
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be one of DEBUG, INFO, WARN (or WARNING), ERROR")
    return level


def _discovery(value: object) -> Discovery:
    word = value.strip().lower() if isinstance(value, str) else ""
    if word == "none":  # the original's "no discovery": the members, if any, are listed
        return Discovery.STATIC
    if word in REFUSED_DISCOVERY:
        raise Invalid(
            f'"{word}" (a strategy of the original) is not supported: {REFUSED_DISCOVERY[word]}',
            NOT_SHOWN,
        )
    if word not in {d.value for d in Discovery}:
        raise ValueError("must be one of: static, dns")
    return Discovery(word)


def optional(kind: Kind) -> Kind:
    """The same kind, but ``null`` (unset) is allowed and means "not configured"."""

    def parse(value: object) -> object:
        return None if value is None else kind.parse(value)

    return Kind(f"{kind.name} (optional)", parse, kind.suffix)


TEXT = Kind("string", _text)
SECRET = Kind("secret", _secret)
HOST = Kind("host", _host)
FILE = Kind("file path", _file)
NODE_ID = Kind("node id", _node_id)
PORT = integer(1, 65535)
DURATION = Kind("duration", _duration, "_ms")
SIZE = Kind("size", _size, "_bytes")
BOOL = Kind("boolean", units.parse_bool)
STR_LIST = Kind("list of strings", _str_list)
NETWORKS = Kind("list of CIDR networks", _networks)
LOG_LEVEL = Kind("log level", _log_level)
DISCOVERY = Kind("static|dns", _discovery)


# --- cluster members --------------------------------------------------------------------

PEERS_FORMAT = "id=raft_host:port=http_host:port"


def parse_address(value: object) -> Address:
    match = _ADDRESS.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None or not 1 <= int(match.group(2)) <= 65535:
        raise Invalid("must be host:port with a port between 1 and 65535", value)
    return Address(match.group(1), int(match.group(2)))


def _member_from_mapping(index: int, entry: object) -> Member:
    where = f"member {index}"
    if not isinstance(entry, Mapping):
        raise Invalid(f"{where}: must be a mapping with id, raft_address, http_address", entry)
    fields = ("id", "raft_address", "http_address")
    for name in entry:
        if name not in fields:
            raise Invalid(f'{where}: unknown key "{name}"', NOT_SHOWN)
    for name in fields:
        if name not in entry:
            raise Invalid(f"{where}: missing {name}", NOT_SHOWN)
    return _member(where, entry["id"], entry["raft_address"], entry["http_address"])


def _member_from_peer(index: int, item: str) -> Member:
    parts = item.split("=")
    if len(parts) != 3:
        raise Invalid(f'member {index}: must be written "{PEERS_FORMAT}"', item)
    return _member(f"member {index}", *(p.strip() for p in parts))


def _member(where: str, node_id: object, raft: object, http: object) -> Member:
    try:
        checked_id = _node_id(node_id)
    except ValueError as exc:
        raise Invalid(f"{where}: id {exc}", node_id) from None
    return Member(
        checked_id,
        _member_address(where, "raft_address", raft),
        _member_address(where, "http_address", http),
    )


def _member_address(where: str, name: str, value: object) -> Address:
    try:
        return parse_address(value)
    except ValueError as exc:
        raise Invalid(f"{where}: {name} {exc}", value) from None


def _members(value: object) -> tuple[Member, ...] | tuple[Address, ...]:
    """A YAML list of {id, raft_address, http_address}, or the PEERS compact string;
    or, the original's form, Raft addresses alone (``host:port``, a YAML list or a
    comma-separated string), whose ids the node learns from the peers themselves."""
    if value is None:  # "members:" with nothing under it
        return ()
    if isinstance(value, str):
        items: list[object] = [i.strip() for i in value.split(",") if i.strip()]
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        raise ValueError(f'must be a list of members or a "{PEERS_FORMAT},..." string')
    if items and all(isinstance(i, str) and "=" not in i for i in items):
        return _addresses(items)
    if any(isinstance(i, str) and "=" not in i for i in items):
        raise Invalid(
            f'write every member the same way: all "{PEERS_FORMAT}" or all host:port', NOT_SHOWN
        )
    members = [
        _member_from_peer(n, item) if isinstance(item, str) else _member_from_mapping(n, item)
        for n, item in enumerate(items, 1)
    ]
    _reject_duplicates(members)
    return tuple(members)


def _addresses(items: Sequence[object]) -> tuple[Address, ...]:
    addresses: list[Address] = []
    for n, item in enumerate(items, 1):
        address = _member_address(f"member {n}", "raft_address", item)
        if address in addresses:
            raise Invalid("duplicate member raft_address", str(address))
        addresses.append(address)
    return tuple(addresses)


def _reject_duplicates(members: Sequence[Member]) -> None:
    for label, of in (
        ("id", lambda m: m.id),
        ("raft_address", lambda m: str(m.raft_address)),
        ("http_address", lambda m: str(m.http_address)),
    ):
        seen: set[str] = set()
        for member in members:
            if of(member) in seen:
                raise Invalid(f"duplicate member {label}", of(member))
            seen.add(of(member))


MEMBERS = Kind("members", _members)


# --- API tokens (scheduled_db/policy/auth.py) ----------------------------------------------------

TOKENS = Kind("tokens", auth.parse_tokens)

# --- named webhook signing secrets (scheduled_db/policy/signing.py) -------------------------------

NAMED_SECRETS = Kind("named secrets", signing.parse_named_secrets)
SIGNATURE_SCHEME = Kind("scheduled-db|standard", signing.parse_scheme)
