// Building the page: elements made with h() (text is always set as text, never parsed as HTML, so
// nothing an API answer holds can become markup), and the formats every page shares.

/**
 * h("a", {href: "#/x", class: "button"}, "text", child, [more, children])
 * Attributes: `on<event>` takes a listener; `dataset`, `checked`, `value`, `disabled`, `selected` are
 * set as properties; false/null/undefined leave the attribute out. Children: strings, numbers,
 * nodes, arrays of them; null/undefined/false are skipped.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (["checked", "value", "disabled", "selected", "indeterminate"].includes(name)) {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces the children of `element` with `children`. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

const pad = (n) => String(n).padStart(2, "0");

/** An RFC 3339 time as "2026-12-08 14:03:05" in the browser's time zone; "" when absent. */
export function formatTime(text) {
  if (!text) return "";
  const t = new Date(text);
  if (Number.isNaN(t.getTime())) return text;
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
}

/** "3 min ago", "2 h ago", "5 d ago" from an RFC 3339 time. */
export function ago(text) {
  if (!text) return "";
  const seconds = Math.max(0, (Date.now() - new Date(text).getTime()) / 1000);
  if (seconds < 60) return `${Math.round(seconds)} s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} d ago`;
}

/** A time element: the local time, with the exact RFC 3339 value as its tooltip. */
export function timeCell(text, relative = false) {
  if (!text) return h("span", { class: "muted" }, "—");
  return h("time", { datetime: text, title: text }, relative ? ago(text) : formatTime(text));
}

/** A protobuf JSON Duration ("0.012s") as "12 ms" or "1.20 s". */
export function formatDuration(text) {
  if (!text) return "";
  const seconds = parseFloat(text);
  if (Number.isNaN(seconds)) return text;
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms` : `${seconds.toFixed(2)} s`;
}

export const ENDPOINT_TYPES = {
  ENDPOINT_TYPE_WEBHOOK: "Webhook",
  ENDPOINT_TYPE_SLACK: "Slack",
  ENDPOINT_TYPE_TEAMS: "Microsoft Teams",
  ENDPOINT_TYPE_GOOGLE_CHAT: "Google Chat",
  ENDPOINT_TYPE_EMAIL: "E-mail",
};

export const DELIVERY_STATUSES = {
  DELIVERY_STATUS_PENDING: "pending",
  DELIVERY_STATUS_SUCCEEDED: "succeeded",
  DELIVERY_STATUS_FAILED: "failed",
};

/** A delivery status as a coloured badge. */
export function statusBadge(status) {
  const label = DELIVERY_STATUSES[status] || status || "unknown";
  return h("span", { class: `badge status-${label}` }, label);
}

/** A <datetime-local> value (the browser's time zone) as RFC 3339 UTC; "" when empty. */
export function localInputToRfc3339(value) {
  if (!value) return "";
  const t = new Date(value);
  return Number.isNaN(t.getTime()) ? "" : t.toISOString();
}

/** An RFC 3339 time as a <datetime-local> value in the browser's time zone. */
export function rfc3339ToLocalInput(text) {
  if (!text) return "";
  const t = new Date(text);
  if (Number.isNaN(t.getTime())) return "";
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}T${pad(t.getHours())}:${pad(t.getMinutes())}`;
}

/** A definition list from [label, value] pairs, skipping pairs whose value is null. */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.filter(([, value]) => value !== null && value !== undefined).map(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]),
  );
}
