// Endpoints: the list with each one's health, an endpoint's page (enable, pause, test, rotate the
// secret, delete), and the create/edit form per type.
//
// The list asks for one page (pageSize, pageToken) and the health of every endpoint on it in one
// endpoints:batchGetStats call per 100 ids (api.js endpointStats), never one request per endpoint.

import { ApiError, del, endpointStats, get, listAll, patch, post } from "./api.js";
import { ENDPOINT_TYPES, facts, fill, formatDuration, h, statusBadge, timeCell } from "./dom.js";
import { actionButton, errorBox, navigate, notify, notifyError } from "./ui.js";

const PAGE_SIZES = [50, 100, 500, 1000];

/** What differs per endpoint type in the form. */
const TYPES = {
  ENDPOINT_TYPE_WEBHOOK: { target: "URL", placeholder: "https://hooks.example.com/notify", http: true, signed: true },
  ENDPOINT_TYPE_SLACK: { target: "Slack incoming webhook URL", placeholder: "https://hooks.slack.com/services/…", http: true },
  ENDPOINT_TYPE_TEAMS: { target: "Teams incoming webhook URL", placeholder: "https://example.webhook.office.com/…", http: true },
  ENDPOINT_TYPE_GOOGLE_CHAT: { target: "Google Chat space webhook URL", placeholder: "https://chat.googleapis.com/v1/spaces/…", http: true },
  ENDPOINT_TYPE_EMAIL: { target: "E-mail address", placeholder: "ops@example.com", http: false },
};

/** A secret hooks generated, shown once on the endpoint's page right after the answer that had it. */
let freshSecret = null;

/** The endpoint's state in words: disabled (and why), paused, or enabled. */
export function stateBadge(endpoint) {
  if (!endpoint.enabled) {
    return h("span", { class: "badge state-disabled", title: endpoint.disabledReason || "" }, "disabled");
  }
  if (endpoint.paused) return h("span", { class: "badge state-paused", title: endpoint.pauseTime || "" }, "paused");
  return h("span", { class: "badge state-enabled" }, "enabled");
}

/** The health cells of one endpoint's stats (see api.js endpointStats for the shape). */
function healthCells(stats) {
  if (!stats) return [h("td", { class: "muted" }, "—"), h("td", { class: "muted" }, "—"), h("td", { class: "muted" }, "—"), h("td", { class: "muted num" }, "—")];
  const attempts = Number(stats.attempts24h || 0);
  const succeeded = Number(stats.succeededAttempts24h || 0);
  const last = stats.lastAttemptTime
    ? h(
        "span",
        { class: stats.lastAttemptSucceeded ? "ok" : "bad" },
        stats.lastAttemptSucceeded ? "✓ " : "✗ ",
        timeCell(stats.lastAttemptTime, true),
        stats.lastHttpStatus ? ` (${stats.lastHttpStatus})` : "",
      )
    : h("span", { class: "muted" }, "never");
  const rate = attempts
    ? h("span", { class: succeeded === attempts ? "ok" : succeeded === 0 ? "bad" : "warn", title: `${succeeded} of ${attempts} attempts in the last 24 h` }, `${Math.floor((100 * succeeded) / attempts)}% of ${attempts}`)
    : h("span", { class: "muted" }, "no attempts");
  return [
    h("td", { class: "health-last" }, last),
    h("td", { class: "health-rate" }, rate),
    h("td", { class: "health-failing" }, stats.failingSince ? h("span", { class: "bad" }, timeCell(stats.failingSince)) : h("span", { class: "muted" }, "—")),
    h("td", { class: "health-pending num" }, String(Number(stats.pendingCount || 0))),
  ];
}

function listQuery(query, changes) {
  const next = new URLSearchParams(query);
  for (const [name, value] of Object.entries(changes)) {
    if (value) next.set(name, value);
    else next.delete(name);
  }
  const text = next.toString();
  return `#/endpoints${text ? `?${text}` : ""}`;
}

