"""Where a webhook may be delivered: the address policy of the SSRF guard.

A webhook URL is chosen by whoever may create jobs, and the leader POSTs to it
from inside the cluster's network.  Left open, that lets an API client reach what
only the cluster can: a cloud metadata service (169.254.169.254), a database on
loopback, an admin port on a private network.  So by default a webhook may only
go to a public address; :class:`AddressPolicy` says, for one IP address, whether
it may be dialled and, if not, why.

Refused by default: loopback, link-local, private (RFC 1918, CGNAT 100.64/10,
IPv6 unique-local and site-local), multicast, unspecified (0.0.0.0/8, ``::``) and
reserved ranges (documentation, benchmarking, 240/4, IETF assignments).  The table
is our own rather than ``ipaddress``'s ``is_private``/``is_global``, whose answers
changed between CPython patch releases; those flags still serve as a backstop that
can only refuse more.  An IPv6 address that carries an IPv4 one (IPv4-mapped
``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``) is judged by the
IPv4 address it reaches.

Opening it: ``allow_networks`` (CIDRs) admits the addresses inside them, whatever
their class; ``allow_private`` turns the guard off.

Pure: no sockets, no resolver.  The shell resolves names and asks this module about
every address it is about to dial (``actors/webhook/client.py``) and every address a
new job's URL names or resolves to (``actors/webhook/guard.py``).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

LOOPBACK = "loopback"
LINK_LOCAL = "link-local"
PRIVATE = "private"
MULTICAST = "multicast"
UNSPECIFIED = "unspecified"
RESERVED = "reserved"

# Most specific first where ranges nest (::/128 and ::1/128 inside ::/8).
_REFUSED_TEXT = (
    ("0.0.0.0/8", UNSPECIFIED),  # "this network"; Linux dials 0.0.0.0 as loopback
    ("10.0.0.0/8", PRIVATE),
    ("100.64.0.0/10", PRIVATE),  # carrier-grade NAT, shared address space
    ("127.0.0.0/8", LOOPBACK),
    ("169.254.0.0/16", LINK_LOCAL),  # cloud metadata services live here
    ("172.16.0.0/12", PRIVATE),
    ("192.0.0.0/24", RESERVED),
    ("192.0.2.0/24", RESERVED),
    ("192.88.99.0/24", RESERVED),
    ("192.168.0.0/16", PRIVATE),
    ("198.18.0.0/15", RESERVED),
    ("198.51.100.0/24", RESERVED),
    ("203.0.113.0/24", RESERVED),
    ("224.0.0.0/4", MULTICAST),
    ("240.0.0.0/4", RESERVED),  # and 255.255.255.255
    ("::/128", UNSPECIFIED),
    ("::1/128", LOOPBACK),
    ("::/8", RESERVED),  # IPv4-compatible and the rest (mapped and NAT64 unwrapped first)
    ("100::/64", RESERVED),
    ("2001::/23", RESERVED),  # IETF assignments, Teredo among them
    ("2001:db8::/32", RESERVED),
    ("3fff::/20", RESERVED),
    ("fc00::/7", PRIVATE),  # unique local
    ("fe80::/10", LINK_LOCAL),
    ("fec0::/10", PRIVATE),  # site-local (deprecated, still routed by some)
    ("ff00::/8", MULTICAST),
)
_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), category) for net, category in _REFUSED_TEXT
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_LOCALHOST_ADDRESSES: tuple[IPAddress, ...] = (
    ipaddress.IPv4Address("127.0.0.1"),
    ipaddress.IPv6Address("::1"),
)


def reached_address(ip: IPAddress) -> IPAddress:
    """The address a packet to ``ip`` ends up at: the IPv4 address inside an
    IPv4-mapped, NAT64 or 6to4 IPv6 address, else ``ip`` itself."""
    if isinstance(ip, ipaddress.IPv4Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour is not None:
        return ip.sixtofour
    return ip


@functools.lru_cache(maxsize=4096)  # every create and every dial asks; the answer never changes
def address_class(ip: IPAddress) -> str | None:
    """The class that makes ``ip`` refused by default (``"loopback"``, ``"private"``...),
    or None for a public address."""
    target = reached_address(ip)
    for network, category in _REFUSED:
        if target in network:
            return category
    # The standard library's view, which can only refuse more than the table.
    if target.is_loopback:
        return LOOPBACK
    if target.is_link_local:
        return LINK_LOCAL
    if target.is_multicast:
        return MULTICAST
    if target.is_unspecified:
        return UNSPECIFIED
    if target.is_private or target.is_reserved or not target.is_global:
        return RESERVED
    return None


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Which addresses webhooks may be delivered to.

    The default instance is the shipped default: public addresses only.
    ``allow_networks`` admits every address inside them (an IPv4-mapped or NAT64
    address is admitted when the IPv4 address it reaches is); ``allow_private``
    admits everything.
    """

    allow_private: bool = False
    allow_networks: tuple[IPNetwork, ...] = ()

    @property
    def open(self) -> bool:
        """True when nothing is refused, so nothing needs to be resolved to check."""
        return self.allow_private

    def refusal(self, ip: IPAddress) -> str | None:
        """Why ``ip`` may not be dialled (its class, e.g. ``"loopback"``), or None."""
        if self.allow_private:
            return None
        target = reached_address(ip)
        if any(target in net or ip in net for net in self.allow_networks):
            return None
        return address_class(ip)

    def refusal_of(self, address: str) -> str | None:
        """:meth:`refusal` of an address as text (a resolver's answer, which may
        carry an IPv6 zone such as ``%eth0``); text that is no IP address is refused."""
        ip = parse_address(address)
        return RESERVED if ip is None else self.refusal(ip)


