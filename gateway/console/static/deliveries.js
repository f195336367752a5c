// Deliveries: the log (search by endpoint, status, event, application and time), a delivery's page
// with every attempt, retrying one or every failed one in view, and the live view
// (deliveries:watch, Server-Sent Events).

import { ApiError, get, listAll, post, stream } from "./api.js";
import { DELIVERY_STATUSES, facts, fill, formatDuration, h, localInputToRfc3339, rfc3339ToLocalInput, statusBadge, timeCell } from "./dom.js";
import { actionButton, errorBox, navigate, notify } from "./ui.js";

const PAGE_SIZE = 100;
/** Rows the live view keeps, newest first. */
const LIVE_ROWS = 200;

async function endpointNames() {
  const endpoints = await listAll("/endpoints", "endpoints").catch(() => []);
  return new Map(endpoints.map((endpoint) => [endpoint.id, endpoint.name]));
}

function eventLabel(event) {
  if (!event) return "";
  return [event.application, event.eventType, event.level].filter(Boolean).join(" / ");
}

function endpointLink(id, names) {
  return h("a", { href: `#/endpoints/${encodeURIComponent(id)}` }, names.get(id) || id);
}

function deliveryRow(delivery, names) {
  return h(
    "tr",
    { dataset: { id: delivery.id, status: delivery.status } },
    h("td", {}, timeCell(delivery.createTime)),
    h("td", {}, endpointLink(delivery.endpointId, names)),
    h("td", { class: "event" }, eventLabel(delivery.event)),
    h("td", { class: "small" }, h("code", {}, (delivery.event && delivery.event.id) || "")),
    h("td", { class: "status" }, statusBadge(delivery.status)),
    h("td", { class: "num attempts" }, String(delivery.attemptCount || 0)),
    h(
      "td",
      { class: "small" },
      delivery.lastError ? h("span", { class: "bad" }, delivery.lastError) : null,
      delivery.status === "DELIVERY_STATUS_PENDING" && delivery.nextAttemptTime ? h("div", { class: "muted" }, "next ", timeCell(delivery.nextAttemptTime)) : null,
    ),
    h("td", {}, h("a", { href: `#/deliveries/${encodeURIComponent(delivery.id)}`, class: "open-delivery" }, "Attempts")),
  );
}

function deliveryTable(id, deliveries, names) {
  return h(
    "table",
    { class: "grid", id },
    h("thead", {}, h("tr", {}, ["Created", "Endpoint", "Event", "Event id", "Status", "Attempts", "Last error", ""].map((label) => h("th", { scope: "col" }, label)))),
    h("tbody", {}, deliveries.map((delivery) => deliveryRow(delivery, names))),
  );
}

