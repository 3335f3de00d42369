"""DNS discovery: the members of a Kubernetes StatefulSet, from names alone.

A StatefulSet named ``web`` with a headless service ``web-peers`` in namespace
``prod`` runs pods ``web-0`` ... ``web-<n-1>``, and the cluster DNS gives each
pod the stable name ``web-<i>.web-peers.prod.svc.cluster.local``.  So a node
that knows its own pod name (``node.id``), the service name
(``cluster.dns_service``) and the replica count (``cluster.replicas``) knows
every member without asking anyone: the same list on every pod, which is what
bootstrapping needs.  The names resolve once the pods exist (the headless
service should publish not-ready addresses, so peers can reach a pod before it
is ready); until then the transport keeps dialling with backoff.
"""

from __future__ import annotations

import re

from scheduled_db.config.kinds import Address, Member

_ORDINAL = re.compile(r"(.+)-(0|[1-9][0-9]*)")


def dns_members(
    node_id: str, service: str, replicas: int, raft_port: int, http_port: int
) -> tuple[Member, ...]:
    """Every member's id and addresses; ValueError if ``node_id`` is no pod name."""
    match = _ORDINAL.fullmatch(node_id)
    if match is None:
        raise ValueError(
            f'"{node_id}" must be a StatefulSet pod name, <name>-<ordinal>, with dns discovery'
        )
    base, ordinal = match.group(1), int(match.group(2))
    if ordinal >= replicas:
        raise ValueError(f'"{node_id}" has ordinal {ordinal}, beyond cluster.replicas ({replicas})')
    members = []
    for i in range(replicas):
        host = f"{base}-{i}.{service}"
        members.append(Member(f"{base}-{i}", Address(host, raft_port), Address(host, http_port)))
    return tuple(members)
