// The cron forms the server accepts (docs/api-reference.md, "Cron syntax"): parsed to
// sets, described in plain words, and evaluated in an IANA time zone for a preview.
// The server stays the judge: a job's real next runs come from GET /jobs/{id}/upcoming.

const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const MONTH_NAMES = ["January", "February", "March", "April", "May", "June", "July", "August",
  "September", "October", "November", "December"];
const DAY_NAMES = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MACROS = {
  "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
};
// name, lowest, highest, names (their index + offset is the value)
const FIELDS = {
  second: ["second", 0, 59], minute: ["minute", 0, 59], hour: ["hour", 0, 23],
  dom: ["day of month", 1, 31], month: ["month", 1, 12, MONTHS, 1], dow: ["day of week", 0, 7, DAYS, 0],
};

export class CronError extends Error {}

function value(text, spec) {
  const [name, low, high, names, offset] = spec;
  let number;
  if (/^\d+$/.test(text)) number = Number(text);
  else if (names && names.includes(text.toUpperCase())) number = names.indexOf(text.toUpperCase()) + offset;
  else throw new CronError(`${name}: "${text}" is not a value`);
  if (number < low || number > high) throw new CronError(`${name}: ${number} is outside ${low}-${high}`);
  return number;
}

function field(text, key) {
  const spec = FIELDS[key];
  const [name, low, high] = spec;
  const result = { raw: text, any: text === "*" || (text === "?" && (key === "dom" || key === "dow")), values: new Set(), last: false };
  if (result.any) {
    for (let v = low; v <= high; v++) result.values.add(v);
  } else {
    for (const item of text.split(",")) {
      if (key === "dom" && item.toUpperCase() === "L") { result.last = true; continue; }
      const [range, stepText] = item.split("/");
      const step = stepText === undefined ? 1 : Number(stepText);
      if (!Number.isInteger(step) || step < 1 || (stepText !== undefined && !/^\d+$/.test(stepText))) {
        throw new CronError(`${name}: step "${stepText}" is not a positive number`);
      }
      let from = low;
      let to = high;
      if (range !== "*" && range !== "?") {
        const bounds = range.split("-");
        if (bounds.length > 2 || bounds[0] === "") throw new CronError(`${name}: "${item}" is not a value or range`);
        from = value(bounds[0], spec);
        to = bounds.length === 2 ? value(bounds[1], spec) : stepText === undefined ? from : high;
        if (to < from) throw new CronError(`${name}: range ${bounds[0]}-${bounds[1]} runs backwards`);
      }
      for (let v = from; v <= to; v += step) result.values.add(v);
    }
  }
  if (key === "dow" && result.values.has(7)) { result.values.delete(7); result.values.add(0); }
  result.sorted = [...result.values].sort((a, b) => a - b);
  return result;
}

/** The parsed expression, or a CronError saying which field is wrong. */
export function parseCron(expression) {
  const text = (expression || "").trim();
  if (!text) throw new CronError("the expression is empty");
  const expanded = text.startsWith("@") ? MACROS[text.toLowerCase()] : text;
  if (!expanded) throw new CronError(`unknown macro ${text} (known: ${Object.keys(MACROS).join(", ")})`);
  const parts = expanded.split(/\s+/);
  if (parts.length !== 5 && parts.length !== 6) {
    throw new CronError(`${parts.length} fields: five are expected (or six with seconds first)`);
  }
  const withSeconds = parts.length === 6;
  const [second, minute, hour, dom, month, dow] = withSeconds ? parts : ["0", ...parts];
  return {
    text, macro: text.startsWith("@") ? text.toLowerCase() : null, withSeconds,
    second: field(second, "second"), minute: field(minute, "minute"), hour: field(hour, "hour"),
    dom: field(dom, "dom"), month: field(month, "month"), dow: field(dow, "dow"),
  };
}

// ---- plain words ------------------------------------------------------------------------

