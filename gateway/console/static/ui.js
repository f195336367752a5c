// What every page shares besides building elements: notices at the top of the page, and moving to
// another page.

import { ApiError } from "./api.js";
import { h } from "./dom.js";

/** A message at the top of the page: kind "ok", "error" or "info"; errors stay until dismissed. */
export function notify(text, kind = "info") {
  const notice = h(
    "div",
    { class: `notice notice-${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", { class: "notice-text" }, text),
    h("button", { type: "button", class: "link dismiss", "aria-label": "Dismiss", onclick: () => notice.remove() }, "×"),
  );
  const notices = document.getElementById("notices");
  notices.append(notice);
  while (notices.children.length > 3) notices.firstElementChild.remove();
  if (kind !== "error") setTimeout(() => notice.remove(), 4000);
}

/** An error as a notice: an ApiError's message and the fields it names, anything else as it is. */
export function notifyError(error) {
  notify(error instanceof ApiError ? error.describe() : String(error), "error");
}

/** An error shown in place of a page's content. */
export function errorBox(error) {
  return h("div", { class: "notice notice-error", role: "alert" }, error instanceof ApiError ? error.describe() : String(error));
}

/** Shows the page `hash` names (again, when it is the current one). */
export function navigate(hash) {
  if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
  else location.hash = hash;
}

/**
 * A button that runs `action` once per click: disabled while it runs, its error shown as a notice.
 * h-style attributes go in `attributes`.
 */
export function actionButton(label, action, attributes = {}) {
  const button = h("button", { type: "button", ...attributes }, label);
  button.addEventListener("click", async () => {
    if (attributes["data-confirm"] && !window.confirm(attributes["data-confirm"])) return;
    button.disabled = true;
    try {
      await action();
    } catch (error) {
      notifyError(error);
    } finally {
      button.disabled = false;
    }
  });
  return button;
}
