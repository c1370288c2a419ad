// The status pill in the top bar and the hint box under the connect bar, shared by both pages.
import { h, replaceChildren } from "./dom.js";

/** Set the top-bar status: `state` is off | connecting | live | paused | error (drives the dot colour). */
export function setStatus(state, text) {
  document.getElementById("status").dataset.state = state;
  document.getElementById("status-text").textContent = text;
}

/** Show the hint box: a bold title, then one paragraph per line (all as text). */
export function showHint(title, ...lines) {
  const hint = document.getElementById("hint");
  replaceChildren(hint, h("strong", { text: title }), ...lines.map((line) => h("p", {}, line)));
  hint.hidden = false;
}

export function hideHint() {
  document.getElementById("hint").hidden = true;
}