const pad = (n) => String(n).padStart(2, "0");
const list = (items) => items.length <= 1 ? items.join("") : `${items.slice(0, -1).join(", ")} and ${items.at(-1)}`;
const stepOf = (f) => { const m = /^\*\/(\d+)$/.exec(f.raw); return m ? Number(m[1]) : null; };
const rangeOf = (f) => { const m = /^(\d+)-(\d+)$/.exec(f.raw); return m ? [Number(m[1]), Number(m[2])] : null; };
const single = (f) => (!f.any && f.sorted.length === 1 && !f.last ? f.sorted[0] : null);
const plural = (n, word) => (n === 1 ? `every ${word}` : `every ${n} ${word}s`);

function timeWords(c) {
  const { second: s, minute: m, hour: h } = c;
  const noSeconds = single(s) === 0;
  if (single(s) !== null && !noSeconds && single(m) !== null && !h.any && h.sorted.length <= 6) {
    return [`at ${list(h.sorted.map((x) => `${pad(x)}:${pad(single(m))}:${pad(single(s))}`))}`, true];
  }
  if (!noSeconds) {
    if (m.any && h.any) return s.any ? ["every second", false] : stepOf(s) ? [plural(stepOf(s), "second"), false] : null;
    return null;
  }
  if (m.any && h.any) return ["every minute", false];
  if (stepOf(m) && h.any) return [plural(stepOf(m), "minute"), false];
  if (stepOf(m) && rangeOf(h)) {
    const [a, b] = rangeOf(h);
    return [`${plural(stepOf(m), "minute")} from ${pad(a)}:00 to ${pad(b)}:59`, true];
  }
  const minute = single(m);
  if (minute === null) return null;
  if (h.any) return [minute === 0 ? "every hour" : `every hour at minute ${minute}`, false];
  if (stepOf(h)) return [minute === 0 ? plural(stepOf(h), "hour") : `${plural(stepOf(h), "hour")} at minute ${minute}`, false];
  if (rangeOf(h)) {
    const [a, b] = rangeOf(h);
    return [`every hour from ${pad(a)}:${pad(minute)} to ${pad(b)}:${pad(minute)}`, true];
  }
  if (h.sorted.length <= 6) return [`at ${list(h.sorted.map((x) => `${pad(x)}:${pad(minute)}`))}`, true];
  return null;
}

function dayWords(c) {
  const { dom, dow, month } = c;
  const parts = [];
  const days = [];
  if (single(dom) !== null && single(month) !== null && dow.any) {
    return [`on ${single(dom)} ${MONTH_NAMES[single(month) - 1]}`];
  }
  if (!dom.any) {
    const numbers = dom.sorted.map(String);
    if (dom.last) numbers.push("the last day");
    if (numbers.length === 1 && dom.last) days.push("on the last day of the month");
    else days.push(`on ${dom.sorted.length + (dom.last ? 1 : 0) === 1 ? "day" : "days"} ${list(numbers)} of the month`);
  }
  if (!dow.any) {
    const set = dow.sorted.join(",");
    if (set === "1,2,3,4,5") days.push("on weekdays");
    else if (set === "0,6") days.push("on weekends");
    else days.push(`on ${list(dow.sorted.map((d) => `${DAY_NAMES[d]}s`))}`);
  }
  if (days.length) parts.push(days.join(" or "));  // POSIX: either day field matching fires
  if (!month.any) parts.push(`in ${list(month.sorted.map((x) => MONTH_NAMES[x - 1]))}`);
  return parts;
}

/** Plain words for a cron expression read in `zone`, or the expression itself when it
 *  has no short description ("every 5 minutes", "at 09:00 Europe/Madrid on weekdays"). */
export function describeCron(expression, zone = "UTC") {
  let c;
  try {
    c = parseCron(expression);
  } catch {
    return expression;
  }
  const time = timeWords(c);
  if (!time) return `cron ${expression} (${zone})`;
  const [words, atClock] = time;
  const days = dayWords(c);
  const everyDay = atClock && days.length === 0 ? " every day" : "";
  const zoned = atClock ? ` ${zone}` : "";
  return [`${words}${zoned}${everyDay}`, ...days].join(" ");
}

// ---- the next runs in a time zone --------------------------------------------------------

