// The console's entry: reads /console/config.json, signs in (the proxy's identity, or the development
// sign-in), and shows the page the location's hash names (#/endpoints, #/filters, #/deliveries, #/live).

import { useAccount } from "./api.js";
import { fill, h } from "./dom.js";
import { errorBox, navigate } from "./ui.js";
import * as deliveries from "./deliveries.js";
import * as endpoints from "./endpoints.js";
import * as filters from "./filters.js";

const DEV_ACCOUNT_KEY = "hooks.console.devAccount";
const main = document.getElementById("main");
const who = document.getElementById("who");
let config = { development: false, account: null };
let cleanup = null;

/** Routes: [pattern, render(main, params, query) → optional cleanup function]. */
const ROUTES = [
  [/^\/endpoints$/, endpoints.list],
  [/^\/endpoints\/new$/, endpoints.create],
  [/^\/endpoints\/([^/]+)\/edit$/, endpoints.edit],
  [/^\/endpoints\/([^/]+)$/, endpoints.show],
  [/^\/filters$/, filters.list],
  [/^\/filters\/new$/, filters.create],
  [/^\/filters\/([^/]+)$/, filters.edit],
  [/^\/deliveries$/, deliveries.list],
  [/^\/deliveries\/([^/]+)$/, deliveries.show],
  [/^\/live$/, deliveries.live],
  [/^\/signin$/, signIn],
];

function signedInAccount() {
  if (config.development) return localStorage.getItem(DEV_ACCOUNT_KEY);
  return config.account;
}

function showWho() {
  const account = signedInAccount();
  if (config.development) {
    fill(
      who,
      account ? h("span", {}, "Account ", h("strong", { id: "account" }, account), " (development sign-in) ") : "Not signed in ",
      h("a", { href: "#/signin" }, account ? "Switch account" : "Sign in"),
    );
  } else {
    fill(who, account ? h("span", {}, "Account ", h("strong", { id: "account" }, account)) : "");
  }
}

/** The development sign-in: pick the account the console sends an x-rh-identity for. */
function signIn(root) {
  if (!config.development) {
    fill(
      root,
      h("h1", {}, "Sign in"),
      h("p", {}, "The development sign-in is off: this gateway is not in development. The platform's proxy signs you in."),
    );
    return;
  }
  const input = h("input", { id: "signin-account", name: "account", required: true, maxlength: 64, value: localStorage.getItem(DEV_ACCOUNT_KEY) || "000001" });
  const form = h(
    "form",
    {
      class: "card narrow form",
      id: "signin",
      onsubmit: (event) => {
        event.preventDefault();
        const account = input.value.trim();
        if (!account) return;
        localStorage.setItem(DEV_ACCOUNT_KEY, account);
        useAccount(account);
        showWho();
        navigate("#/endpoints");
      },
    },
    h("h1", {}, "Development sign-in"),
    h(
      "p",
      {},
      "This gateway is in development (HOOKS_GATEWAY_DEVELOPMENT, which make run sets), so you may act as any account: ",
      "the console sends an x-rh-identity header for it. In production the platform's proxy adds that header and this page is off.",
    ),
    h("div", { class: "field" }, h("label", { for: "signin-account" }, "Account number"), input),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "signin-submit" }, "Sign in")),
  );
  fill(root, form);
  input.focus();
}

function route() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  const [path, search = ""] = (location.hash.replace(/^#/, "") || "/endpoints").split("?");
  if (config.development && !signedInAccount() && path !== "/signin") {
    location.hash = "#/signin";
    return;
  }
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("current", path.startsWith(link.getAttribute("href").slice(1)));
  }
  for (const [pattern, render] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    // Each page renders into a view of its own: one left behind by a quick navigation fills a
    // detached element, and its cleanup (a stream to stop) runs as soon as it is known.
    const view = h("div", { class: "view" }, h("p", { class: "muted" }, "Loading…"));
    fill(main, view);
    const params = match.slice(1).map(decodeURIComponent);
    Promise.resolve(render(view, params, new URLSearchParams(search)))
      .then((done) => {
        if (typeof done !== "function") return;
        if (view.isConnected) cleanup = done;
        else done();
      })
      .catch((error) => fill(view, errorBox(error)));
    return;
  }
  fill(main, h("h1", {}, "Not found"), h("p", {}, "No page here. ", h("a", { href: "#/endpoints" }, "Endpoints")));
}

async function start() {
  const response = await fetch("/console/config.json", { headers: { Accept: "application/json" } });
  config = await response.json();
  document.body.dataset.development = String(config.development);
  if (config.development) useAccount(localStorage.getItem(DEV_ACCOUNT_KEY));
  showWho();
  window.addEventListener("hashchange", route);
  route();
}

start().catch((error) => fill(main, h("div", { class: "notice notice-error", role: "alert" }, `The console could not start: ${error}`)));
