// A job: its spec, its next runs (GET /jobs/{id}/upcoming, with the days the zone's offset
// changes), its attempts (GET /executions?job_id=) and the actions its state allows.

import { api } from "../api.js";
import { badge, h, labelChips, relative, replace, table, when } from "../dom.js";
import { lastResult, schedule, statusBadges } from "./jobs.js";

const POLL_MS = 2000;
const SPEC_FIELDS = ["id", "type", "timestamp", "cron_expression", "timezone", "last_date", "webhook_url",
  "payload", "misfire_policy", "max_attempts", "timeout", "signing_secret_ref", "labels"];
const FINISHED = ["completed", "failed", "cancelled", "timeout"];

/** The job as a create body: what "copy as curl" sends to make it again. */
export function createBody(job) {
  const body = {};
  for (const key of SPEC_FIELDS) {
    const value = job[key];
    if (value === null || value === undefined) continue;
    if (key === "labels" && !Object.keys(value).length) continue;
    if (key === "timeout") body.timeout = `${job.timeout_ms}ms`;
    else if (key === "timestamp" || key === "last_date") body[key] = new Date(job[`${key}_ms`]).toISOString();
    else body[key] = value;
  }
  return body;
}

const shellQuote = (text) => `'${text.replaceAll("'", "'\\''")}'`;

export function curlFor(job) {
  return [
    `curl -X POST ${shellQuote(`${location.origin}/jobs`)}`,
    `  -H 'Content-Type: application/json'`,
    `  -H "Authorization: Bearer $SCHEDULED_DB_TOKEN"`,
    `  -d ${shellQuote(JSON.stringify(createBody(job)))}`,
  ].join(" \\\n");
}

/** The runs with a note where the zone's UTC offset differs from the run before. */
export function dstNotes(runs) {
  const offset = (iso) => iso.slice(19);
  return runs.map((run, i) => ({
    ...run,
    note: i > 0 && offset(run.iso) !== offset(runs[i - 1].iso)
      ? `clocks change: UTC${offset(runs[i - 1].iso)} → UTC${offset(run.iso)}` : "",
  }));
}

function specList(job) {
  const row = (name, value) => [h("dt", {}, name), h("dd", {}, value)];
  return h("dl", { class: "spec" },
    row("schedule", schedule(job)),
    job.cron_expression ? row("cron", h("code", {}, job.cron_expression)) : null,
    row("time zone", job.timezone),
    job.type === "unico" ? row("at", `${when(job.timestamp_ms, job.timezone)} ${job.timezone} (${when(job.timestamp_ms)} UTC)`) : null,
    job.last_date_ms !== null ? row("last date", `${when(job.last_date_ms)} UTC`) : null,
    row("webhook", job.webhook_url || h("span", { class: "muted" }, "none")),
    row("payload", job.payload === null ? h("span", { class: "muted" }, "none") : h("pre", {}, JSON.stringify(job.payload, null, 2))),
    row("attempts per run", job.max_attempts ?? "default"),
    row("timeout", job.timeout_ms === null ? "default" : `${job.timeout_ms / 1000} s`),
    row("misfire policy", job.misfire_policy),
    row("signing secret", job.signing_secret_ref || "—"),
    row("labels", labelChips(job.labels)),
    row("version", job.version),
    row("created", `${when(job.created_at_ms)} UTC`));
}

function attemptsTable(executions) {
  const rows = executions.map((e) => h("tr", { class: `attempt ${e.status}`, dataset: { status: e.status } },
    h("td", {}, `${when(e.scheduled_at_ms)}`),
    h("td", {}, e.attempt_num, e.trigger ? [" ", badge("trigger", "trigger")] : null),
    h("td", {}, badge(e.status)),
    h("td", {}, e.start_time_ms === null ? "—" : `${Math.max(0, e.start_time_ms - e.scheduled_at_ms)} ms`),
    h("td", {}, e.http_status ?? "—"),
    h("td", {}, e.response_time_ms === null || e.response_time_ms === undefined ? "—" : `${e.response_time_ms} ms`),
    h("td", {}, e.error_type || ""),
    h("td", { class: "message" }, e.error_message || ""),
    h("td", {}, e.node_id || "—")));
  return table(["scheduled (UTC)", "attempt", "result", "lateness", "HTTP", "time", "error", "message", "node"], rows, { id: "attempts" });
}

