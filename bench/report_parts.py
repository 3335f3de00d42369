"""What the benchmark page says about each part: a paragraph on the method, then tables.

One function per part, from its figures (``bench/results/<part>.json`` →
``figures``) to Markdown.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def fmt(v: Any) -> str:
    """A figure as the page shows it: thousands separated, about 3 significant digits."""
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.1f}" if abs(v) >= 10 else f"{v:.3g}"
    return str(v)


def table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _late(f: dict[str, Any], pct: str) -> Any:
    return f["latency_ms"].get(pct)


# --- raft ---------------------------------------------------------------------------------


def raft(figures: dict[str, Any]) -> str:
    text = (
        "Three Raft cores in one process exchange messages in memory through the full"
        " Ready contract (persist into `MemoryStorage`, send, apply, advance), with no"
        " disk or network. The leader proposes batches of 1, 16 and 256 entries of 100"
        " bytes; the figure is entries committed **and applied on all three nodes** per"
        " second. Target (issue 2): at least 100,000 entries/s with batching, so that"
        " consensus is never a node's bottleneck. No reference system runs in this"
        " process; the unbatched row shows what batching buys."
    )
    rows = [[r["batch"], r["entries"], r["seconds"], r["entries_per_s"]] for r in figures["runs"]]
    head = ["proposals per batch", "entries", "seconds", "entries/s"]
    return text + "\n\n" + table(head, rows)


# --- http ---------------------------------------------------------------------------------


def http(figures: dict[str, Any]) -> str:
    text = (
        "scheduled-db: 3 node processes on loopback, `POST /jobs` (a one-time job due"
        f" in 30 days with a client-chosen id, {figures['request_body_bytes']} bytes of"
        f" JSON) sent to the leader. etcd {figures.get('etcd_version') or '(not run)'}:"
        " 3 processes, `POST /v3/kv/put` of the"
        " same bytes under a fresh key (the v3 JSON gateway), sent to its leader. Both"
        " answer once a majority has the write on disk. Same machine, same invocation,"
        " one system after the other, the same load generator (the project's own HTTP"
        " client, its garbage collector off while it runs; its CPU use is shown, 100% ="
        " one core). Closed loop: each connection"
        f" sends its next request when the last is answered, {figures['measure_s']:g} s"
        f" per point after {figures['warmup_s']:g} s of warm-up. Then an open loop at"
        " half the highest rate each system reached, with latency counted from when each"
        " request was due (queueing included)."
    )
    out = [text, ""]
    if figures.get("etcd_missing"):
        out += [f"**{figures['etcd_missing']}.**", ""]
    head = ["connections", "scheduled-db creates/s", "p50 ms", "p99 ms", "etcd puts/s"]
    head += ["etcd p50 ms", "etcd p99 ms", "ratio (creates/puts)", "client CPU %"]
    theirs = {r["connections"]: r for r in (figures.get("etcd") or {}).get("closed_loop", [])}
    rows = []
    for r in figures["scheduled_db"]["closed_loop"]:
        e = theirs.get(r["connections"], {"latency_ms": {}})
        cpu = f"{r['client_cpu_percent']} / {e.get('client_cpu_percent', '—')}"
        rows.append(
            [r["connections"], r["ops_per_s"], _late(r, "p50"), _late(r, "p99")]
            + [e.get("ops_per_s"), _late(e, "p50"), _late(e, "p99")]
            + [r["ops_per_s"] / e["ops_per_s"] if e.get("ops_per_s") else None, cpu]
        )
    out += [table(head, rows), "", "At half the maximum rate (open loop):", ""]
    out += [
        _half_rate(figures),
        "",
        "Batch creation (`POST /jobs/batch`) is measured on one node in"
        " [Operating jobs](#operating-jobs-batch-creation-and-label-filters).",
    ]
    return "\n".join(out)


def _half_rate(figures: dict[str, Any]) -> str:
    rows = []
    for name, key in (("scheduled-db", "scheduled_db"), ("etcd", "etcd")):
        data = figures.get(key)
        if data:
            h = data["half_max_open_loop"]
            late = [_late(h, p) for p in ("p50", "p90", "p99")] + [_late(h, "max")]
            rows.append([name, h["offered_per_s"], h["ops_per_s"], *late, h["errors"]])
    head = ["system", "offered/s", "answered/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"]
    return table(head, rows)


# --- firing -------------------------------------------------------------------------------


def _firing_row(name: str, f: dict[str, Any]) -> list[Any]:
    late = f["lateness_ms"]
    cells = [name, f"{f['delivered']:,}/{f['expected']:,}", f["duplicates"]]
    cells += [late.get(p) for p in ("p50", "p90", "p99", "max")]
    return cells + [f["deliveries_per_s"], f["busiest_second"]]


def _firing_tables(size: dict[str, Any]) -> list[str]:
    """One size's (or burst's) table of both systems, and the ratios."""
    head = ["system", "delivered", "duplicates", "p50 ms", "p90 ms", "p99 ms", "max ms"]
    head += ["deliveries/s", "busiest 1 s"]
    ours = size["scheduled_db"]
    rows = [_firing_row("scheduled-db", ours)]
    for a in size["apscheduler"]:
        rows.append(_firing_row(f"APScheduler 3, {a['workers']} threads", a))
    ratios = "; ".join(
        f"{k.replace('_', ' ')}: p50 {fmt(v['lateness_p50'])}×, p99 {fmt(v['lateness_p99'])}×,"
        f" deliveries/s {fmt(v['deliveries_per_s'])}×"
        for k, v in size["ratios_scheduled_db_over_apscheduler"].items()
    )
    made = ours["creation"]["jobs_per_s"]
    missing = size.get("apscheduler_missing")
    return [
        f"\n**{size['jobs']:,} jobs** ({size['due']}; created at {made:,}/s via the API):\n",
        table(head, rows),
        f"\nAPScheduler not run: {missing}."
        if missing
        else f"\nscheduled-db / APScheduler ({ratios}).",
    ]


def firing(figures: dict[str, Any]) -> str:
    text = (
        "N one-time jobs fall due within the same second (job i at T + i·1000/N ms),"
        " each with a webhook to a receiver in a process of its own, which stamps each"
        " arrival. scheduled-db: one node process, the jobs created through its API"
        " (32 connections) well before T. APScheduler 3, in the same run and against"
        " the same receiver: `BackgroundScheduler`, `MemoryJobStore`, a thread pool,"
        " N `date` jobs POSTing the same body with `urllib`. **Lateness** = arrival −"
        " scheduled time; **deliveries/s** = N / (last arrival − first arrival), so a"
        " spread run cannot much exceed N/s offered; *busiest 1 s* is the most arrivals"
        " in any one-second window. Targets (issue 5), for 10,000 jobs: all delivered,"
        " p50 ≤ 10 ms, p99 ≤ 100 ms, ≥ 5,000 deliveries/s."
    )
    out = [text]
    for size in figures["sizes"]:
        out += _firing_tables(size)
    if figures.get("bursts"):
        out.append(
            "\nThen N jobs due at the same millisecond, created 6 s before it: issue 18's"
            " targets, for 2,000: first delivery ≤ 5 ms late (the *min* in the checks"
            " above), p50 ≤ 60 ms, p99 ≤ 150 ms; for 300: p50 ≤ 25 ms, p99 ≤ 50 ms; all"
            " delivered once."
        )
        for burst in figures["bursts"]:
            out += _firing_tables(burst)
    if figures.get("delivery_workers"):
        out += _worker_table(figures["delivery_workers"])
    if figures.get("delivery_workers_capacity"):
        out += _worker_table(figures["delivery_workers_capacity"])
        out.append(
            "\nAt 10,000 a second offered, a node that keeps up delivers about 10,000 a"
            " second whatever it could do, so the ratio above is capped near the"
            " in-process shortfall; with 50,000 offered both fall behind, and the ratio"
            " is of what each can send (goal 3's check)."
        )
    return "\n".join(out)


def _worker_table(w: dict[str, Any]) -> list[str]:
    """The spread burst sent from the node's process vs from a worker process."""
    head = ["node", "runs", "deliveries/s (median)", "each run", "p50 ms (median)", "each run"]
    head.append("p99 ms (median)")
    rows = []
    for name, key in (("1 process (delivery_workers 0)", "in_process"),
                      ("2 processes (delivery_workers 1)", "one_worker")):  # fmt: skip
        f = w[key]
        each_rate = ", ".join(f"{x:,.0f}" for x in f["deliveries_per_s_all"])
        each_p50 = ", ".join(fmt(x) for x in f["lateness_p50_ms_all"])
        rows.append([name, f["runs"], f["deliveries_per_s"], each_rate, f["lateness_p50_ms"],
                     each_p50, f["lateness_p99_ms"]])  # fmt: skip
    return [
        f"\n**{w['jobs']:,} jobs spread over one second, sent from the node's process or from"
        " a worker process** (issue 18, goal 3; runs alternated; the receiver shares the"
        " same two cores):\n",
        table(head, rows),
        f"\nDeliveries/s with a worker over without: {fmt(w['ratio_deliveries_per_s'])}×.",
    ]


