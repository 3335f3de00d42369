// Jobs: GET /jobs with the server's filters and cursor paging (never a client-side scan:
// the list stays a page whatever the number of jobs), and bulk pause/resume/cancel.

import { api } from "../api.js";
import { describeCron } from "../cron.js";
import { badge, h, labelChips, relative, replace, table, when } from "../dom.js";

const POLL_MS = 3000;
const PAGE = 50;
const FILTERS = ["status", "type", "paused", "label", "id"];
const STATUSES = ["", "pending", "in_progress", "completed", "failed", "cancelled", "timeout"];

export function schedule(job) {
  if (job.type === "recurrente") return describeCron(job.cron_expression, job.timezone);
  return job.timestamp_ms === null ? "—" : `once at ${when(job.timestamp_ms, job.timezone)} ${job.timezone}`;
}

export function lastResult(job) {
  const last = (job.attempts || []).at(-1);
  if (last) {
    const what = last.status === "completed" ? `HTTP ${last.http_status}` : last.error_type || last.status;
    return h("span", { title: last.error_message || "" }, badge(last.status), " ", what);
  }
  if (["completed", "failed", "timeout"].includes(job.status)) return badge(job.status);
  return h("span", { class: "muted" }, "not run yet");
}

export function statusBadges(job) {
  return [badge(job.status), job.paused ? [" ", badge("paused")] : null];
}

function readFilters(hashQuery) {
  const params = new URLSearchParams(hashQuery || "");
  const filters = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) || ""]));
  filters.cursor = params.get("cursor") || "";
  return filters;
}

function filterForm(filters, ctx) {
  const select = (name, options) => h("select", { name, id: `filter-${name}` },
    options.map(([value, text]) => h("option", { value, selected: filters[name] === value }, text)));
  const form = h("form", { id: "job-filters", class: "filters" },
    h("label", {}, "Status ", select("status", STATUSES.map((s) => [s, s || "any"]))),
    h("label", {}, "Type ", select("type", [["", "any"], ["unico", "one-time"], ["recurrente", "recurring"]])),
    h("label", {}, "Paused ", select("paused", [["", "any"], ["true", "paused"], ["false", "running"]])),
    h("label", {}, "Labels ", h("input", { name: "label", id: "filter-label", value: filters.label, placeholder: "team=billing env=prod" })),
    h("label", {}, "Id ", h("input", { name: "id", id: "filter-id", value: filters.id, placeholder: "id begins with" })),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const params = new URLSearchParams();
    for (const key of FILTERS) if (data.get(key)) params.set(key, data.get(key).trim());
    ctx.go(`#/jobs${params.toString() ? `?${params}` : ""}`);
  });
  return form;
}

async function fetchPage(filters) {
  // "team=billing env=prod": a new label starts where a key and "=" follow a space (a
  // value may hold spaces and commas itself).
  const labels = filters.label.trim().split(/\s+(?=[A-Za-z0-9][A-Za-z0-9._\/-]*=)/).filter(Boolean);
  return api.listJobs({
    status: filters.status, type: filters.type, paused: filters.paused, label: labels,
    id_prefix: filters.id, limit: PAGE, cursor: filters.cursor,
  });
}

function jobRow(job, selected) {
  const box = h("input", { type: "checkbox", class: "select", checked: selected.has(job.id), dataset: { id: job.id } });
  box.addEventListener("change", () => (box.checked ? selected.add(job.id) : selected.delete(job.id)));
  const next = job.next_run_at_ms;
  return h("tr", { dataset: { job: job.id } },
    h("td", {}, box),
    h("td", { class: "id" }, h("a", { href: `#/job/${encodeURIComponent(job.id)}` }, job.id)),
    h("td", {}, job.type === "unico" ? "one-time" : "recurring"),
    h("td", { class: "schedule" }, schedule(job)),
    h("td", { class: "next" }, next === null || job.paused ? h("span", { class: "muted" }, job.paused ? "paused" : "—") : [
      h("div", {}, `${when(next, job.timezone)} ${job.timezone}`),
      h("div", { class: "muted small" }, `${when(next)} UTC, ${relative(next)}`)]),
    h("td", { class: "state" }, statusBadges(job)),
    h("td", { class: "result" }, lastResult(job)),
    h("td", {}, labelChips(job.labels)));
}

async function bulk(action, selected, ctx, refresh) {
  const ids = [...selected];
  if (!ids.length) return ctx.notify("Select jobs first");
  if (action === "cancel" && !confirm(`Cancel ${ids.length} job(s)? They will fire no more.`)) return;
  const call = { pause: api.pause, resume: api.resume, cancel: (id) => api.cancel(id, "cancelled from the console") }[action];
  const results = await Promise.allSettled(ids.map((id) => call(id)));
  const failed = results.map((r, i) => [r, ids[i]]).filter(([r]) => r.status === "rejected");
  ctx.notify(failed.length ? `${action}: ${failed.length} of ${ids.length} refused (${failed[0][1]}: ${failed[0][0].reason.message})` : `${action}: ${ids.length} job(s) done`, failed.length ? "error" : "info");
  selected.clear();
  await refresh();
}

export async function render(root, ctx) {
  const filters = readFilters(ctx.args[0]);
  const selected = new Set();
  const body = h("div", { id: "job-list" });
  const summary = h("p", { class: "muted", id: "job-summary" });
  const pager = h("div", { class: "pager" });
  let refresh;
  const actions = ctx.can("write") ? h("div", { class: "bulk" },
    ["pause", "resume", "cancel"].map((action) => h("button", {
      type: "button", class: action === "cancel" ? "danger" : "secondary", id: `bulk-${action}`,
      onclick: () => bulk(action, selected, ctx, refresh).catch((e) => ctx.notify(e.message, "error")),
    }, `${action[0].toUpperCase()}${action.slice(1)} selected`))) : null;
  replace(root, h("h1", {}, "Jobs"), filterForm(filters, ctx), actions, summary, body, pager);
  refresh = async () => {
    const page = await fetchPage(filters);
    if (!ctx.current()) return;
    const all = h("input", { type: "checkbox", id: "select-all", title: "select this page" });
    all.addEventListener("change", () => {
      for (const box of body.querySelectorAll("input.select")) {
        box.checked = all.checked;
        all.checked ? selected.add(box.dataset.id) : selected.delete(box.dataset.id);
      }
    });
    replace(body, table([all, "id", "type", "schedule", "next run", "status", "last result", "labels"],
      page.jobs.map((job) => jobRow(job, selected)), { id: "jobs-table" }));
    replace(summary, page.total === null ? `${page.jobs.length} on this page` : `${page.total} job(s) in all`);
    const params = new URLSearchParams(ctx.args[0] || "");
    const links = [];
    if (filters.cursor) {
      params.delete("cursor");
      links.push(h("a", { href: `#/jobs?${params}` }, "« first page"));
    }
    if (page.next_cursor) {
      params.set("cursor", page.next_cursor);
      links.push(h("a", { href: `#/jobs?${params}`, id: "next-page" }, "next page »"));
    }
    replace(pager, links);
  };
  await ctx.every(POLL_MS, refresh);
}