DENY = AddressPolicy()  # the default: public addresses only


def parse_address(text: str) -> IPAddress | None:
    """``text`` as an IP address (IPv6 zones allowed), or None if it is not one."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def is_localhost_name(host: str) -> bool:
    """``localhost`` and any name under ``.localhost``, which RFC 6761 reserves for
    loopback whatever a resolver says."""
    name = host.lower().removesuffix(".")
    return name == "localhost" or name.endswith(".localhost")


def host_addresses(host: str) -> tuple[IPAddress, ...] | None:
    """The addresses a URL's host stands for without asking a resolver: an IP literal
    is itself, a localhost name is both loopback addresses; None for a name to resolve."""
    ip = parse_address(host)
    if ip is not None:
        return (ip,)
    if is_localhost_name(host):
        return _LOCALHOST_ADDRESSES
    return None


def first_refusal(policy: AddressPolicy, addresses: Sequence[IPAddress]) -> str | None:
    """The class of the first of ``addresses`` the policy refuses, or None if none is."""
    for ip in addresses:
        category = policy.refusal(ip)
        if category is not None:
            return category
    return None


def creation_refusal_message(category: str, *, resolved: bool) -> str:
    """Why a new job's webhook_url is refused, for the API client.  It names the class
    of address only, never the address a name resolved to: that is the cluster's
    view of the network, not the client's to learn."""
    what = "resolves to" if resolved else "points to"
    return (
        f"{what} {_article(category)} {category} address; webhooks there are refused unless "
        "webhooks.allow_networks or webhooks.allow_private allows them"
    )


def dial_refusal_message(host: str, category: str | None) -> str:
    """Why a delivery dialled nothing, as the execution history shows it: the URL's
    own host (the job's creator wrote it) and the class of its addresses, never the
    address a name resolved to."""
    kind = category or RESERVED
    if parse_address(host) is not None:
        what = f"is {_article(kind)} {kind} address"
    else:
        what = f"resolves only to {kind} addresses"
    return f"address not allowed: {host} {what} (see webhooks.allow_networks)"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"