# --- failover -----------------------------------------------------------------------------


def failover(figures: dict[str, Any]) -> str:
    text = (
        "A local 3-node cluster under a steady load: a writer creates jobs at"
        f" {figures['write_rate_offered']:g}/s over the live nodes (a follower forwards"
        f" to the leader), and jobs fall due every {figures['due_every_ms']:g} ms, each"
        " with a webhook. The leader gets SIGKILL while jobs are falling due. **Write"
        " gap**: kill → the first create *made by a new leader* is answered (its"
        " `created_at`, stamped by the proposing node, is after the kill). **Delivery"
        " gap**: kill → the first webhook *sent after the kill* arrives. The killed node"
        " is then restarted on its data and the next kill waits for a leader that all"
        " three agree on. Targets (issue 6): write gap median ≤ 1.5 s; a new leader"
        " serving writes and firing within 2 s. *Duplicates* are deliveries repeated"
        " after the failover with the same idempotency key (at-least-once: occurrences"
        " whose outcome the old leader had not committed); *elections* is the rise in"
        " the Raft term; *pause after recovery* is the longest stretch without a"
        " successful write once writes had resumed."
    )
    w, d = figures["write_gap_s"], figures["delivery_gap_s"]
    head = ["gap (s)", "median", "p90", "min", "max"]
    summary = table(
        head,
        [
            ["kill → first write", w["median"], w["p90"], w["min"], w["max"]],
            ["kill → first delivery", d["median"], d["p90"], d["min"], d["max"]],
        ],
    )
    head = ["kill", "leader killed", "leader after", "elections", "write gap s"]
    head += ["delivery gap s", "delivered/due", "duplicates", "pause after recovery s"]
    rows = [
        [i + 1, k["killed"], k["leader_after"], k["elections"], k["write_gap_s"]]
        + [k["delivery_gap_s"], f"{k['delivered']}/{k['due_jobs']}", k["duplicates"]]
        + [k["longest_write_pause_after_recovery_s"]]
        for i, k in enumerate(figures["kills"])
    ]
    errors = f"Failed writes over the whole run (refused or cut off): {figures['write_errors']:,}."
    return "\n\n".join([text, summary, table(head, rows), errors])


