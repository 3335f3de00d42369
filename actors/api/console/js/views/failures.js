// Failures: failed and timed-out attempts of every job (GET /executions?status=, newest
// first; two filtered pages merged), each with a re-run (POST /jobs/{id}/trigger).

import { api } from "../api.js";
import { badge, h, relative, replace, table, when } from "../dom.js";

const POLL_MS = 3000;
const SPANS = { "1 hour": 3600, "24 hours": 86400, "7 days": 7 * 86400 };

export async function render(root, ctx) {
  const span = h("select", { id: "failures-since" }, Object.keys(SPANS).map((k) => h("option", { value: SPANS[k], selected: k === "24 hours" }, k)));
  const body = h("div", { id: "failures" });
  replace(root, h("h1", {}, "Failures"),
    h("p", {}, "Failed and timed-out attempts of every job, newest first, over the last ", span, "."), body);
  const refresh = async () => {
    const since = Math.floor(Date.now() / 1000) - Number(span.value);
    const [failed, timedOut] = await Promise.all([
      api.executions({ status: "failed", since, limit: 200 }),
      api.executions({ status: "timeout", since, limit: 200 }),
    ]);
    if (!ctx.current()) return;
    const rows = [...failed.executions, ...timedOut.executions]
      .sort((a, b) => (b.start_time_ms ?? b.scheduled_at_ms) - (a.start_time_ms ?? a.scheduled_at_ms))
      .map((e) => h("tr", { class: "failure", dataset: { job: e.job_id } },
        h("td", {}, h("a", { href: `#/job/${encodeURIComponent(e.job_id)}` }, e.job_id)),
        h("td", {}, when(e.scheduled_at_ms), h("div", { class: "muted small" }, relative(e.scheduled_at_ms))),
        h("td", {}, e.attempt_num, e.trigger ? [" ", badge("trigger")] : null),
        h("td", {}, badge(e.status)),
        h("td", {}, e.http_status ?? "—"),
        h("td", {}, e.error_type || ""),
        h("td", { class: "message" }, e.error_message || ""),
        h("td", {}, e.node_id || "—"),
        h("td", {}, ctx.can("write") ? h("button", { type: "button", class: "secondary rerun", onclick: async () => {
          try {
            const answer = await api.trigger(e.job_id);
            ctx.notify(`Triggered ${answer.job_id}`);
          } catch (error) {
            ctx.notify(`Trigger ${e.job_id}: ${error.message}`, "error");
          }
        } }, "Re-run") : null)));
    const more = failed.next_cursor || timedOut.next_cursor;
    replace(body, table(["job", "scheduled (UTC)", "attempt", "result", "HTTP", "error", "message", "node", ""], rows, { id: "failures-table" }),
      more ? h("p", { class: "muted" }, "Showing the newest 200 of each kind; narrow the span to see fewer.") : null);
  };
  span.addEventListener("change", () => refresh().catch((e) => ctx.notify(e.message, "error")));
  await ctx.every(POLL_MS, refresh);
}