/** #/endpoints?q=name&size=100&page=TOKEN */
export async function list(root, _params, query) {
  const search = query.get("q") || "";
  const pageSize = PAGE_SIZES.includes(Number(query.get("size"))) ? Number(query.get("size")) : 100;
  const page = await get("/endpoints", { pageSize, pageToken: query.get("page") || "", nameContains: search });
  const endpoints = page.endpoints || [];

  const searchInput = h("input", { type: "search", id: "endpoint-search", name: "q", value: search, placeholder: "Name contains…", "aria-label": "Search endpoints by name" });
  const sizeSelect = h("select", { id: "endpoint-page-size", "aria-label": "Endpoints per page" }, PAGE_SIZES.map((size) => h("option", { value: size, selected: size === pageSize }, `${size} per page`)));
  const toolbar = h(
    "form",
    {
      class: "toolbar",
      onsubmit: (event) => {
        event.preventDefault();
        navigate(listQuery(query, { q: searchInput.value.trim(), page: "", size: sizeSelect.value }));
      },
    },
    searchInput,
    sizeSelect,
    h("button", { type: "submit" }, "Search"),
    h("span", { class: "spacer" }),
    h("a", { class: "button primary", href: "#/endpoints/new" }, "New endpoint"),
  );
  sizeSelect.addEventListener("change", () => toolbar.requestSubmit());

  const healthNote = h("p", { class: "muted small", id: "health-note" }, "Loading health figures…");
  const rows = new Map();
  const body = h(
    "tbody",
    {},
    endpoints.map((endpoint) => {
      const row = h(
        "tr",
        { dataset: { id: endpoint.id } },
        h("td", {}, h("a", { href: `#/endpoints/${encodeURIComponent(endpoint.id)}`, class: "endpoint-name" }, endpoint.name)),
        h("td", {}, ENDPOINT_TYPES[endpoint.type] || endpoint.type),
        h("td", { class: "target", title: endpoint.target }, endpoint.target),
        h("td", {}, stateBadge(endpoint), endpoint.disabledReason ? h("div", { class: "small bad disabled-reason" }, endpoint.disabledReason) : null),
        healthCells(null).map((cell) => (cell.classList.add("loading"), cell)),
      );
      rows.set(endpoint.id, row);
      return row;
    }),
  );
  const table = endpoints.length
    ? h(
        "table",
        { class: "grid", id: "endpoints" },
        h(
          "thead",
          {},
          h("tr", {}, ["Name", "Type", "Target", "State", "Last attempt", "Success, 24 h", "Failing since", "Pending"].map((label) => h("th", { scope: "col" }, label))),
        ),
        body,
      )
    : h("p", { class: "empty" }, search ? `No endpoint's name contains “${search}”.` : "No endpoints yet. ", search ? null : h("a", { href: "#/endpoints/new" }, "Create one"));

  const pager = h(
    "div",
    { class: "pager" },
    query.get("page") ? h("a", { href: listQuery(query, { page: "" }) }, "« First page") : null,
    h("span", { class: "muted" }, `${endpoints.length} shown`),
    page.nextPageToken ? h("a", { href: listQuery(query, { page: page.nextPageToken }), id: "next-page" }, "Next page »") : null,
  );
  fill(root, h("h1", {}, "Endpoints"), toolbar, table, pager, endpoints.length ? healthNote : null);

  // The health of the page's endpoints, filled in when it arrives (the list is usable before).
  try {
    const stats = await endpointStats(endpoints.map((endpoint) => endpoint.id));
    for (const [id, row] of rows) {
      const cells = row.querySelectorAll("td.loading");
      cells.forEach((cell, index) => cell.replaceWith(healthCells(stats[id])[index]));
    }
    healthNote.textContent = "Attempts of the last 24 hours; pending: deliveries waiting for an attempt.";
  } catch (error) {
    healthNote.textContent = `Health figures unavailable: ${error instanceof ApiError ? error.describe() : error}`;
    healthNote.classList.replace("muted", "bad");
  }
}

/** The secret panel: shown once, with a copy button; gone when the page is left. */
function secretPanel(secret, rotated) {
  const value = h("input", { id: "generated-secret", readonly: true, value: secret, size: 48, "aria-label": "Signing secret" });
  return h(
    "section",
    { class: "card secret", id: "secret-panel" },
    h("h2", {}, rotated ? "New signing secret" : "Signing secret"),
    h("p", {}, "Copy it now and give it to the receiver, which checks each delivery's signature with it. It is not shown again: hooks keeps only a hint of it."),
    h(
      "div",
      { class: "toolbar" },
      value,
      actionButton("Copy", async () => {
        value.select();
        await navigator.clipboard.writeText(secret).catch(() => document.execCommand("copy"));
        notify("Secret copied", "ok");
      }),
    ),
    rotated ? h("p", { class: "small" }, "The previous secret keeps signing deliveries beside this one for the grace period (24 h unless the operator set another), so the receiver can switch without missing one.") : null,
  );
}