# --- storage ------------------------------------------------------------------------------

STORAGE_ROWS = (
    ("ingest, end to end (s)", "ingest_s", ""),
    ("ingest (jobs/s)", "ingest_jobs_per_s", ""),
    ("state (counters' estimate, MB)", "state_bytes_estimate_mb", ""),
    ("on disk after the crash (MB)", "disk_mb", ""),
    ("store reopen after a crash (s)", "reopen_s", "≤ 5 s"),
    ("store process RSS after reopen (MB)", "rss_after_reopen_mb", ""),
    ("the reads after reopen (ms)", "reads_ms", ""),
    ("node restart → /health (s)", "node_to_health_s", ""),
    ("node restart → /ready (s)", "node_to_ready_s", "≤ 5 s"),
    ("node RSS when ready (MB)", "node_rss_after_ready_mb", "≤ 300 MB"),
    ("node RSS after API reads (MB)", "node_rss_after_reads_mb", ""),
)


def storage(figures: dict[str, Any]) -> str:
    text = (
        "For each size, a fresh process writes N realistic jobs (a webhook, a payload of a"
        " few hundred bytes, 70% recurring) into a new data directory as a leader's log"
        " would reach it (1,000 creates per entry, 10 entries per synced Ready) and ends"
        " with `os._exit`, as if killed. A second process reopens the store (replaying"
        " RocksDB's write-ahead log) and reads the counters, 1,000 due jobs, 1,000 random"
        " jobs and a page. Then `scheduled-db run` starts on the directory; *ready* comes"
        " after a one-node group's election timeout. Targets (issue 3), for 1,000,000"
        " jobs: reopen ≤ 5 s (here applied to both the store and the whole node) and RSS"
        " after restart ≤ 300 MB (the node process). Jobs live in RocksDB, so memory"
        " should not grow with their number."
    )
    sizes = figures["sizes"]
    head = ["figure", *(f"{s['jobs']:,} jobs" for s in sizes), "target (1,000,000)"]
    rows = [[name, *(s.get(key) for s in sizes), target] for name, key, target in STORAGE_ROWS]
    return text + "\n\n" + table(head, rows)


