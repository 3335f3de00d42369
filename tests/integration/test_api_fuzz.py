"""HTTP API fuzz of a live cluster: no 5xx, JSON error bodies, nothing internal leaked.

A three-node cluster of real processes; the leader and then a follower (whose writes
are forwarded to the leader, so forwarding and peer addresses are in play) take a
seeded, bounded stream of bad requests (tests/integration/api_fuzz_gen.py): raw
ones over plain sockets (malformed request lines and JSON, wrong content types,
oversize and deeply nested bodies, invalid UTF-8, broken Content-Encoding and
chunking, random methods and paths, path traversal and percent-encoding garbage in
job ids, overlong and contradictory headers, absurd query strings) and properly
encoded ones through an HTTP client (random ids, query values and JSON bodies).

Every answer is checked: a status below 500; for an error, a JSON object with an
``error`` string; and no body holds a stack trace, a file path, the data directory
or a node's Raft address, nor does an error body hold another node's HTTP address
(/health names the leader's HTTP address on purpose, for clients: that is a public
address, allowed in a success body).  Text the request itself carried may be echoed
(an unknown field's name), so a forbidden string counts only when the request did
not contain it.  Afterwards the nodes have logged no ERROR and no traceback, and
still serve.  /debug/cluster, which lists Raft addresses for operators by design,
is not among the fuzzed routes.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import socket
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

import pytest

from scheduled_db.testing.harness import wait_leader, wait_until
from tests.integration.api_fuzz_gen import ClientRequests, Raw, RawRequests
from tests.integration.cluster import ClusterNode, job, running_cluster

SEED = 0xA11_F022
RAW_REQUESTS = 1500  # per fuzzed node
CLIENT_REQUESTS = 500  # per fuzzed node
WORKERS = 8  # requests in flight at once
# One exchange.  The node answers in milliseconds, but a write caught in an election
# on a follower may wait for a leader (3 election timeouts: 9 s) and then for the
# forwarded request (actors/api/forward.py: up to 15 s) before it is answered.
TIMEOUT_S = 30.0
KNOWN_IDS = [f"known-{i}" for i in range(5)]
# Raft timing is not under test: a longer election timeout keeps a starved CI machine
# from changing leaders mid-run.  Should it happen anyway, the writes caught in the
# election get Raft's refusals (503, by design), and only then are those allowed.
SLOW_ELECTIONS = ("--raft-election-timeout", "3s")
RAFT_REFUSALS = frozenset({"no_leader", "not_leader", "unknown_outcome"})
ALWAYS_FORBIDDEN = ("Traceback", 'File "', "/work/", "site-packages", ".py", "/tmp/", "/root/")


@dataclass
class Exchange:
    """A request as sent and the answer read back (status None: no answer)."""

    request: bytes
    method: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str = ""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ClusterNode]]:
    with running_cluster(tmp_path_factory.mktemp("api-fuzz"), extra=SLOW_ELECTIONS) as nodes:
        leader = wait_leader(nodes)
        for job_id in KNOWN_IDS:
            status, _, body = leader.http.call("POST", "/jobs", job(job_id, time.time() + 7200))
            assert status == 200, body
        yield nodes


# --- sending -----------------------------------------------------------------------------


def _read_answer(sock: socket.socket, method: str) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.x answer (after any 1xx), parsed by hand: aiohttp may answer a request
    line of another version in kind, which http.client refuses to read."""
    stream = sock.makefile("rb")
    while True:
        status_line = stream.readline(65537)
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := stream.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if status >= 200:
            break
    if method == "HEAD" or status in (204, 304):
        return status, headers, b""
    if "content-length" in headers:
        return status, headers, stream.read(int(headers["content-length"]))
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while size := int(stream.readline().split(b";")[0], 16):
            body += stream.read(size + 2)[:-2]
        return status, headers, body
    return status, headers, stream.read()


def send_raw(port: int, raw: Raw) -> Exchange:
    exchange = Exchange(raw.data, raw.method)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
            sock.sendall(raw.data)
            exchange.status, exchange.headers, exchange.body = _read_answer(sock, raw.method)
    except (OSError, ValueError, IndexError) as exc:
        exchange.error = repr(exc)
    return exchange