function testResult(delivery) {
  const attempts = delivery.attempts || [];
  const last = attempts[attempts.length - 1];
  const details = last
    ? [last.httpStatus ? `HTTP ${last.httpStatus}` : null, last.latency ? `in ${formatDuration(last.latency)}` : null, last.error || null].filter(Boolean).join(", ")
    : delivery.lastError || "";
  return h(
    "section",
    { class: "card", id: "test-result" },
    h("h2", {}, "Test message"),
    h("p", {}, statusBadge(delivery.status), " ", details, " ", h("a", { href: `#/deliveries/${encodeURIComponent(delivery.id)}` }, "Open the delivery")),
  );
}

/** #/endpoints/ID */
export async function show(root, [id]) {
  const [endpoint, statsOrError, triggering] = await Promise.all([
    get(`/endpoints/${encodeURIComponent(id)}`),
    endpointStats([id]).catch((error) => error),
    listAll("/filters", "filters", { endpointId: id }).catch(() => null),
  ]);
  const secret = freshSecret && freshSecret.id === id ? freshSecret : null;
  freshSecret = null;
  const path = `/endpoints/${encodeURIComponent(id)}`;
  const resultSlot = h("div", {});
  const reload = () => navigate(`#/endpoints/${encodeURIComponent(id)}`);

  const actions = h(
    "div",
    { class: "actions" },
    h("a", { class: "button", id: "edit", href: `#/endpoints/${encodeURIComponent(id)}/edit` }, "Edit"),
    endpoint.enabled
      ? actionButton("Disable", async () => (await patch(path, { enabled: false }, { updateMask: "enabled" }), notify("Disabled", "ok"), reload()), {
          id: "disable",
          "data-confirm": "Disable this endpoint? Its pending deliveries fail and new events are not delivered to it until it is enabled again. (Pause keeps them instead.)",
        })
      : actionButton("Enable", async () => (await patch(path, { enabled: true }, { updateMask: "enabled" }), notify("Enabled", "ok"), reload()), { id: "enable" }),
    endpoint.paused
      ? actionButton("Resume", async () => (await post(`${path}:resume`), notify("Resumed: held deliveries go out in order of arrival", "ok"), reload()), { id: "resume" })
      : actionButton("Pause", async () => (await post(`${path}:pause`), notify("Paused: deliveries are kept pending until you resume", "ok"), reload()), { id: "pause" }),
    actionButton(
      "Send test message",
      async () => {
        fill(resultSlot, h("p", { class: "muted" }, "Sending…"));
        try {
          fill(resultSlot, testResult(await post(`${path}:test`)));
        } catch (error) {
          fill(resultSlot, errorBox(error));
        }
      },
      { id: "send-test" },
    ),
    actionButton(
      "Rotate secret",
      async () => {
        const answer = await patch(path, {}, { updateMask: "secret" });
        freshSecret = { id, secret: answer.generatedSecret, rotated: true };
        reload();
      },
      { id: "rotate-secret", "data-confirm": "Generate a new signing secret? The current one keeps signing beside it for the grace period." },
    ),
    actionButton(
      "Delete",
      async () => {
        await del(path);
        notify(`Deleted ${endpoint.name}`, "ok");
        navigate("#/endpoints");
      },
      { id: "delete", class: "danger", "data-confirm": `Delete the endpoint ${endpoint.name}? Filters no longer trigger it.` },
    ),
    h("a", { class: "button", href: `#/deliveries?endpoint=${encodeURIComponent(id)}` }, "Deliveries"),
  );

  const stats = statsOrError instanceof Error ? null : statsOrError[id];
  const [last, rate, failing, pending] = healthCells(stats).map((cell) => [...cell.childNodes]);
  const headerHints = Object.entries(endpoint.headerHints || {});
  fill(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/endpoints" }, "Endpoints"), " / ", endpoint.name),
    h("h1", {}, endpoint.name, " ", stateBadge(endpoint)),
    secret && secret.secret ? secretPanel(secret.secret, secret.rotated) : null,
    actions,
    resultSlot,
    h(
      "div",
      { class: "columns" },
      h(
        "section",
        { class: "card", id: "settings" },
        h("h2", {}, "Settings"),
        facts([
          ["Type", ENDPOINT_TYPES[endpoint.type] || endpoint.type],
          ["Target", h("code", {}, endpoint.target)],
          ["Description", endpoint.description || null],
          ["Disabled because", endpoint.disabledReason || null],
          ["Paused since", endpoint.paused ? timeCell(endpoint.pauseTime) : null],
          ["Secret", endpoint.secretHint ? h("code", {}, `…${endpoint.secretHint}`) : "none"],
          ["Previous secret", endpoint.previousSecretHint ? [h("code", {}, `…${endpoint.previousSecretHint}`), " until ", timeCell(endpoint.previousSecretExpireTime)] : null],
          ["Extra headers", headerHints.length ? headerHints.map(([name, hint]) => h("div", {}, h("code", {}, name), hint ? ` …${hint}` : "")) : null],
          ["Rate limit", endpoint.rateLimit && endpoint.rateLimit.requests ? `${endpoint.rateLimit.requests} per ${endpoint.rateLimit.period === "RATE_LIMIT_PERIOD_MINUTE" ? "minute" : "second"}` : "none"],
          ["Order", endpoint.order === "DELIVERY_ORDER_ORDERED" ? "ordered (one at a time)" : "unordered"],
          ["Created", timeCell(endpoint.createTime)],
          ["Updated", timeCell(endpoint.updateTime)],
          ["Id", h("code", {}, endpoint.id)],
        ]),
      ),
      h(
        "section",
        { class: "card", id: "health" },
        h("h2", {}, "Health"),
        statsOrError instanceof Error
          ? h("p", { class: "bad" }, `Unavailable: ${statsOrError instanceof ApiError ? statsOrError.describe() : statsOrError}`)
          : facts([
              ["Last attempt", last],
              ["Success, last 24 h", rate],
              ["Failing since", failing],
              ["Pending", pending],
            ]),
        h("h2", {}, "Filters triggering it"),
        triggering === null
          ? h("p", { class: "muted" }, "Unavailable")
          : triggering.length
            ? h("ul", { id: "triggering-filters" }, triggering.map((filter) => h("li", {}, h("a", { href: `#/filters/${encodeURIComponent(filter.id)}` }, filter.name || filter.id), filter.enabled ? "" : " (disabled)")))
            : h("p", { class: "muted" }, "None: no event reaches it. ", h("a", { href: "#/filters/new" }, "Create a filter")),
      ),
    ),
  );
}

