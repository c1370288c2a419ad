// The chat page's model of a conversation and of the router's signal gate. Pure functions: the
// browser tests import this module and compare it with the server's `router.feedback_gate`.

/** Messages the gate counts: user and assistant only (system, developer and tool excluded). */
export function conversationLength(messages) {
  return messages.filter((m) => m.role === "user" || m.role === "assistant").length;
}

/**
 * The gate of the answer to a request carrying `messages`, as the server computes it:
 * the answer adds one message; feedback counts when that total reaches `required`.
 * Returns {messages, required, passed}.
 */
export function gateForRequest(messages, required) {
  const total = conversationLength(messages) + 1;
  return { messages: total, required, passed: total >= required };
}

/**
 * How many more exchanges (one user message + one answer each) until an answer's feedback
 * counts, given the gate of the latest answer ({messages, required}). 0 when it counts already.
 */
export function turnsUntilGate(gate) {
  if (!gate || gate.messages >= gate.required) return 0;
  return Math.ceil((gate.required - gate.messages) / 2);
}

/** The request body's messages: the system prompt (when set) and then the whole history. */
export function requestMessages(systemPrompt, history) {
  const prompt = String(systemPrompt || "").trim();
  const messages = history.map((m) => ({ role: m.role, content: m.content }));
  return prompt ? [{ role: "system", content: prompt }, ...messages] : messages;
}

/** How a POST /v1/feedback answer reads to the user: {tone, text, final}. `final` disables the thumbs. */
export function feedbackOutcome(status, body) {
  const error = (body && body.error) || {};
  if (status === 200 && body && body.applied) {
    const cell = body.cell || {};
    const counts = Number.isFinite(cell.alpha) ? ` (now α ${cell.alpha.toFixed(1)} · β ${cell.beta.toFixed(1)})` : "";
    return { tone: "good", text: `Applied to ${cell.model || "the model"} on ${String(cell.request_type || "this type").replaceAll("_", " ")}${counts}.`, final: true };
  }
  if (status === 202) {
    const why = body && typeof body.message === "string" ? body.message : "the conversation was below the signal gate when this answer was given";
    return { tone: "warn", text: `Recorded, not applied: ${why.replace(/^recorded, not applied: /i, "")}.`, final: true };
  }
  if (status === 409 && error.code === "not_routed") {
    return { tone: "warn", text: "Not scored: this answer came from a model named directly, not from a router.", final: true };
  }
  if (status === 409) return { tone: "warn", text: "Already rated: each answer takes one explicit rating.", final: true };
  if (status === 404) return { tone: "bad", text: "Unknown turn: it expired, or belongs to another client key.", final: true };
  if (status === 429) return { tone: "bad", text: "Too much feedback this minute: try again shortly.", final: false };
  if (status === 401) return { tone: "bad", text: `The client key was rejected: ${error.message || "HTTP 401"}.`, final: false };
  return { tone: "bad", text: `Feedback failed (HTTP ${status}): ${error.message || "no details"}.`, final: false };
}