/** #/deliveries?endpoint=ID&status=DELIVERY_STATUS_FAILED&event=ID&application=NAME&after=T&before=T&page=TOKEN */
export async function list(root, _params, query) {
  const search = {
    endpoint: query.get("endpoint") || "",
    status: query.get("status") || "",
    event: query.get("event") || "",
    application: query.get("application") || "",
    after: query.get("after") || "",
    before: query.get("before") || "",
  };
  const [page, names, applications] = await Promise.all([
    get("/deliveries", {
      pageSize: PAGE_SIZE,
      pageToken: query.get("page") || "",
      endpointId: search.endpoint,
      status: search.status,
      eventId: search.event,
      application: search.application,
      createdAfter: search.after,
      createdBefore: search.before,
    }),
    endpointNames(),
    listAll("/applications", "applications").catch(() => []),
  ]);
  const deliveries = page.deliveries || [];

  const endpointSelect = h("select", { id: "search-endpoint", name: "endpoint" }, h("option", { value: "" }, "Any endpoint"), [...names].map(([id, name]) => h("option", { value: id, selected: id === search.endpoint }, name)));
  const statusSelect = h("select", { id: "search-status", name: "status" }, h("option", { value: "" }, "Any status"), Object.entries(DELIVERY_STATUSES).map(([value, label]) => h("option", { value, selected: value === search.status }, label)));
  const eventInput = h("input", { id: "search-event", name: "event", value: search.event, placeholder: "Event id" });
  const applicationSelect = h("select", { id: "search-application", name: "application" }, h("option", { value: "" }, "Any application"), applications.map((application) => h("option", { value: application.name, selected: application.name === search.application }, application.title || application.name)));
  const afterInput = h("input", { id: "search-after", type: "datetime-local", value: rfc3339ToLocalInput(search.after) });
  const beforeInput = h("input", { id: "search-before", type: "datetime-local", value: rfc3339ToLocalInput(search.before) });
  const form = h(
    "form",
    {
      class: "card search",
      id: "delivery-search",
      onsubmit: (event) => {
        event.preventDefault();
        const next = new URLSearchParams();
        const values = {
          endpoint: endpointSelect.value,
          status: statusSelect.value,
          event: eventInput.value.trim(),
          application: applicationSelect.value,
          after: localInputToRfc3339(afterInput.value),
          before: localInputToRfc3339(beforeInput.value),
        };
        for (const [name, value] of Object.entries(values)) if (value) next.set(name, value);
        navigate(`#/deliveries${next.toString() ? `?${next}` : ""}`);
      },
    },
    h("label", {}, "Endpoint", endpointSelect),
    h("label", {}, "Status", statusSelect),
    h("label", {}, "Event", eventInput),
    h("label", {}, "Application", applicationSelect),
    h("label", {}, "Created from", afterInput),
    h("label", {}, "until", beforeInput),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Search"), h("a", { class: "button", href: "#/deliveries" }, "Clear")),
  );

  // Retry in bulk selects by endpoint and creation time only (deliveries:retry): offered when the
  // view selects nothing narrower, so it never retries more than the view shows failed.
  const narrower = search.event || search.application || (search.status && search.status !== "DELIVERY_STATUS_FAILED");
  const retryResult = h("span", { id: "retry-all-result", "aria-live": "polite" });
  const retryAll = async () => {
    const answer = await post("/deliveries:retry", { endpointId: search.endpoint, createdAfter: search.after || undefined, createdBefore: search.before || undefined });
    const queued = Number(answer.queued || 0);
    fill(
      retryResult,
      `Queued ${queued} failed ${queued === 1 ? "delivery" : "deliveries"} again.`,
      answer.more ? [" More are left: ", actionButton("Queue the next ones", retryAll, { id: "retry-more" })] : "",
    );
  };
  const bulk = h(
    "div",
    { class: "toolbar" },
    narrower
      ? h("span", { class: "muted small" }, "Retry in bulk selects by endpoint and time only: clear the event, application and status (other than failed) to retry every failed delivery in view.")
      : actionButton("Retry all failed in this view", retryAll, {
          id: "retry-all",
          "data-confirm": "Queue a new attempt, now, of every failed delivery this view selects (by endpoint and time)?",
        }),
    retryResult,
  );

  fill(
    root,
    h("h1", {}, "Deliveries"),
    form,
    bulk,
    deliveries.length ? deliveryTable("deliveries", deliveries, names) : h("p", { class: "empty" }, "No deliveries match."),
    h(
      "div",
      { class: "pager" },
      query.get("page") ? h("a", { href: `#/deliveries?${withPage(query, "")}` }, "« First page") : null,
      page.nextPageToken ? h("a", { href: `#/deliveries?${withPage(query, page.nextPageToken)}`, id: "next-page" }, "Next page »") : null,
    ),
  );
}

function withPage(query, token) {
  const next = new URLSearchParams(query);
  if (token) next.set("page", token);
  else next.delete("page");
  return next.toString();
}

