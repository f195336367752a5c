// Filters: the list (what each matches and which endpoints it triggers), the builder, and the dry
// run ("this event would go to ...", messages:match). Everything a filter names is picked from what
// the applications API lists (applications, their event types, their levels), never typed in.

import { del, get, listAll, patch, post } from "./api.js";
import { fill, h } from "./dom.js";
import { showFieldErrors } from "./endpoints.js";
import { actionButton, errorBox, navigate, notify } from "./ui.js";

const SEP = "\u0000";

/** {name: application} of every registered application, and {id: endpoint} of the account's endpoints. */
async function catalogue() {
  const [applications, endpoints] = await Promise.all([listAll("/applications", "applications"), listAll("/endpoints", "endpoints")]);
  return {
    applications: new Map(applications.map((application) => [application.name, application])),
    endpoints: new Map(endpoints.map((endpoint) => [endpoint.id, endpoint])),
  };
}

function appTitle(applications, name) {
  const application = applications.get(name);
  return application ? application.title || name : name;
}

function eventTypeOf(applications, app, eventType) {
  const application = applications.get(app);
  return application ? (application.eventTypes || []).find((candidate) => candidate.id === eventType) : null;
}

function eventTypeTitle(applications, app, eventType) {
  const found = eventTypeOf(applications, app, eventType);
  return `${appTitle(applications, app)} / ${found ? found.title || eventType : eventType}`;
}

function levelTitle(applications, app, eventType, level) {
  const found = eventTypeOf(applications, app, eventType);
  const levelFound = found ? (found.levels || []).find((candidate) => candidate.id === level) : null;
  return levelFound ? levelFound.title || level : level;
}

/** What a filter matches, in words: one line per set, "any" for an empty one. */
export function describeFilter(filter, applications) {
  const apps = (filter.applications || []).map((name) => appTitle(applications, name));
  const types = (filter.eventTypes || []).map((ref) => eventTypeTitle(applications, ref.application, ref.eventType));
  const levels = (filter.levels || []).map((ref) => `${eventTypeTitle(applications, ref.application, ref.eventType)}: ${levelTitle(applications, ref.application, ref.eventType, ref.level)}`);
  return [
    h("div", {}, h("span", { class: "muted" }, "Applications: "), apps.length ? apps.join(" or ") : "any"),
    h("div", {}, h("span", { class: "muted" }, "Event types: "), types.length ? types.join(" or ") : "any"),
    h("div", {}, h("span", { class: "muted" }, "Levels: "), levels.length ? levels.join(" or ") : "any"),
  ];
}

function endpointLinks(ids, endpoints) {
  return ids.map((id, index) => [
    index ? ", " : "",
    h("a", { href: `#/endpoints/${encodeURIComponent(id)}`, class: "triggered-endpoint" }, endpoints.has(id) ? endpoints.get(id).name : id),
  ]);
}

/** #/filters?page=TOKEN */
export async function list(root, _params, query) {
  const [page, { applications, endpoints }] = await Promise.all([get("/filters", { pageSize: 100, pageToken: query.get("page") || "" }), catalogue()]);
  const filters = page.filters || [];
  const filterNames = new Map(filters.map((filter) => [filter.id, filter.name || filter.id]));
  fill(
    root,
    h("h1", {}, "Filters"),
    h("p", { class: "muted" }, "A filter matches an event when every set it names contains it (an empty set matches everything), and sends it to the endpoints it triggers."),
    h("div", { class: "toolbar" }, h("span", { class: "spacer" }), h("a", { class: "button primary", href: "#/filters/new" }, "New filter")),
    filters.length
      ? h(
          "table",
          { class: "grid", id: "filters" },
          h("thead", {}, h("tr", {}, ["Name", "State", "Matches", "Triggers"].map((label) => h("th", { scope: "col" }, label)))),
          h(
            "tbody",
            {},
            filters.map((filter) =>
              h(
                "tr",
                { dataset: { id: filter.id } },
                h("td", {}, h("a", { href: `#/filters/${encodeURIComponent(filter.id)}`, class: "filter-name" }, filter.name || "(unnamed)")),
                h("td", {}, h("span", { class: `badge ${filter.enabled ? "state-enabled" : "state-disabled"}` }, filter.enabled ? "enabled" : "disabled")),
                h("td", { class: "small" }, describeFilter(filter, applications)),
                h("td", { class: "triggers" }, endpointLinks(filter.endpointIds || [], endpoints)),
              ),
            ),
          ),
        )
      : h("p", { class: "empty" }, "No filters yet: no event reaches any endpoint. ", h("a", { href: "#/filters/new" }, "Create one")),
    page.nextPageToken ? h("div", { class: "pager" }, h("a", { href: `#/filters?page=${encodeURIComponent(page.nextPageToken)}` }, "Next page »")) : null,
    dryRun(applications, endpoints, filterNames),
  );
}

