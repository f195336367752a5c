// The public HTTP API, the one a script calls (/api/hooks/v1/..., the gateway's JSON transcoding of
// the gRPC services; its OpenAPI document is /api/hooks/v1/openapi.json). Nothing here is private to
// the console.
//
// Identity: behind the platform's proxy, the proxy adds x-rh-identity to every request and the
// console sends none. With the development sign-in (only when the gateway says it is in development),
// the console builds the header for the account picked: base64 of
// {"identity": {"account_number": ..., "type": "User"}}, as services/common/identity.py reads it.

export const API = "/api/hooks/v1";

let identityHeader = null;

/** The account the console signs its requests as (development sign-in), or null for none. */
export function useAccount(account) {
  identityHeader = account ? encodeIdentity(account) : null;
}

export function encodeIdentity(account) {
  const json = JSON.stringify({ identity: { account_number: account, type: "User" } });
  const bytes = new TextEncoder().encode(json);
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function headers(extra = {}) {
  const all = { Accept: "application/json", ...extra };
  if (identityHeader) all["x-rh-identity"] = identityHeader;
  return all;
}

/** An error answer: the google.rpc.Status the gateway sends (its message, and the fields it names). */
export class ApiError extends Error {
  constructor(status, body) {
    const message = (body && body.message) || `HTTP ${status}`;
    super(message);
    this.status = status;
    this.code = body && body.code;
    /** [{field, description}] from a google.rpc.BadRequest detail. */
    this.violations = [];
    for (const detail of (body && body.details) || []) {
      for (const violation of detail.fieldViolations || []) this.violations.push(violation);
    }
  }

  /** One line for people: the message, then each field and what is wrong with it. */
  describe() {
    const fields = this.violations.map((v) => `${v.field}: ${v.description}`);
    const prefix = this.status === 401 ? "Not signed in: " : this.status === 404 ? "Not found: " : "";
    return [prefix + this.message, ...fields].join("\n");
  }
}

function url(path, query) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, item);
  }
  const text = search.toString();
  return API + path + (text ? `?${text}` : "");
}

/** One call: `call("POST", "/endpoints", {body: {...}})`; resolves to the JSON answer, or throws ApiError. */
export async function call(method, path, { query, body, signal } = {}) {
  const init = { method, headers: headers(), signal };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url(path, query), init);
  const text = await response.text();
  let document = null;
  try {
    document = text ? JSON.parse(text) : {};
  } catch {
    document = { message: text.slice(0, 200) };
  }
  if (!response.ok) throw new ApiError(response.status, document);
  return document;
}

export const get = (path, query, options) => call("GET", path, { ...options, query });
export const post = (path, body = {}, query) => call("POST", path, { body, query });
export const patch = (path, body, query) => call("PATCH", path, { body, query });
export const del = (path) => call("DELETE", path);

/** Every item of a paged list (`key` names the array), page after page of `pageSize` (1000 at most). */
export async function listAll(path, key, query = {}, pageSize = 1000) {
  const items = [];
  let pageToken = "";
  do {
    const page = await get(path, { ...query, pageSize, pageToken });
    items.push(...(page[key] || []));
    pageToken = page.nextPageToken || "";
  } while (pageToken);
  return items;
}

/**
 * Ids per endpoints:batchGetStats call. The call takes up to 1000, but its ids travel in the URL and
 * the gateway (aiohttp) refuses a request line over 8190 bytes: 100 ids (36 characters each) fit.
 */
export const STATS_BATCH = 100;

/** {endpointId: stats} of the endpoints named: ceil(n / STATS_BATCH) calls at once, never one per endpoint. */
export async function endpointStats(ids) {
  const batches = [];
  for (let start = 0; start < ids.length; start += STATS_BATCH) batches.push(ids.slice(start, start + STATS_BATCH));
  const answers = await Promise.all(batches.map((batch) => get("/endpoints:batchGetStats", { endpointIds: batch })));
  const byId = {};
  for (const answer of answers) for (const stats of answer.stats || []) byId[stats.endpointId] = stats;
  return byId;
}

/**
 * A Server-Sent Events stream read with fetch, so the development identity header goes with it
 * (EventSource cannot send headers). Calls onEvent(json, id) for each `data:` event (`id` its `id:`
 * line, or ""), onError(ApiError) for an `event: error` or an error answer; resolves when the stream
 * ends; abort with `signal`. `lastEventId` resumes a stream, as an EventSource would (Last-Event-ID).
 */
export async function stream(path, query, { onEvent, onError, onOpen, signal, lastEventId }) {
  const extra = { Accept: "text/event-stream" };
  if (lastEventId) extra["Last-Event-ID"] = lastEventId;
  const response = await fetch(url(path, query), { headers: headers(extra), signal });
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    onError(new ApiError(response.status, body));
    return;
  }
  if (onOpen) onOpen();
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message";
      let id = "";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue; // a comment: the stream's keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") event = text;
        else if (field === "id") id = text;
        else if (field === "data") data.push(text);
      }
      if (!data.length) continue;
      const payload = JSON.parse(data.join("\n"));
      if (event === "error") onError(new ApiError(0, payload));
      else onEvent(payload, id);
    }
  }
}
