// What went wrong talking to the API, in terms a page can explain to its user.

/** A failed API call: `kind` is network | unauthorized | forbidden | not_found | conflict |
 * rate_limited | client | server; `status` is the HTTP status (0 for network failures). */
export class ApiFailure extends Error {
  constructor(kind, status, message, code = null) {
    super(message);
    this.kind = kind;
    this.status = status;
    this.code = code;
  }
}

function kindOf(status) {
  if (status === 401) return "unauthorized";
  if (status === 403) return "forbidden";
  if (status === 404) return "not_found";
  if (status === 409) return "conflict";
  if (status === 429) return "rate_limited";
  return status >= 500 ? "server" : "client";
}

/**
 * Build an ApiFailure from a non-2xx response. Reads the OpenAI error shape
 * ({"error": {"message", "code"}}) and API Gateway's own ({"message": "Forbidden"}).
 */
export async function failureFromResponse(response) {
  let message = `HTTP ${response.status}`;
  let code = null;
  try {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (body && body.error && typeof body.error === "object") {
        message = String(body.error.message || message);
        code = body.error.code ? String(body.error.code) : null;
      } else if (body && typeof body.message === "string") {
        message = body.message;
      }
    } catch {
      if (text.trim()) message = text.trim().slice(0, 300);
    }
  } catch {
    // The body could not be read; the status says enough.
  }
  return new ApiFailure(kindOf(response.status), response.status, message, code);
}

/** A fetch that never reached an answer: DNS, refused connection, or a CORS rejection. */
export function networkFailure(error) {
  const detail = error && error.message ? error.message : String(error);
  return new ApiFailure("network", 0, detail);
}

/** Parse a successful response's JSON body; a body that is not JSON is a server failure. */
export async function jsonBody(response) {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new ApiFailure("server", response.status, "the API answered with something that is not JSON");
  }
}

/** The origin this page runs on, for CORS hints ("https://d123.cloudfront.net"). */
export function pageOrigin() {
  return window.location.origin;
}