def send_client(
    port: int, method: str, path: str, body: object, extra: dict[str, str] | None = None
) -> Exchange:
    data = None if body is None else json.dumps(body).encode()
    exchange = Exchange(method.encode() + b" " + path.encode() + b"\n" + (data or b""), method)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT_S)
    try:
        headers = {} if data is None else {"Content-Type": "application/json"}
        headers.update(extra or {})
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        exchange.status, exchange.body = response.status, response.read()
        exchange.headers = {k.lower(): v for k, v in response.getheaders()}
    except (OSError, http.client.HTTPException) as exc:
        exchange.error = repr(exc)
    finally:
        conn.close()
    return exchange


# --- checking ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Forbidden:
    """Strings no body may hold, and those no error body may hold, unless requested."""

    anywhere: tuple[str, ...]
    in_errors: tuple[str, ...]
    port_patterns: tuple[re.Pattern[str], ...]  # Raft ports, alone, in error bodies


def forbidden_for(nodes: list[ClusterNode], target: ClusterNode) -> Forbidden:
    raft = tuple(f"127.0.0.1:{n.raft_port}" for n in nodes)
    data_dirs = tuple(str(n.data_dir) for n in nodes)
    others = tuple(f"127.0.0.1:{n.http_port}" for n in nodes if n is not target)
    ports = tuple(re.compile(rf"(?<!\d){n.raft_port}(?!\d)") for n in nodes)
    return Forbidden(ALWAYS_FORBIDDEN + raft + data_dirs, others, ports)


def _request_forms(request: bytes) -> str:
    """The request as text in the forms an answer could echo it: raw and percent-decoded."""
    decoded = unquote_to_bytes(request)
    return "\n".join(
        [request.decode("latin-1"), request.decode("utf-8", "replace")]
        + [decoded.decode("latin-1"), decoded.decode("utf-8", "replace")]
    )


def _not_ready(exchange: Exchange) -> bool:
    """/ready answers 503 by design while the node catches up (a readiness probe's no)."""
    target = exchange.request.split(b" ", 2)[1:2]
    return (
        exchange.status == 503
        and bool(target)
        and target[0].split(b"?")[0] == b"/ready"
        and exchange.body.startswith(b'{"ready":false')
    )


def _unhealthy(exchange: Exchange) -> bool:
    """/health answers 503 by design while no leader is known (or the original's
    failure rule holds), with the health document as its body, not an error."""
    target = exchange.request.split(b" ", 2)[1:2]
    if exchange.status != 503 or not target or target[0].split(b"?")[0] != b"/health":
        return False
    try:
        return bool(json.loads(exchange.body).get("code") == "unhealthy")
    except (ValueError, AttributeError):
        return exchange.method == "HEAD"


def _raft_refusal(exchange: Exchange) -> bool:
    """A 503 by which Raft refused a write: no leader, or leadership moved meanwhile."""
    if exchange.status != 503:
        return False
    if exchange.method == "HEAD":
        return True  # no body to tell which 503
    try:
        return json.loads(exchange.body).get("code") in RAFT_REFUSALS
    except (ValueError, AttributeError):
        return False


def problems_of(exchange: Exchange, forbidden: Forbidden, elections: int = 0) -> list[str]:
    """What is wrong with one answer; ``elections`` during the run allow Raft's 503s."""
    where = exchange.request[:120]
    if exchange.status is None:
        return [f"no answer to {where!r}: {exchange.error}"]
    found: list[str] = []
    no_leader = elections > 0 and (_raft_refusal(exchange) or _unhealthy(exchange))
    allowed = _not_ready(exchange) or no_leader
    if exchange.status >= 500 and not allowed:
        found.append(f"{exchange.status} for {where!r}: {exchange.body[:200]!r}")
    text = exchange.body.decode("utf-8", "replace")
    is_error = exchange.status >= 400 and not _unhealthy(exchange)
    if is_error and exchange.method != "HEAD":
        content_type = exchange.headers.get("content-type", "")
        try:
            body = json.loads(exchange.body)
        except ValueError:
            body = None
        if not content_type.startswith("application/json") or not (
            isinstance(body, dict) and isinstance(body.get("error"), str)
        ):
            found.append(
                f"non-JSON error {exchange.status} {content_type!r} for {where!r}: {text[:200]!r}"
            )
    sent = _request_forms(exchange.request)
    banned = forbidden.anywhere + (forbidden.in_errors if is_error else ())
    found += [f"{bad!r} leaked to {where!r}" for bad in banned if bad in text and bad not in sent]
    if is_error:
        found += [
            f"port {p.pattern} leaked to {where!r}: {text[:200]!r}"
            for p in forbidden.port_patterns
            if p.search(text) and not p.search(sent)
        ]
    return found