/** #/endpoints/new */
export async function create(root) {
  endpointForm(root, null);
}

/** #/endpoints/ID/edit */
export async function edit(root, [id]) {
  endpointForm(root, await get(`/endpoints/${encodeURIComponent(id)}`));
}

function field(label, control, help, wide = false) {
  const id = control.id;
  return h("div", { class: `field${wide ? " wide" : ""}` }, h("label", { for: id }, label), control, help ? h("div", { class: "help" }, help) : null);
}

/** The create or edit form; on edit, only what changed is sent (the update mask names it). */
function endpointForm(root, endpoint) {
  const creating = endpoint === null;
  const original = endpoint || {};
  const typeSelect = h(
    "select",
    { id: "endpoint-type", name: "type", disabled: !creating, "data-field": "endpoint.type" },
    Object.entries(ENDPOINT_TYPES).map(([value, label]) => h("option", { value, selected: value === (original.type || "ENDPOINT_TYPE_WEBHOOK") }, label)),
  );
  const name = h("input", { id: "endpoint-name", name: "name", value: original.name || "", maxlength: 200, "data-field": "endpoint.name" });
  const description = h("textarea", { id: "endpoint-description", rows: 2, maxlength: 2000, "data-field": "endpoint.description" });
  description.value = original.description || "";
  const target = h("input", { id: "endpoint-target", name: "target", value: original.target || "", "data-field": "endpoint.target", autocomplete: "off" });
  const enabled = h("input", { type: "checkbox", id: "endpoint-enabled", checked: creating ? true : original.enabled });
  const secret = h("input", { id: "endpoint-secret", name: "secret", autocomplete: "off", "data-field": "endpoint.secret", placeholder: creating ? "Leave empty: hooks generates one and shows it once" : "Leave empty to keep the current one" });
  const ca = h("textarea", { id: "endpoint-ca", rows: 3, "data-field": "endpoint.ca_certificate", placeholder: "-----BEGIN CERTIFICATE-----" });
  ca.value = original.caCertificate || "";
  const rateRequests = h("input", { id: "endpoint-rate", type: "number", min: 1, max: 100000, value: original.rateLimit && original.rateLimit.requests ? original.rateLimit.requests : "", "data-field": "endpoint.rate_limit", placeholder: "no limit" });
  const ratePeriod = h(
    "select",
    { id: "endpoint-rate-period", "aria-label": "Rate limit period" },
    h("option", { value: "RATE_LIMIT_PERIOD_SECOND" }, "per second"),
    h("option", { value: "RATE_LIMIT_PERIOD_MINUTE", selected: original.rateLimit && original.rateLimit.period === "RATE_LIMIT_PERIOD_MINUTE" }, "per minute"),
  );
  const order = h(
    "select",
    { id: "endpoint-order", "data-field": "endpoint.order" },
    h("option", { value: "DELIVERY_ORDER_UNORDERED" }, "Unordered: several at once"),
    h("option", { value: "DELIVERY_ORDER_ORDERED", selected: original.order === "DELIVERY_ORDER_ORDERED" }, "Ordered: one at a time, in order of arrival"),
  );

  // Extra headers: values are write-only, so existing ones show their hint and are kept unless
  // given a new value or removed; each change is one `headers.<name>` path of the mask.
  const existingHeaders = Object.entries(original.headerHints || {}).map(([headerName, hint]) => ({
    name: headerName,
    remove: h("input", { type: "checkbox", "aria-label": `Remove ${headerName}` }),
    value: h("input", { autocomplete: "off", placeholder: hint ? `keep (…${hint})` : "keep", "aria-label": `New value of ${headerName}` }),
  }));
  const newHeaders = [];
  const headerRows = h("div", { class: "headers", "data-field": "endpoint.headers" });
  const addHeaderRow = () => {
    const row = { name: h("input", { placeholder: "Header name", "aria-label": "Header name", class: "header-name" }), value: h("input", { placeholder: "Value", "aria-label": "Header value", autocomplete: "off", class: "header-value" }) };
    newHeaders.push(row);
    headerRows.append(h("div", { class: "header-row" }, row.name, row.value));
  };
  fill(
    headerRows,
    existingHeaders.map((row) => h("div", { class: "header-row" }, h("code", {}, row.name), row.value, h("label", { class: "inline" }, row.remove, " remove"))),
  );

  const targetField = field("URL", target);
  const httpFields = h(
    "div",
    {},
    field("Extra headers", h("div", { id: "endpoint-headers" }, headerRows, h("button", { type: "button", class: "link", onclick: addHeaderRow }, "+ Add a header")), "Sent with every delivery; values are secrets, never shown back (often an Authorization header)."),
    field("CA certificate", ca, "A PEM certificate to trust for this endpoint's TLS, besides the system's.", true),
  );
  const secretField = field("Signing secret", secret, "Deliveries are signed per Standard Webhooks (webhook-signature). 24 to 64 bytes, optionally whsec_ and base64.");
  const applyType = () => {
    const info = TYPES[typeSelect.value];
    targetField.querySelector("label").textContent = info.target;
    target.placeholder = info.placeholder;
    target.type = info.http ? "url" : "email";
    httpFields.hidden = !info.http;
    secretField.hidden = !info.signed;
  };
  typeSelect.addEventListener("change", applyType);

  const errors = h("div", { class: "form-errors" });
  const form = h(
    "form",
    { class: "card form", id: "endpoint-form", novalidate: true },
    field("Type", typeSelect, creating ? "How the endpoint is reached; it cannot change later." : "Fixed once created."),
    field("Name", name, "Unique in your account."),
    targetField,
    field("Description", description, null, true),
    creating ? h("div", { class: "field" }, h("label", { class: "inline" }, enabled, " Enabled")) : null,
    secretField,
    httpFields,
    field("Rate limit", h("div", { class: "inline-controls" }, rateRequests, ratePeriod), "Requests at most; empty: no limit beyond the sender's concurrency."),
    field("Order", order),
    errors,
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "save-endpoint" }, creating ? "Create endpoint" : "Save"), h("a", { class: "button", href: creating ? "#/endpoints" : `#/endpoints/${encodeURIComponent(original.id)}` }, "Cancel")),
  );
  applyType();

  const rateLimit = () => (rateRequests.value ? { requests: Number(rateRequests.value), period: ratePeriod.value } : null);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    fill(errors);
    form.querySelectorAll(".invalid").forEach((element) => element.classList.remove("invalid"));
    const info = TYPES[typeSelect.value];
    const headers = {};
    const headerPaths = [];
    for (const row of newHeaders) {
      if (!row.name.value.trim()) continue;
      headers[row.name.value.trim()] = row.value.value;
      headerPaths.push(`headers.${row.name.value.trim().toLowerCase()}`);
    }
    for (const row of existingHeaders) {
      if (row.remove.checked) headerPaths.push(`headers.${row.name.toLowerCase()}`);
      else if (row.value.value) {
        headers[row.name] = row.value.value;
        headerPaths.push(`headers.${row.name.toLowerCase()}`);
      }
    }
    const button = form.querySelector("#save-endpoint");
    button.disabled = true;
    try {
      if (creating) {
        const body = { name: name.value.trim(), type: typeSelect.value, target: target.value.trim(), enabled: enabled.checked, description: description.value, order: order.value };
        if (info.signed && secret.value) body.secret = secret.value;
        if (info.http) {
          body.headers = headers;
          if (ca.value.trim()) body.caCertificate = ca.value;
        }
        if (rateLimit()) body.rateLimit = rateLimit();
        const made = await post("/endpoints", body);
        freshSecret = made.generatedSecret ? { id: made.id, secret: made.generatedSecret, rotated: false } : null;
        notify(`Created ${made.name}`, "ok");
        navigate(`#/endpoints/${encodeURIComponent(made.id)}`);
        return;
      }
      const body = {};
      const mask = [];
      const change = (path, key, value, before) => {
        if (value === before) return;
        mask.push(path);
        if (value !== null && value !== "") body[key] = value;
      };
      change("name", "name", name.value.trim(), original.name || "");
      change("description", "description", description.value, original.description || "");
      change("target", "target", target.value.trim(), original.target || "");
      change("caCertificate", "caCertificate", ca.value, original.caCertificate || "");
      change("order", "order", order.value, original.order === "DELIVERY_ORDER_ORDERED" ? "DELIVERY_ORDER_ORDERED" : "DELIVERY_ORDER_UNORDERED");
      const before = original.rateLimit && original.rateLimit.requests ? `${original.rateLimit.requests}/${original.rateLimit.period}` : "";
      const now = rateLimit() ? `${rateLimit().requests}/${rateLimit().period}` : "";
      if (before !== now) {
        mask.push("rateLimit");
        if (rateLimit()) body.rateLimit = rateLimit();
      }
      if (info.signed && secret.value) {
        mask.push("secret");
        body.secret = secret.value;
      }
      if (headerPaths.length) {
        mask.push(...headerPaths);
        body.headers = headers;
      }
      if (!mask.length) {
        notify("Nothing changed", "info");
        navigate(`#/endpoints/${encodeURIComponent(original.id)}`);
        return;
      }
      await patch(`/endpoints/${encodeURIComponent(original.id)}`, body, { updateMask: mask.join(",") });
      notify("Saved", "ok");
      navigate(`#/endpoints/${encodeURIComponent(original.id)}`);
    } catch (error) {
      showFieldErrors(form, errors, error);
    } finally {
      button.disabled = false;
    }
  });

  fill(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/endpoints" }, "Endpoints"), " / ", creating ? "New" : h("a", { href: `#/endpoints/${encodeURIComponent(original.id)}` }, original.name)),
    h("h1", {}, creating ? "New endpoint" : `Edit ${original.name}`),
    form,
  );
  name.focus();
}

/** An API error under the form, and each field it names marked on the control that holds it. */
export function showFieldErrors(form, slot, error) {
  if (!(error instanceof ApiError)) {
    notifyError(error);
    return;
  }
  fill(slot, errorBox(error));
  for (const violation of error.violations) {
    for (const control of form.querySelectorAll("[data-field]")) {
      const path = control.dataset.field;
      const camel = path.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
      if (violation.field === path || violation.field === camel || violation.field.startsWith(`${path}[`) || violation.field.startsWith(`${path}.`)) {
        control.classList.add("invalid");
      }
    }
  }
}