function renderDelivery(root, delivery, names, onRetry) {
  const event = delivery.event || {};
  const attempts = delivery.attempts || [];
  fill(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/deliveries" }, "Deliveries"), " / ", delivery.id),
    h("h1", {}, "Delivery ", statusBadge(delivery.status)),
    h(
      "div",
      { class: "actions" },
      actionButton("Retry now", onRetry, { id: "retry", class: "primary" }),
      h("a", { class: "button", href: `#/deliveries?endpoint=${encodeURIComponent(delivery.endpointId)}` }, "Deliveries of this endpoint"),
    ),
    h(
      "div",
      { class: "columns" },
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Delivery"),
        facts([
          ["Endpoint", endpointLink(delivery.endpointId, names)],
          ["Status", statusBadge(delivery.status)],
          ["Attempts", h("span", { id: "attempt-count" }, String(delivery.attemptCount || 0))],
          ["Next attempt", delivery.nextAttemptTime ? timeCell(delivery.nextAttemptTime) : null],
          ["Last error", delivery.lastError ? h("span", { class: "bad" }, delivery.lastError) : null],
          ["Created", timeCell(delivery.createTime)],
          ["Updated", timeCell(delivery.updateTime)],
          ["Id", h("code", {}, delivery.id)],
        ]),
      ),
      h(
        "section",
        { class: "card" },
        h("h2", {}, "Event"),
        facts([
          ["Application", event.application || ""],
          ["Event type", event.eventType || ""],
          ["Level", event.level || null],
          ["Happened", timeCell(event.timestamp)],
          ["Event id", h("code", {}, event.id || "")],
        ]),
        h("pre", { class: "json" }, JSON.stringify(event.message, null, 2)),
      ),
    ),
    h("h2", {}, "Attempts"),
    attempts.length
      ? h(
          "table",
          { class: "grid", id: "attempts" },
          h("thead", {}, h("tr", {}, ["#", "Time", "Result", "HTTP status", "Latency", "Response", "Error"].map((label) => h("th", { scope: "col" }, label)))),
          h(
            "tbody",
            {},
            attempts.map((attempt) =>
              h(
                "tr",
                { dataset: { number: attempt.number } },
                h("td", { class: "num" }, String(attempt.number)),
                h("td", {}, timeCell(attempt.startTime)),
                h("td", {}, attempt.succeeded ? h("span", { class: "ok" }, "✓ succeeded") : h("span", { class: "bad" }, "✗ failed")),
                h("td", { class: "num http-status" }, attempt.httpStatus ? String(attempt.httpStatus) : "—"),
                h("td", { class: "num" }, formatDuration(attempt.latency)),
                h("td", {}, attempt.responseBody ? h("pre", { class: "excerpt" }, attempt.responseBody) : h("span", { class: "muted" }, "—")),
                h("td", { class: "bad" }, attempt.error || ""),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No attempt yet."),
  );
}

/** #/deliveries/ID: while the delivery is pending, it is read again every second until it is not. */
export async function show(root, [id]) {
  const path = `/deliveries/${encodeURIComponent(id)}`;
  const [first, names] = await Promise.all([get(path), endpointNames()]);
  let timer = null;
  let stopped = false;
  const watch = (delivery) => {
    clearTimeout(timer);
    if (stopped || delivery.status !== "DELIVERY_STATUS_PENDING") return;
    timer = setTimeout(async () => {
      try {
        const now = await get(path);
        render(now);
      } catch (error) {
        root.prepend(errorBox(error));
      }
    }, 1000);
  };
  const render = (delivery) => {
    renderDelivery(root, delivery, names, async () => {
      const retried = await post(`${path}:retry`);
      notify("Queued a new attempt", "ok");
      render(retried);
    });
    watch(delivery);
  };
  render(first);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** #/live?endpoint=ID: deliveries as their status changes, from deliveries:watch; a dropped stream is
 * reconnected and resumed from the last event it gave (its SSE id, sent back as Last-Event-ID). */
export async function live(root, _params, query) {
  const names = await endpointNames();
  const endpointId = query.get("endpoint") || "";
  const controller = new AbortController();
  const state = h("span", { id: "live-state", class: "badge" }, "connecting");
  const body = h("tbody", {});
  const rows = new Map();
  const endpointSelect = h("select", { id: "live-endpoint", "aria-label": "Endpoint" }, h("option", { value: "" }, "All endpoints"), [...names].map(([id, name]) => h("option", { value: id, selected: id === endpointId }, name)));
  endpointSelect.addEventListener("change", () => navigate(`#/live${endpointSelect.value ? `?endpoint=${encodeURIComponent(endpointSelect.value)}` : ""}`));
  const table = deliveryTable("live", [], names);
  table.replaceChild(body, table.querySelector("tbody"));
  const empty = h("p", { class: "muted", id: "live-empty" }, "Waiting for deliveries… each one appears here as it is queued, attempted and done.");
  fill(root, h("h1", {}, "Live deliveries ", state), h("div", { class: "toolbar" }, endpointSelect), empty, table);

  const setState = (text, kind) => {
    state.textContent = text;
    state.className = `badge live-${kind}`;
  };
  // The last event's id: a reconnect resumes from it, so no change made meanwhile is missed.
  let lastEventId = "";
  const onEvent = (message, id) => {
    if (id) lastEventId = id;
    const delivery = message.delivery;
    if (!delivery) return;
    empty.hidden = true;
    const row = deliveryRow(delivery, names);
    const old = rows.get(delivery.id);
    if (old) old.remove();
    rows.set(delivery.id, row);
    body.prepend(row);
    while (rows.size > LIVE_ROWS) {
      const [oldest] = rows.keys();
      rows.get(oldest).remove();
      rows.delete(oldest);
    }
  };

  // Reconnects after a dropped stream, waiting longer after each failure (at most 30 s).
  (async () => {
    let wait = 1000;
    while (!controller.signal.aborted) {
      let failed = null;
      try {
        await stream("/deliveries:watch", { endpointId }, {
          signal: controller.signal,
          lastEventId,
          onOpen: () => {
            setState("live", "on");
            wait = 1000;
          },
          onEvent,
          onError: (error) => {
            failed = error;
            // A token the sender no longer accepts (too old): watch anew rather than fail forever.
            if (error.violations.some((violation) => violation.field === "resume_token")) lastEventId = "";
          },
        });
      } catch (error) {
        if (controller.signal.aborted) return;
        failed = error;
      }
      if (controller.signal.aborted) return;
      setState(failed ? `disconnected: ${failed instanceof ApiError ? failed.describe() : failed}` : "reconnecting", "off");
      await new Promise((resolve) => setTimeout(resolve, wait));
      wait = Math.min(wait * 2, 30000);
    }
  })();
  return () => controller.abort();
}
