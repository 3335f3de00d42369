// Overview: the cluster as this node sees it (GET /debug/cluster, /health, /ready) and the
// recent deliveries of every job (GET /executions: replicated, so any node can answer,
// while a node's /metrics counts only what that node itself delivered).

import { api } from "../api.js";
import { badge, h, relative, replace, table, when } from "../dom.js";

const WINDOW_MS = 5 * 60 * 1000;
const HISTORY_KEY = "scheduled-db.leader-changes";
const POLL_MS = 2000;
const SILENT_MS = 5000;  // a member silent this long is likely down (elections take ~1 s)

function quantile(sorted, q) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Lateness p50/p99 of first attempts, deliveries per second and the failure rate over the
 *  attempts of the last five minutes (at most one page of 1,000: a lower bound past that). */
export function deliveryStats(executions, now) {
  const done = executions.filter((e) => e.status !== "in_progress" && e.start_time_ms !== null);
  const late = done.filter((e) => e.attempt_num === 1 && !e.trigger)
    .map((e) => Math.max(0, e.start_time_ms - e.scheduled_at_ms)).sort((a, b) => a - b);
  const failed = done.filter((e) => e.status === "failed" || e.status === "timeout").length;
  const span = Math.min(WINDOW_MS, Math.max(1000, now - Math.min(now, ...done.map((e) => e.start_time_ms))));
  return {
    count: done.length,
    perSecond: done.length / (WINDOW_MS / 1000),
    failureRate: done.length ? failed / done.length : null,
    p50: quantile(late, 0.5),
    p99: quantile(late, 0.99),
    span,
  };
}

function leaderHistory(view) {
  const history = JSON.parse(sessionStorage.getItem(HISTORY_KEY) || "[]");
  const last = history.at(-1);
  const leader = view.leader_id || null;
  if (!last || last.leader !== leader || last.term !== view.term) {
    if (!last || last.leader !== leader) {
      history.push({ at: Date.now(), leader, term: view.term, from: last ? last.leader : undefined });
    } else {
      last.term = view.term;
    }
    sessionStorage.setItem(HISTORY_KEY, JSON.stringify(history.slice(-20)));
  }
  return history;
}

const ms = (x) => (x === null || x === undefined ? "—" : x < 1000 ? `${Math.round(x)} ms` : `${(x / 1000).toFixed(1)} s`);
const pct = (x) => (x === null || x === undefined ? "—" : `${(x * 100).toFixed(1)} %`);

function tile(title, value, id, note) {
  return h("div", { class: "tile" }, h("div", { class: "tile-title" }, title),
    h("div", { class: "tile-value", id }, value), note ? h("div", { class: "muted small" }, note) : null);
}

function membersTable(view) {
  const rows = view.members.map((m) => {
    const role = m.node_id === view.leader_id ? "leader" : m.suffrage === "voter" ? "follower" : m.suffrage;
    // Only the leader tracks how far each member has replicated (null on a follower).
    const lag = m.match_index === null || m.match_index === undefined ? 0 : view.commit_index - m.match_index;
    return h("tr", { dataset: { node: m.node_id } },
      h("td", {}, m.node_id, m.node_id === view.node_id ? h("span", { class: "muted" }, " (this node)") : null),
      h("td", { class: "member-role" }, badge(role)),
      h("td", {}, m.http_address || "—"),
      h("td", {}, m.raft_address),
      h("td", {}, m.match_index ?? "—", lag > 0 ? h("span", { class: "muted" }, ` (${lag} behind)`) : null),
      h("td", {}, m.last_contact === null || m.last_contact === undefined ? (m.node_id === view.node_id ? "—" : "never")
        : [ms(m.last_contact), m.last_contact > SILENT_MS ? [" ", badge("not heard from", "failed")] : null]));
  });
  return table(["member", "role", "HTTP", "Raft", "match index", "last contact"], rows, { id: "members" });
}

export async function render(root, ctx) {
  const body = h("div", { id: "overview" });
  replace(root, h("h1", {}, "Overview"), body);
  await ctx.every(POLL_MS, async () => {
    const now = Date.now();
    const since = Math.floor((now - WINDOW_MS) / 1000);
    const [view, health, ready, recent] = await Promise.all([
      api.cluster(), api.health(), api.ready(), api.executions({ since, limit: 1000 }),
    ]);
    if (!ctx.current()) return;
    const stats = deliveryStats(recent.executions, now);
    const history = leaderHistory(view);
    const jobs = health.jobs || {};
    const memory = health.memory || {};
    replace(body,
      h("section", { class: "tiles" },
        tile("Leader", view.leader_id || "none (election)", "leader", `term ${view.term}`),
        tile("This node", view.node_id, "this-node", `${view.role}, ${ready.ready ? "ready" : "not ready"}`),
        tile("Health", health.status, "health", health.reason || ""),
        tile("Jobs", `${jobs.count ?? "—"} / ${jobs.limit ?? "—"}`, "capacity-jobs",
          jobs.limit ? `${((100 * jobs.count) / jobs.limit).toFixed(1)} % of the job limit` : ""),
        tile("Memory", `${(memory.utilization_percent ?? 0).toFixed(1)} %`, "capacity-memory", "of queue.memory_limit"),
        tile("Lateness p50 / p99", `${ms(stats.p50)} / ${ms(stats.p99)}`, "lateness", "first attempts, last 5 min"),
        tile("Deliveries", stats.perSecond >= 1 ? `${stats.perSecond.toFixed(1)}/s` : `${(stats.perSecond * 60).toFixed(1)}/min`, "deliveries", `${stats.count} attempts in 5 min${recent.next_cursor ? " (at least)" : ""}`),
        tile("Failure rate", pct(stats.failureRate), "failure-rate", "failed or timed out, last 5 min")),
      h("h2", {}, "Members"),
      h("p", { class: "muted small" }, `commit index ${view.commit_index}, applied ${view.applied_index} on ${view.node_id}`),
      membersTable(view),
      h("h2", {}, "Leader changes seen by this console"),
      h("ul", { id: "leader-changes" }, history.slice().reverse().map((x) =>
        h("li", {}, `${when(x.at)} UTC (${relative(x.at)}): `, x.leader ? h("strong", {}, x.leader) : "no leader",
          ` term ${x.term}`, x.from !== undefined ? ` (was ${x.from || "none"})` : " (first seen)"))));
  });
}
