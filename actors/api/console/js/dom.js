// Building the page from data with DOM nodes only (never parsed markup): text stays text.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, value);
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
}

export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export const pad = (n) => String(n).padStart(2, "0");

/** "2026-12-07 09:00:00" in `zone` (UTC by default); "—" for none. */
export function when(ms, zone = "UTC") {
  if (ms === null || ms === undefined) return "—";
  const f = new Intl.DateTimeFormat("sv-SE", {
    timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  return f.format(new Date(ms));
}

/** "in 5 min", "3 s ago". */
export function relative(ms, now = Date.now()) {
  if (ms === null || ms === undefined) return "";
  const s = Math.round((ms - now) / 1000);
  const abs = Math.abs(s);
  if (abs < 1) return "just now";
  const text = abs < 90 ? `${abs} s` : abs < 5400 ? `${Math.round(abs / 60)} min` : abs < 172800 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} d`;
  return s >= 0 ? `in ${text}` : `${text} ago`;
}

export function table(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: headers.length, class: "muted" }, "Nothing to show"))));
}

export function labelChips(labels) {
  return Object.entries(labels || {}).map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`));
}

export function badge(text, kind = text) {
  return h("span", { class: `badge ${kind}` }, text);
}