# --- snapshot -----------------------------------------------------------------------------


def snapshot(figures: dict[str, Any]) -> str:
    text = (
        "Two members of a 3-node cluster start from directories holding N jobs whose log"
        " ends in a snapshot; the third lost its data. As the architecture prescribes,"
        " the leader removes it, it starts empty and joins as a learner (`POST /join`);"
        " the leader streams the snapshot in chunks of about 1 MiB, the node stages them"
        " and installs the state in one synced write; once caught up it is promoted to"
        " voter. Timed from the join. No issue sets a target for this."
    )
    rows = [
        ["jobs", figures["jobs"]],
        ["snapshot on the leader's disk (MB, lz4)", figures["snapshot_on_disk_mb"]],
        ["join → all jobs served by the new node (s)", figures["installed_s"]],
        ["join → promoted to voter (s)", figures["voter_s"]],
        ["install rate (MB on disk / s)", figures["install_mb_per_s"]],
        ["new node's peak RSS (MB)", figures["new_node_peak_rss_mb"]],
    ]
    return text + "\n\n" + table(["figure", "value"], rows)


# --- overload -----------------------------------------------------------------------------


HISTORY_OVERLOAD = "benchmarks-history.md#overload-before-and-after-admission-control"


def overload(figures: dict[str, Any]) -> str:
    text = (
        "One node process with its default configuration, `POST /jobs` of"
        f" {figures['request_body_bytes']} bytes. Closed loops first find the rate it"
        " sustains (the best of them). Past `api.max_in_flight` writes in flight (or"
        " fewer, when their mean latency passes `api.write_latency_target`) the node"
        " refuses on arrival: 503 `overloaded` with `Retry-After`. Then two overloads of"
        f" {figures['measure_s']:g} s each. **Clients that back off**:"
        f" {figures['backing_off']['clients']:,} clients on connections of their own,"
        " arriving within a second, each sending its next create when the last is"
        " answered and waiting `Retry-After` (times 1 to 2) when refused; latency from"
        " each send. **A flood**: an open loop at"
        f" {figures['factor']}× the sustainable rate, refused requests dropped, up to"
        f" {figures['flood_in_flight']:,} in flight from the generator; latency from when"
        " each request was due. Targets (issue 16, defect 8), with clients that back"
        " off: accepted creates p99 ≤ 1 s, refusals answered p50 ≤ 100 ms. The flood has"
        " no target: refusing costs the node a third to a half of what accepting does, so"
        " past a few thousand refusals a second the refusals themselves fill its event"
        " loop (docs/architecture.md, *Admission control*). The same run on the code"
        " before admission control, for comparison:"
        f" [benchmarks-history.md]({HISTORY_OVERLOAD})."
    )
    head = ["connections", "creates/s", "p50 ms", "p99 ms"]
    closed = [
        [r["connections"], r["ops_per_s"], _late(r, "p50"), _late(r, "p99")]
        for r in figures["closed_loop"]
    ]
    return "\n\n".join([text, table(head, closed), _overloads(figures)])


def _spread(d: dict[str, Any], points: Sequence[str] = ("p50", "p90", "p99", "max")) -> str:
    return " / ".join(fmt(d.get(p)) for p in points) if d else "—"