/** The dry run: pick an event (application, event type, level); messages:match says where it would go. */
function dryRun(applications, endpoints, filterNames) {
  const appSelect = h("select", { id: "match-application", "aria-label": "Application" });
  const typeSelect = h("select", { id: "match-event-type", "aria-label": "Event type" });
  const levelSelect = h("select", { id: "match-level", "aria-label": "Level" });
  const result = h("div", { id: "match-result", "aria-live": "polite" });
  const options = (select, items) => fill(select, items.map(([value, label]) => h("option", { value }, label)));
  const fillLevels = () => {
    const eventType = eventTypeOf(applications, appSelect.value, typeSelect.value);
    const levels = (eventType && eventType.levels) || [];
    options(levelSelect, levels.length ? levels.map((level) => [level.id, level.title || level.id]) : [["", "(no levels)"]]);
    levelSelect.disabled = !levels.length;
  };
  const fillTypes = () => {
    const application = applications.get(appSelect.value);
    options(typeSelect, ((application && application.eventTypes) || []).map((eventType) => [eventType.id, eventType.title || eventType.id]));
    fillLevels();
  };
  options(appSelect, [...applications.values()].map((application) => [application.name, application.title || application.name]));
  appSelect.addEventListener("change", fillTypes);
  typeSelect.addEventListener("change", fillLevels);
  fillTypes();
  const check = actionButton(
    "Where would it go?",
    async () => {
      const answer = await post("/messages:match", { application: appSelect.value, eventType: typeSelect.value, level: levelSelect.value });
      const routes = answer.routes || [];
      fill(
        result,
        routes.length
          ? [
              h("p", {}, "This event would go to:"),
              h(
                "ul",
                { class: "routes" },
                routes.map((route) =>
                  h(
                    "li",
                    {},
                    endpointLinks([route.endpointId], endpoints),
                    h("span", { class: "muted" }, " by "),
                    (route.filterIds || []).map((id, index) => [index ? ", " : "", h("a", { href: `#/filters/${encodeURIComponent(id)}` }, filterNames.get(id) || id)]),
                  ),
                ),
              ),
            ]
          : h("p", {}, "This event would go nowhere: no enabled filter of yours matches it."),
      );
    },
    { id: "match", class: "primary" },
  );
  return h(
    "section",
    { class: "card", id: "dry-run" },
    h("h2", {}, "Dry run"),
    h("p", { class: "muted" }, "Which endpoints an event would reach, and which filters send it there. Nothing is published or delivered."),
    h("div", { class: "toolbar" }, appSelect, typeSelect, levelSelect, check),
    result,
  );
}

/** #/filters/new */
export async function create(root) {
  filterForm(root, null, await catalogue());
}

/** #/filters/ID */
export async function edit(root, [id]) {
  const [filter, known] = await Promise.all([get(`/filters/${encodeURIComponent(id)}`), catalogue()]);
  filterForm(root, filter, known);
}

function checkbox(label, checked, attributes, onchange) {
  const input = h("input", { type: "checkbox", checked, ...attributes });
  input.addEventListener("change", () => onchange(input.checked));
  return h("label", { class: "check" }, input, " ", label);
}

