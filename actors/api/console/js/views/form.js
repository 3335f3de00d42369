// Create and edit: POST /jobs, or PATCH /jobs/{id} with a merge patch of what changed and
// If-Match of the version the form was filled from.  The cron expression is checked as
// you type and its next runs previewed in the chosen zone (computed here; the server
// judges on save, and names the field it refuses).

import { api } from "../api.js";
import { CronError, describeCron, isoIn, isValidZone, nextRuns, zonedInstant } from "../cron.js";
import { h, replace, when } from "../dom.js";
import { createBody } from "./job.js";

const ZONES = ["UTC", ...(Intl.supportedValuesOf ? Intl.supportedValuesOf("timeZone") : [])];
const LOCAL_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";

function field(label, input, help) {
  return h("label", { class: "field", dataset: { field: input.name } }, h("span", {}, label), input,
    help ? h("small", { class: "muted" }, help) : null, h("small", { class: "field-error" }));
}

const input = (name, attrs = {}) => h("input", { name, id: `job-${name.replace("_", "-")}`, ...attrs });

function wallInputValue(ms, zone) {
  return isoIn(ms, zone).slice(0, 16);  // "YYYY-MM-DDTHH:MM", what datetime-local shows
}

function buildForm(job) {
  const zone = job ? job.timezone : LOCAL_ZONE;
  const type = h("select", { name: "type", id: "job-type", disabled: Boolean(job) },
    h("option", { value: "recurrente", selected: !job || job.type === "recurrente" }, "recurring (cron)"),
    h("option", { value: "unico", selected: job && job.type === "unico" }, "one-time"));
  const misfire = h("select", { name: "misfire_policy", id: "job-misfire-policy" },
    ["fire_once", "skip"].map((p) => h("option", { value: p, selected: job && job.misfire_policy === p }, p)));
  const labels = h("textarea", { name: "labels", id: "job-labels", rows: 2, placeholder: "team=billing\nenv=prod" },
    job ? Object.entries(job.labels).map(([k, v]) => `${k}=${v}`).join("\n") : "");
  const payload = h("textarea", { name: "payload", id: "job-payload", rows: 4, placeholder: '{"invoice": 42}' },
    job && job.payload !== null ? JSON.stringify(job.payload, null, 2) : "");
  return h("form", { id: "job-form", class: "job-form", novalidate: true },
    field("Id", input("id", { value: job ? job.id : "", disabled: Boolean(job), placeholder: "made by the server if empty" })),
    field("Type", type),
    h("fieldset", { class: "when-recurrente" },
      field("Cron expression", input("cron_expression", { value: job?.cron_expression || "", placeholder: "0 9 * * 1-5", autocomplete: "off" }),
        "five fields (six with seconds first) or @hourly, @daily…"),
      h("div", { id: "cron-words", class: "cron-words" }),
      h("ol", { id: "cron-preview", class: "preview" })),
    h("fieldset", { class: "when-unico" },
      field("At (wall time in the zone below)", input("timestamp", { type: "datetime-local", step: 1,
        value: job && job.timestamp_ms !== null ? wallInputValue(job.timestamp_ms, zone) : "" }))),
    field("Time zone", input("timezone", { value: zone, list: "zones", autocomplete: "off" }), "an IANA name"),
    h("datalist", { id: "zones" }, ZONES.map((z) => h("option", { value: z }))),
    field("Last date (UTC, optional)", input("last_date", { type: "datetime-local",
      value: job && job.last_date_ms !== null ? wallInputValue(job.last_date_ms, "UTC") : "" })),
    h("h3", {}, "Webhook"),
    field("URL", input("webhook_url", { type: "url", value: job?.webhook_url || "", placeholder: "https://example.com/hook" })),
    field("Payload (JSON object)", payload),
    field("Attempts per run", input("max_attempts", { type: "number", min: 1, max: 100, value: job?.max_attempts ?? "", placeholder: "default" })),
    field("Timeout", input("timeout", { value: job && job.timeout_ms !== null ? `${job.timeout_ms}ms` : "", placeholder: "30s" })),
    field("Misfire policy", misfire),
    field("Signing secret", input("signing_secret_ref", { value: job?.signing_secret_ref || "", placeholder: "a name from webhooks.signing_secrets" })),
    field("Labels (key=value, one a line)", labels),
    h("p", { id: "form-error", class: "error", hidden: true }),
    h("div", { class: "actions" }, h("button", { type: "submit", id: "job-save" }, job ? "Save changes" : "Create job"),
      h("a", { href: job ? `#/job/${encodeURIComponent(job.id)}` : "#/jobs", class: "button secondary" }, "Back")));
}

class FieldProblem extends Error {
  constructor(field, message) { super(`${field}: ${message}`); this.field = field; }
}