def new_log(node: ClusterNode, since: int) -> str:
    return node.log()[since:]


def term(nodes: list[ClusterNode]) -> int:
    return max(n.http.call("GET", "/debug/cluster")[2]["term"] for n in nodes)


# --- the test ----------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["leader", "follower"])
def test_fuzzed_api_answers_json_errors_without_internals(
    cluster: list[ClusterNode], role: str
) -> None:
    leader = wait_leader(cluster)
    target = leader if role == "leader" else next(n for n in cluster if n is not leader)
    rng = random.Random(SEED + len(role))
    raws = RawRequests(rng, KNOWN_IDS)
    clients = ClientRequests(rng, KNOWN_IDS)
    raw_plan = [raws.make() for _ in range(RAW_REQUESTS)]
    client_plan = [clients.make() for _ in range(CLIENT_REQUESTS)]
    since = {n.node_id: len(n.log()) for n in cluster}
    term_before = term(cluster)

    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        exchanges = list(pool.map(lambda r: send_raw(target.http_port, r), raw_plan))
        exchanges += pool.map(lambda c: send_client(target.http_port, *c), client_plan)
    took = time.monotonic() - started
    statuses = Counter(e.status for e in exchanges)
    print(f"{role} {target.node_id}: {len(exchanges)} requests in {took:.1f}s: {dict(statuses)}")

    elections = term(cluster) - term_before
    if elections:
        print(f"note: {elections} election(s) while fuzzing (an overloaded machine?)")
    forbidden = forbidden_for(cluster, target)
    found = [p for e in exchanges for p in problems_of(e, forbidden, elections)]
    assert not found, f"{len(found)} problems, the first: " + "\n".join(found[:15])
    assert statuses[200] > 0 and sum(n for s, n in statuses.items() if s and s >= 400) > 0

    for n in cluster:
        log = new_log(n, since[n.node_id])
        assert "Traceback" not in log, f"{n.node_id} logged a traceback:\n{log[-4000:]}"
        errors = [line for line in log.splitlines() if " ERROR " in line]
        assert not errors, errors[:5]
        assert n.http.call("GET", "/health")[0] == 200
        wait_until(lambda n=n: n.http.call("GET", "/ready")[0] == 200, 10, f"{n.node_id} ready")
    wait_leader(cluster)  # at once, unless an overloaded machine caused an election
    status, _, body = target.http.call("POST", "/jobs", job(f"after-{role}", time.time() + 7200))
    assert status == 200, body


def test_a_followers_refusal_names_no_internal_address(cluster: list[ClusterNode]) -> None:
    """A write a follower may not forward (it came forwarded already) waits for a leader,
    then is refused with 503: the refusal must not say where the leader or its peers are."""
    leader = wait_leader(cluster)
    follower = next(n for n in cluster if n is not leader)
    forwarded = {"X-Scheduled-DB-Forwarded-By": leader.node_id}
    body = job("refused", time.time() + 7200)
    exchange = send_client(follower.http_port, "POST", "/jobs", body, forwarded)
    assert exchange.status == 503, exchange
    refusal = json.loads(exchange.body)
    assert refusal["code"] in ("not_leader", "no_leader"), refusal
    exchange.status = 400  # a refusal by design: check it as any other error body
    assert problems_of(exchange, forbidden_for(cluster, follower)) == []