/** The builder: applications, then the event types of those (of all when none is picked), then the
 * levels of the event types picked; and the endpoints it triggers. */
function filterForm(root, filter, { applications, endpoints }) {
  const creating = filter === null;
  const original = filter || { enabled: true };
  const apps = new Set(original.applications || []);
  const types = new Set((original.eventTypes || []).map((ref) => [ref.application, ref.eventType].join(SEP)));
  const levels = new Set((original.levels || []).map((ref) => [ref.application, ref.eventType, ref.level].join(SEP)));
  const targets = new Set(original.endpointIds || []);

  const name = h("input", { id: "filter-name", maxlength: 200, value: original.name || "", "data-field": "filter.name" });
  const enabled = h("input", { type: "checkbox", id: "filter-enabled", checked: original.enabled });
  const appBox = h("div", { class: "choices", id: "filter-applications", "data-field": "filter.applications" });
  const typeBox = h("div", { class: "choices", id: "filter-event-types", "data-field": "filter.event_types" });
  const levelBox = h("div", { class: "choices", id: "filter-levels", "data-field": "filter.levels" });
  const endpointBox = h("div", { class: "choices tall", id: "filter-endpoints", "data-field": "filter.endpoint_ids" });
  const endpointSearch = h("input", { type: "search", placeholder: "Find an endpoint…", "aria-label": "Find an endpoint", id: "filter-endpoint-search" });
  const summary = h("div", { class: "summary", id: "filter-summary" });

  const visibleApps = () => (apps.size ? [...apps].filter((app) => applications.has(app)) : [...applications.keys()]);
  const render = () => {
    fill(
      appBox,
      [...applications.values()].map((application) =>
        checkbox(application.title ? `${application.title} (${application.name})` : application.name, apps.has(application.name), { dataset: { app: application.name } }, (on) => {
          if (on) apps.add(application.name);
          else apps.delete(application.name);
          render();
        }),
      ),
    );
    // Event types of the applications picked: a pick under an application no longer picked is dropped.
    const shownTypes = [];
    for (const app of visibleApps()) for (const eventType of applications.get(app).eventTypes || []) shownTypes.push([app, eventType]);
    const shownTypeKeys = new Set(shownTypes.map(([app, eventType]) => [app, eventType.id].join(SEP)));
    for (const key of [...types]) if (!shownTypeKeys.has(key)) types.delete(key);
    fill(
      typeBox,
      shownTypes.length
        ? shownTypes.map(([app, eventType]) =>
            checkbox(`${appTitle(applications, app)} / ${eventType.title || eventType.id}`, types.has([app, eventType.id].join(SEP)), { dataset: { app, eventType: eventType.id } }, (on) => {
              const key = [app, eventType.id].join(SEP);
              if (on) types.add(key);
              else types.delete(key);
              render();
            }),
          )
        : h("p", { class: "muted" }, "No event types."),
    );
    // Levels of the event types picked (of every event type shown when none is).
    const levelTypes = types.size ? shownTypes.filter(([app, eventType]) => types.has([app, eventType.id].join(SEP))) : shownTypes;
    const shownLevels = [];
    for (const [app, eventType] of levelTypes) for (const level of eventType.levels || []) shownLevels.push([app, eventType, level]);
    const shownLevelKeys = new Set(shownLevels.map(([app, eventType, level]) => [app, eventType.id, level.id].join(SEP)));
    for (const key of [...levels]) if (!shownLevelKeys.has(key)) levels.delete(key);
    fill(
      levelBox,
      shownLevels.length
        ? shownLevels.map(([app, eventType, level]) =>
            checkbox(`${appTitle(applications, app)} / ${eventType.title || eventType.id}: ${level.title || level.id}`, levels.has([app, eventType.id, level.id].join(SEP)), { dataset: { app, eventType: eventType.id, level: level.id } }, (on) => {
              const key = [app, eventType.id, level.id].join(SEP);
              if (on) levels.add(key);
              else levels.delete(key);
              render();
            }),
          )
        : h("p", { class: "muted" }, "No levels to pick."),
    );
    fill(summary, h("strong", {}, "Matches: "), describeFilter(body(), applications));
  };
  const renderEndpoints = () => {
    const needle = endpointSearch.value.trim().toLowerCase();
    const shown = [...endpoints.values()].filter((endpoint) => targets.has(endpoint.id) || !needle || endpoint.name.toLowerCase().includes(needle));
    fill(
      endpointBox,
      shown.length
        ? shown.slice(0, 200).map((endpoint) =>
            checkbox(endpoint.name, targets.has(endpoint.id), { dataset: { endpoint: endpoint.id } }, (on) => {
              if (on) targets.add(endpoint.id);
              else targets.delete(endpoint.id);
            }),
          )
        : h("p", { class: "muted" }, endpoints.size ? "No endpoint's name contains that." : "No endpoints yet: create one first."),
      shown.length > 200 ? h("p", { class: "muted small" }, `${shown.length - 200} more: narrow the search.`) : null,
    );
  };
  endpointSearch.addEventListener("input", renderEndpoints);

  function body() {
    return {
      name: name.value.trim(),
      enabled: enabled.checked,
      applications: [...apps],
      eventTypes: [...types].map((key) => {
        const [application, eventType] = key.split(SEP);
        return { application, eventType };
      }),
      levels: [...levels].map((key) => {
        const [application, eventType, level] = key.split(SEP);
        return { application, eventType, level };
      }),
      endpointIds: [...targets],
    };
  }

  const errors = h("div", { class: "form-errors" });
  const form = h(
    "form",
    { class: "card form", id: "filter-form", novalidate: true },
    h("div", { class: "field" }, h("label", { for: "filter-name" }, "Name"), name),
    h("div", { class: "field" }, h("label", { class: "inline" }, enabled, " Enabled")),
    h("fieldset", {}, h("legend", {}, "Applications ", h("span", { class: "muted" }, "(none picked: any)")), appBox),
    h("fieldset", {}, h("legend", {}, "Event types ", h("span", { class: "muted" }, "(none picked: any)")), typeBox),
    h("fieldset", {}, h("legend", {}, "Levels ", h("span", { class: "muted" }, "(none picked: any)")), levelBox),
    h("fieldset", {}, h("legend", {}, "Send to these endpoints ", h("span", { class: "muted" }, "(at least one)")), endpointSearch, endpointBox),
    summary,
    errors,
    h(
      "div",
      { class: "actions" },
      h("button", { type: "submit", class: "primary", id: "save-filter" }, creating ? "Create filter" : "Save"),
      h("a", { class: "button", href: "#/filters" }, "Cancel"),
      creating
        ? null
        : actionButton(
            "Delete",
            async () => {
              await del(`/filters/${encodeURIComponent(original.id)}`);
              notify("Filter deleted", "ok");
              navigate("#/filters");
            },
            { class: "danger", id: "delete-filter", "data-confirm": "Delete this filter? The events it matched no longer go to its endpoints." },
          ),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    fill(errors);
    form.querySelectorAll(".invalid").forEach((element) => element.classList.remove("invalid"));
    const button = form.querySelector("#save-filter");
    button.disabled = true;
    try {
      if (creating) await post("/filters", body());
      else await patch(`/filters/${encodeURIComponent(original.id)}`, body(), { updateMask: "name,enabled,applications,eventTypes,levels,endpointIds" });
      notify(creating ? "Filter created" : "Filter saved", "ok");
      navigate("#/filters");
    } catch (error) {
      showFieldErrors(form, errors, error);
    } finally {
      button.disabled = false;
    }
  });
  render();
  renderEndpoints();
  fill(
    root,
    h("p", { class: "crumbs" }, h("a", { href: "#/filters" }, "Filters"), " / ", creating ? "New" : original.name || original.id),
    h("h1", {}, creating ? "New filter" : `Filter ${original.name || ""}`),
    form,
  );
  if (!applications.size) root.append(errorBox("No application is registered yet: there is nothing to filter on."));
}