const formatters = new Map();
function wallOf(ms, zone) {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: zone, hourCycle: "h23", year: "numeric", month: "numeric", day: "numeric",
      hour: "numeric", minute: "numeric", second: "numeric",
    });
    formatters.set(zone, f);
  }
  const p = Object.fromEntries(f.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  return [Number(p.year), Number(p.month), Number(p.day), Number(p.hour), Number(p.minute), Number(p.second)];
}

/** The offset of `zone` at instant `ms`, in milliseconds east of UTC. */
export function offsetAt(ms, zone) {
  const [y, mo, d, h, mi, s] = wallOf(ms, zone);
  return Date.UTC(y, mo - 1, d, h, mi, s) - Math.floor(ms / 1000) * 1000;
}

const sameWall = (a, b) => a.every((x, i) => x === b[i]);

/** The instant of a wall-clock time in `zone`, as the server reads one: the first of
 *  two when clocks fall back, the first instant after the gap when they spring forward. */
export function zonedInstant(wall, zone) {
  const naive = Date.UTC(wall[0], wall[1] - 1, wall[2], wall[3], wall[4], wall[5]);
  const offsets = [...new Set([offsetAt(naive - 86_400_000, zone), offsetAt(naive + 86_400_000, zone), offsetAt(naive, zone)])];
  const fits = offsets.map((o) => naive - o).filter((ms) => sameWall(wallOf(ms, zone), wall)).sort((a, b) => a - b);
  if (fits.length) return { ms: fits[0], gap: false };
  // In a gap: the transition lies between the two readings; find it to the second.
  let low = Math.min(...offsets.map((o) => naive - o));
  let high = Math.max(...offsets.map((o) => naive - o));
  const before = offsetAt(low, zone);
  while (high - low > 1000) {
    const mid = low + Math.floor((high - low) / 2000) * 1000;
    if (offsetAt(mid, zone) === before) low = mid; else high = mid;
  }
  return { ms: high, gap: true };
}

function dayMatches(c, y, mo, d) {
  if (!c.month.values.has(mo)) return false;
  const weekday = new Date(Date.UTC(y, mo - 1, d)).getUTCDay();
  const lastDay = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  const byDom = c.dom.values.has(d) || (c.dom.last && d === lastDay);
  const byDow = c.dow.values.has(weekday);
  if (!c.dom.any && !c.dow.any) return byDom || byDow;
  return (c.dom.any || byDom) && (c.dow.any || byDow);
}

/** Up to `n` runs after `fromMs` (and not after `untilMs`), each {ms, gap}. */
export function nextRuns(expression, zone, n, fromMs, untilMs = Infinity) {
  const c = parseCron(expression);
  const runs = [];
  const [y0, m0, d0] = wallOf(fromMs, zone);
  for (let day = 0; day < 366 * 5 && runs.length < n; day++) {
    const date = new Date(Date.UTC(y0, m0 - 1, d0 + day));
    const [y, mo, d] = [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()];
    if (!dayMatches(c, y, mo, d)) continue;
    for (const h of c.hour.sorted) {
      for (const mi of c.minute.sorted) {
        for (const s of c.second.sorted) {
          const run = zonedInstant([y, mo, d, h, mi, s], zone);
          if (run.ms <= fromMs) continue;
          if (run.ms > untilMs) return runs;
          if (runs.length && runs.at(-1).ms === run.ms) continue;  // two gap times, one instant
          runs.push(run);
          if (runs.length >= n) return runs;
        }
      }
    }
  }
  return runs;
}

/** The ISO 8601 text of `ms` in `zone`, with the offset of that day. */
export function isoIn(ms, zone) {
  const [y, mo, d, h, mi, s] = wallOf(ms, zone);
  const offset = offsetAt(ms, zone) / 60000;
  const sign = offset < 0 ? "-" : "+";
  const abs = Math.abs(offset);
  return `${y}-${pad(mo)}-${pad(d)}T${pad(h)}:${pad(mi)}:${pad(s)}${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`;
}

export function isValidZone(zone) {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}