function actionButtons(job, ctx, refresh) {
  if (!ctx.can("write")) return h("p", { class: "muted" }, "A write token is needed to change this job.");
  const run = (label, call, then) => async () => {
    try {
      const answer = await call();
      ctx.notify(`${label}: done`);
      if (then) then(answer); else await refresh();
    } catch (error) {
      ctx.notify(`${label}: ${error.message}`, "error");
    }
  };
  const finished = FINISHED.includes(job.status);
  const button = (id, text, onclick, cls = "secondary", hidden = false) =>
    hidden ? null : h("button", { type: "button", id, class: cls, onclick }, text);
  return h("div", { class: "actions" },
    button("action-pause", "Pause", run("Pause", () => api.pause(job.id)), "secondary", job.paused || finished),
    button("action-resume", "Resume", run("Resume", () => api.resume(job.id)), "secondary", !job.paused || finished),
    button("action-trigger", "Trigger now", run("Trigger", () => api.trigger(job.id)), "secondary", job.status === "cancelled"),
    button("action-edit", "Edit", () => ctx.go(`#/edit/${encodeURIComponent(job.id)}`), "secondary", finished),
    button("action-cancel", "Cancel", run("Cancel", () => {
      const reason = prompt("Cancel this job? It fires no more. Reason (optional):");
      return reason === null ? Promise.reject(new Error("not cancelled")) : api.cancel(job.id, reason);
    }), "danger", finished),
    button("action-delete", "Delete", run("Delete", () => (confirm(`Delete ${job.id} and its history?`)
      ? api.remove(job.id) : Promise.reject(new Error("not deleted"))), () => ctx.go("#/jobs")), "danger"));
}

function curlBox(job, ctx) {
  const text = h("textarea", { id: "curl", readonly: true, rows: 5 }, curlFor(job));
  const copy = h("button", { type: "button", id: "copy-curl", class: "secondary", onclick: async () => {
    text.select();
    try {
      await navigator.clipboard.writeText(text.value);
      ctx.notify("Copied");
    } catch {
      ctx.notify("Selected: press Ctrl+C to copy");  // the clipboard API needs a secure origin
    }
  } }, "Copy as curl");
  return h("details", { class: "curl" }, h("summary", {}, "Copy as curl (creates this job again)"), text, copy);
}

export async function render(root, ctx) {
  const id = ctx.args[0];
  const head = h("div");
  const runs = h("div");
  const attempts = h("div");
  let curl = null;
  const shown = {};
  const changed = (part, value) => {
    const key = JSON.stringify(value);
    if (shown[part] === key) return false;  // unchanged: keep the DOM (and what is under the pointer)
    shown[part] = key;
    return true;
  };
  replace(root, h("p", {}, h("a", { href: "#/jobs" }, "« jobs")), head, h("h2", {}, "Next runs"), runs,
    h("h2", {}, "Attempts"), attempts);
  const refresh = async () => {
    const [job, upcoming, history] = await Promise.all([
      api.job(id), api.upcoming(id, 10), api.executions({ job_id: id, limit: 100 })]);
    if (!ctx.current()) return;
    if (changed("job", job)) replace(head,
      h("h1", { id: "job-title" }, job.id, " ", h("span", { id: "job-state" }, statusBadges(job))),
      h("p", {}, "Last result: ", lastResult(job)),
      actionButtons(job, ctx, refresh),
      specList(job));
    curl = curl || curlBox(job, ctx);
    if (!curl.isConnected) head.append(curl);
    if (!changed("runs", upcoming)) return renderAttempts(history);
    const noted = dstNotes(upcoming.runs);
    replace(runs, noted.length ? h("ol", { id: "upcoming" }, noted.map((r) => h("li", {},
      h("span", {}, r.iso), h("span", { class: "muted" }, ` ${when(r.at_ms)} UTC, ${relative(r.at_ms)}`),
      r.note ? h("span", { class: "note" }, ` ${r.note}`) : null)))
      : h("p", { class: "muted", id: "upcoming" }, upcoming.paused ? "None while the job is paused." : "None: the job has no run ahead."));
    renderAttempts(history);
  };
  const renderAttempts = (history) => {
    if (changed("attempts", history.executions)) replace(attempts, attemptsTable(history.executions));
  };
  await ctx.every(POLL_MS, refresh);
}