function readBody(form) {
  const data = new FormData(form);
  const value = (name) => (data.get(name) ?? "").trim();
  const zone = value("timezone") || "UTC";
  if (!isValidZone(zone)) throw new FieldProblem("timezone", "not a time zone this browser knows");
  const body = { type: form.elements.type.value, timezone: zone };
  if (value("id")) body.id = value("id");
  if (body.type === "recurrente") body.cron_expression = value("cron_expression");
  else if (value("timestamp")) body.timestamp = wallToIso(value("timestamp"), zone);
  if (value("last_date")) body.last_date = wallToIso(value("last_date"), "UTC");
  if (value("webhook_url")) body.webhook_url = value("webhook_url");
  if (value("payload")) {
    try {
      body.payload = JSON.parse(value("payload"));
    } catch (error) {
      throw new FieldProblem("payload", `not JSON (${error.message})`);
    }
  }
  if (value("max_attempts")) body.max_attempts = Number(value("max_attempts"));
  if (value("timeout")) body.timeout = value("timeout");
  body.misfire_policy = form.elements.misfire_policy.value;
  if (value("signing_secret_ref")) body.signing_secret_ref = value("signing_secret_ref");
  const labels = {};
  for (const line of value("labels").split("\n").map((x) => x.trim()).filter(Boolean)) {
    const at = line.indexOf("=");
    if (at < 1) throw new FieldProblem("labels", `"${line}" is not key=value`);
    labels[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  if (Object.keys(labels).length) body.labels = labels;
  return body;
}

function wallToIso(text, zone) {
  const [date, time] = text.split("T");
  const [y, mo, d] = date.split("-").map(Number);
  const [hh, mi, ss = 0] = time.split(":").map(Number);
  return new Date(zonedInstant([y, mo, d, hh, mi, ss], zone).ms).toISOString();
}

/** The merge patch (RFC 7396) that turns `before` into `after` (create bodies). */
export function mergePatch(before, after) {
  const patch = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (key === "id" || key === "type") continue;
    if (!(key in after)) patch[key] = null;
    else if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) {
      const isObject = (x) => x && typeof x === "object" && !Array.isArray(x);
      patch[key] = isObject(before[key]) && isObject(after[key]) ? mergePatch(before[key], after[key]) : after[key];
    }
  }
  return patch;
}

function showProblem(form, field, message) {
  for (const box of form.querySelectorAll(".field")) box.classList.remove("invalid");
  for (const small of form.querySelectorAll(".field-error")) small.textContent = "";
  const error = form.querySelector("#form-error");
  error.hidden = !message;
  error.textContent = message || "";
  const box = field && form.querySelector(`.field[data-field="${CSS.escape(field)}"]`);
  if (box) {
    box.classList.add("invalid");
    box.querySelector(".field-error").textContent = message;
  }
}

function livePreview(form, startMs) {
  const words = form.querySelector("#cron-words");
  const preview = form.querySelector("#cron-preview");
  const box = form.querySelector('.field[data-field="cron_expression"]');
  const update = () => {
    const expression = form.elements.cron_expression.value;
    const zone = form.elements.timezone.value.trim() || "UTC";
    replace(preview);
    box.classList.remove("invalid");
    box.querySelector(".field-error").textContent = "";
    if (!expression.trim()) return replace(words);
    if (!isValidZone(zone)) return replace(words, h("span", { class: "error" }, `unknown time zone ${zone}`));
    try {
      const runs = nextRuns(expression, zone, 5, Math.max(Date.now(), startMs));
      if (!runs.length) throw new CronError("it never fires");
      replace(words, h("strong", {}, describeCron(expression, zone)), h("span", { class: "muted" }, " — next runs (preview):"));
      let previous = null;
      replace(preview, runs.map((run) => {
        const iso = isoIn(run.ms, zone);
        const change = previous && previous.slice(19) !== iso.slice(19) ? ` clocks change: UTC${previous.slice(19)} → UTC${iso.slice(19)}` : "";
        previous = iso;
        return h("li", {}, iso, h("span", { class: "muted" }, ` ${when(run.ms)} UTC`),
          run.gap ? h("span", { class: "note" }, " (in the spring-forward gap: fires as clocks resume)") : null,
          change ? h("span", { class: "note" }, change) : null);
      }));
    } catch (error) {
      replace(words);
      box.classList.add("invalid");
      box.querySelector(".field-error").textContent = error.message;
    }
  };
  form.elements.cron_expression.addEventListener("input", update);
  form.elements.timezone.addEventListener("input", update);
  update();
}

function showType(form) {
  const type = form.elements.type.value;
  for (const set of form.querySelectorAll(".when-recurrente")) set.hidden = type !== "recurrente";
  for (const set of form.querySelectorAll(".when-unico")) set.hidden = type !== "unico";
}

function wire(form, ctx, job) {
  form.elements.type.addEventListener("change", () => showType(form));
  showType(form);
  livePreview(form, job && job.timestamp_ms ? job.timestamp_ms : 0);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const save = form.querySelector("#job-save");
    save.disabled = true;
    try {
      const body = readBody(form);
      const saved = job ? await api.update(job.id, mergePatch(createBody(job), { ...body, id: job.id, type: job.type }), job.version)
        : await api.create(body);
      ctx.notify(job ? `Saved ${saved.id} (version ${saved.version})` : `Created ${saved.id}`);
      ctx.go(`#/job/${encodeURIComponent(saved.id)}`);
    } catch (error) {
      const message = error.code === "version_mismatch" ? `${error.message}: someone changed the job; reload to edit its new version` : error.message;
      showProblem(form, error.field, message);
    } finally {
      save.disabled = false;
    }
  });
}

export async function renderNew(root, ctx) {
  const form = buildForm(null);
  replace(root, h("h1", {}, "New job"), form);
  wire(form, ctx, null);
}

export async function renderEdit(root, ctx) {
  const job = await api.job(ctx.args[0]);
  const form = buildForm(job);
  replace(root, h("h1", {}, `Edit ${job.id}`), h("p", { class: "muted" }, `version ${job.version}`), form);
  wire(form, ctx, job);
}