def _overloads(figures: dict[str, Any]) -> str:
    b, f = figures["backing_off"], figures["flood"]
    f_refused = f["error_kinds"].get("http_503", 0)
    f_others = {k: v for k, v in f["error_kinds"].items() if k != "http_503"}
    f_sent = (f["requests"] + f["errors"]) / f["sent_in_s"] if f.get("sent_in_s") else None
    head = ["", "clients that back off", f"a flood at {figures['factor']}×"]
    rows = [
        ["asked (creates/s)", "—", f"{f['offered_per_s']:,} (sent: {fmt(f_sent)})"],
        ["accepted", b["accepted"], f["requests"]],
        ["accepted/s", b["accepted_per_s"], f["accepted_per_s"]],
        ["accepted: p50 / p90 / p99 / max (ms)", _spread(b["accepted_latency_ms"])]
        + [_spread(f["latency_ms"])],
        ["refused (503 overloaded)", b["refused"], f_refused],
        ["refused: p50 / p90 / p99 / max (ms)", _spread(b["refusal_latency_ms"])]
        + [_spread(f.get("error_latency_ms", {}).get("http_503", {}))],
        ["other failures", _kinds(b["other"]), _kinds(f_others)],
        ["generator CPU (%, 100 = one core)", b["client_cpu_percent"], f["client_cpu_percent"]],
    ]
    return table(head, rows)


def _kinds(kinds: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v:,}" for k, v in kinds.items()) or "none"


# --- control ------------------------------------------------------------------------------


def control(figures: dict[str, Any]) -> str:
    b, lab = figures["batch"], figures["labels"]
    text = (
        "One node. Batch creation: `POST /jobs/batch` with 1,000 jobs a request (each"
        " body about 200 bytes) from 2 connections, against single `POST /jobs` creates"
        " from 32 connections in the same run; every batch is one Raft entry. Target"
        " (issue 20): at least 20,000 jobs/s through HTTP. Label filter: 100,000"
        " realistic jobs, each in one of 1,000 teams; `GET /jobs?label=team=team-042`"
        " selects 100 of them through the by-label index, timed by the client over 50"
        " sequential requests, against an unfiltered page of 100 jobs. Target: ≤ 50 ms."
    )
    cpu = b.get("batch_cpu_us_per_job", {}).get("node")
    single_cpu = b["single"].get("server_cpu_us_per_op", {}).get("node")
    rows = [
        ["single creates (32 connections)", b["single_jobs_per_s"], single_cpu,
         b["single"]["latency_ms"].get("p50")],
        ["batches of 1,000 (2 connections)", b["batch_jobs_per_s"], cpu,
         b["batches"]["latency_ms"].get("p50")],
    ]  # fmt: skip
    head = ["creation", "jobs/s", "node CPU per job (µs)", "p50 per request (ms)"]
    out = [text, "", table(head, rows), ""]
    out.append(f"Batch over single creates: {fmt(b['batch_over_single'])}x.")
    q, page = lab["label_query_ms"], lab["unfiltered_page_of_100_ms"]
    head = ["query", "p50 ms", "p90 ms", "p99 ms", "max ms"]
    rows = [
        [
            f"label selecting {lab['selected']} of {lab['jobs']:,}",
            q["p50"],
            q["p90"],
            q["p99"],
            q["max"],
        ],
        ["unfiltered page of 100", page["p50"], page["p90"], page["p99"], page["max"]],
    ]
    out += ["", table(head, rows)]
    return "\n".join(out)


def ingress(figures: dict[str, Any]) -> str:
    text = (
        "One node (no peers), `POST /jobs` from `wrk` (one thread: its own CPU is a"
        " small share of the node's, where a Python client would take a core) for"
        f" {figures['seconds']} s after 2 s of warm-up, with the API served by the"
        " node's own process (`http.workers: 0`), by one worker process (two"
        " processes in all) and by two; the settings alternate, "
        f"{figures['rounds']} rounds, medians shown. Target (issue 18, goal 3): two"
        " processes at least 1.6x one. CPU per create of each process from /proc,"
        " the node's first."
    )
    head = ["connections", "processes", "creates/s (median)", "each run", "over 1 process",
            "CPU µs/create by process"]  # fmt: skip
    rows = []
    for s in figures["settings"]:
        each = ", ".join(f"{x:,}" for x in s["creates_per_s_all"])
        cpu = "; ".join(" + ".join(str(x) for x in run) for run in s["cpu_us_per_create"])
        rows.append([s["connections"], s["workers"] + 1, s["creates_per_s"], each,
                     s["over_one_process"], cpu])  # fmt: skip
    return "\n".join([text, "", table(head, rows)])


SECTIONS: dict[str, Callable[[dict[str, Any]], str]] = {
    "raft": raft,
    "http": http,
    "firing": firing,
    "failover": failover,
    "storage": storage,
    "snapshot": snapshot,
    "overload": overload,
    "control": control,
    "ingress": ingress,
}
