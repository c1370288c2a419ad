// Connection settings live in sessionStorage only: they vanish with the tab, never reach
// localStorage or the URL (where they would leak into history, logs and Referer headers).

/** Read the saved values of `fields` (names) for `page`; missing ones are "". */
export function loadSession(page, fields) {
  const out = {};
  for (const field of fields) out[field] = sessionStorage.getItem(`adaptive-router.${page}.${field}`) || "";
  return out;
}

/** Save `values` (name → string) for `page`; empty strings remove the entry. */
export function saveSession(page, values) {
  for (const [field, value] of Object.entries(values)) {
    const key = `adaptive-router.${page}.${field}`;
    if (value) sessionStorage.setItem(key, value);
    else sessionStorage.removeItem(key);
  }
}

/** Forget `fields` of `page`. */
export function clearSession(page, fields) {
  for (const field of fields) sessionStorage.removeItem(`adaptive-router.${page}.${field}`);
}

/**
 * The site's ./config.json ({apiUrl, region, routers}) when the site serves one, else {}.
 * The local stack serves it; the deploy tool writes it next to the pages.
 */
export async function loadSiteConfig() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) return {};
    const data = await response.json();
    return data && typeof data === "object" ? data : {};
  } catch {
    return {};
  }
}

/** The API base URL with exactly one trailing slash, or "" when it is not an http(s) URL. */
export function normaliseApiUrl(raw) {
  const text = String(raw || "").trim();
  if (!text) return "";
  let url;
  try {
    url = new URL(text);
  } catch {
    return "";
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return "";
  url.search = "";
  url.hash = "";
  // Accept a base that already ends in /v1 (what OpenAI clients are given).
  const path = url.pathname.replace(/\/+$/, "").replace(/\/v1$/, "");
  return `${url.origin}${path}/`;
}
