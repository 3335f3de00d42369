// The console's shell: the token, the token's role, the router (location.hash) and the
// polling of the view on screen.  Views live in views/*.js.
//
// Live updates are polls, not Server-Sent Events: the API has no event stream, a poll is
// a documented operation answered by whichever node the console is on (followers and the
// load balancer included), and it pauses while the tab is hidden.

import { api, probeRole, token, whenUnauthorized } from "./api.js";
import { h, replace } from "./dom.js";
import * as overview from "./views/overview.js";
import * as jobs from "./views/jobs.js";
import * as job from "./views/job.js";
import * as form from "./views/form.js";
import * as failures from "./views/failures.js";
import * as cluster from "./views/cluster.js";

const ROUTES = [
  [/^#\/overview$/, overview.render, "overview"],
  [/^#\/jobs(?:\?(.*))?$/, jobs.render, "jobs"],
  [/^#\/job\/(.+)$/, job.render, "jobs"],
  [/^#\/new$/, form.renderNew, "new"],
  [/^#\/edit\/(.+)$/, form.renderEdit, "jobs"],
  [/^#\/failures$/, failures.render, "failures"],
  [/^#\/cluster$/, cluster.render, "cluster"],
];
const RANK = { none: 0, read: 1, write: 2, admin: 3 };

const state = { role: "none", timers: [], generation: 0 };

export function notify(message, kind = "info") {
  const box = document.getElementById("notice");
  replace(box, message);
  box.className = kind;
  box.hidden = false;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => { box.hidden = true; }, kind === "error" ? 10000 : 4000);
}

export function can(role) {
  return RANK[state.role] >= RANK[role];
}

function stopTimers() {
  for (const timer of state.timers) clearTimeout(timer);
  state.timers = [];
}

// Run `refresh` now and then every `ms` while this view is on screen (and the tab visible).
function every(ms, refresh, generation) {
  const tick = async () => {
    if (generation !== state.generation) return;
    if (!document.hidden) {
      try {
        await refresh();
      } catch (error) {
        if (generation === state.generation && error.status !== 401) notify(error.message, "error");
      }
    }
    if (generation === state.generation) state.timers.push(setTimeout(tick, ms));
  };
  return tick();
}

async function route() {
  stopTimers();
  const generation = ++state.generation;
  const hash = location.hash || "#/overview";
  const root = document.getElementById("view");
  if (state.role === "none") {
    replace(root, h("p", { class: "muted" }, "This node needs an API token: use the Token button above."));
    return;
  }
  for (const [pattern, render, tab] of ROUTES) {
    const match = pattern.exec(hash);
    if (!match) continue;
    for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("active", link.dataset.view === tab);
    const ctx = {
      args: match.slice(1).map((x) => (x === undefined ? x : decodeURIComponent(x))),
      every: (ms, refresh) => every(ms, refresh, generation),
      current: () => generation === state.generation,
      can,
      notify,
      go: (to) => { location.hash = to; },
    };
    replace(root, h("p", { class: "muted" }, "Loading…"));
    try {
      await render(root, ctx);
    } catch (error) {
      if (generation === state.generation) replace(root, h("p", { class: "error" }, error.message));
    }
    return;
  }
  location.hash = "#/overview";
}

function askToken(message) {
  const dialog = document.getElementById("token-dialog");
  const error = document.getElementById("token-error");
  error.hidden = !message;
  error.textContent = message || "";
  if (!dialog.open) dialog.showModal();
  document.getElementById("token-input").focus();
}

async function learnRole() {
  state.role = await probeRole();
  document.body.dataset.role = state.role;
  document.getElementById("whoami").textContent = token.get() ? `token: ${state.role}` : state.role === "admin" ? "open API" : `role: ${state.role}`;
  if (state.role === "none") askToken(token.get() ? "The node did not accept this token." : "");
  return state.role;
}

function setUp() {
  whenUnauthorized(() => askToken(token.get() ? "The node did not accept this token." : ""));
  document.getElementById("token-button").addEventListener("click", () => askToken(""));
  document.getElementById("token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    token.set(document.getElementById("token-input").value.trim());
    document.getElementById("token-input").value = "";
    document.getElementById("token-dialog").close();
    if ((await learnRole()) !== "none") route();
  });
  document.getElementById("token-forget").addEventListener("click", () => {
    token.clear();
    document.getElementById("token-dialog").close();
    learnRole().then(route);
  });
  window.addEventListener("hashchange", route);
}

setUp();
learnRole().then(route, (error) => notify(error.message, "error"));
export { api };
