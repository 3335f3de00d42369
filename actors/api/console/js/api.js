// The console's one way to reach the node: the public REST API (docs/api-reference.md),
// on the origin that served the page, with the token the user gave (sessionStorage).
// Every function here is one documented operation.

const TOKEN_KEY = "scheduled-db.token";

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? body.error : `HTTP ${status}`);
    this.status = status;
    this.code = body && body.code;
    this.field = body && body.field;
    this.body = body;
  }
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

let onUnauthorized = () => {};
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

export const enc = encodeURIComponent;

export async function request(method, path, { body, headers = {}, text = false, quiet = false } = {}) {
  const sent = { ...headers };
  const bearer = token.get();
  if (bearer) sent.Authorization = `Bearer ${bearer}`;
  let payload;
  if (body !== undefined) {
    payload = JSON.stringify(body);
    sent["Content-Type"] = sent["Content-Type"] || "application/json";
  }
  const response = await fetch(path, { method, headers: sent, body: payload, cache: "no-store" });
  if (response.status === 204) return null;
  const raw = await response.text();
  if (response.ok && text) return raw;
  let decoded = null;
  try {
    decoded = raw ? JSON.parse(raw) : null;
  } catch {
    decoded = { error: raw.slice(0, 200) };
  }
  if (!response.ok) {
    const error = new ApiError(response.status, decoded);
    if (response.status === 401 && !quiet) onUnauthorized(error);
    throw error;
  }
  return decoded;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) search.append(key, one);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

export const api = {
  health: () => request("GET", "/health").catch((e) => (e.status === 503 ? e.body : Promise.reject(e))),
  ready: () => request("GET", "/ready").catch((e) => (e.status === 503 ? e.body : Promise.reject(e))),
  cluster: () => request("GET", "/debug/cluster"),
  listJobs: (filters) => request("GET", `/jobs${query(filters)}`),
  job: (id) => request("GET", `/jobs/${enc(id)}`),
  status: (id) => request("GET", `/jobs/${enc(id)}/status`),
  upcoming: (id, n = 10) => request("GET", `/jobs/${enc(id)}/upcoming${query({ n })}`),
  executions: (filters) => request("GET", `/executions${query(filters)}`),
  create: (body) => request("POST", "/jobs", { body }),
  update: (id, patch, version, quiet = false) =>
    request("PATCH", `/jobs/${enc(id)}`, {
      body: patch,
      headers: { "Content-Type": "application/merge-patch+json", "If-Match": String(version) },
      quiet,
    }),
  pause: (id) => request("POST", `/jobs/${enc(id)}/pause`),
  resume: (id) => request("POST", `/jobs/${enc(id)}/resume`),
  trigger: (id) => request("POST", `/jobs/${enc(id)}/trigger`),
  cancel: (id, reason) => request("POST", `/jobs/${enc(id)}/cancel`, { body: reason ? { reason } : {} }),
  remove: (id) => request("DELETE", `/jobs/${enc(id)}`),
  join: (body) => request("POST", "/join", { body }),
  leave: (nodeId) => request("POST", "/leave", { body: nodeId ? { node_id: nodeId } : {} }),
  removeMember: (id) => request("DELETE", `/cluster/members/${enc(id)}`),
};

// The token's role, as the node authenticated it (GET /auth/whoami): "none" when the
// node refuses the token (or wants one and has none).
export async function probeRole() {
  try {
    const me = await request("GET", "/auth/whoami", { quiet: true });
    return me.role;
  } catch (e) {
    if (e.status === 401) return "none";
    throw e;
  }
}
