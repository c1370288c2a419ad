// Reading an OpenAI-style streamed chat answer: server-sent events in, the answer so far out.
// Pure (no DOM, no fetch): the browser tests import this module and feed it split streams.

/**
 * Server-sent events from text that arrives in arbitrary pieces. `push(text)` returns the
 * events completed by that piece ({event, data}: data lines joined by "\n"); a piece may end
 * mid-line or mid-event, or hold several events. `end()` returns an event left unterminated
 * when the stream closed (servers that omit the last blank line). Comments (":") are skipped.
 */
export class SseReader {
  constructor() {
    this.pending = "";
    this.data = [];
    this.event = "";
  }

  push(text) {
    let buffer = this.pending + text;
    // A trailing CR may be the first half of a CRLF: keep it until the next piece.
    const heldCr = buffer.endsWith("\r");
    if (heldCr) buffer = buffer.slice(0, -1);
    const lines = buffer.replace(/\r\n?/g, "\n").split("\n");
    this.pending = lines.pop() + (heldCr ? "\r" : "");
    const events = [];
    for (const line of lines) this.#line(line, events);
    return events;
  }

  end() {
    const events = [];
    const rest = this.pending.replace(/\r$/, "");
    this.pending = "";
    if (rest) this.#line(rest, events);
    this.#line("", events);
    return events;
  }

  #line(line, events) {
    if (line === "") {
      if (this.data.length) events.push({ event: this.event || "message", data: this.data.join("\n") });
      this.data = [];
      this.event = "";
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
  }
}

/**
 * One streamed answer, built from `chat.completion.chunk` events (first choice shown; others
 * ignored). `apply(data)` takes one event's data and returns the text it adds to the visible
 * answer ("" for role, usage, finish and router chunks). After an `{"error": …}` event,
 * `error` holds {message, type, code}; after `[DONE]`, `done` is true.
 */
export class StreamedAnswer {
  constructor() {
    this.content = "";
    this.refusal = "";
    this.toolCalls = [];
    this.finishReason = null;
    this.facts = null;
    this.usage = null;
    this.model = null;
    this.error = null;
    this.done = false;
    this.chunks = 0;
  }

  apply(data) {
    if (data.trim() === "[DONE]") {
      this.done = true;
      return "";
    }
    let chunk;
    try {
      chunk = JSON.parse(data);
    } catch {
      this.error = { message: "the API sent an event that is not JSON", type: "invalid_stream", code: null };
      return "";
    }
    if (!chunk || typeof chunk !== "object") return "";
    if (chunk.error) {
      const e = typeof chunk.error === "object" ? chunk.error : { message: String(chunk.error) };
      this.error = { message: String(e.message || "the stream failed"), type: e.type || null, code: e.code || null };
      return "";
    }
    this.chunks += 1;
    if (chunk.model) this.model = String(chunk.model);
    if (chunk.router && typeof chunk.router === "object") this.facts = chunk.router;
    if (chunk.usage) this.usage = chunk.usage;
    const choice = (chunk.choices || []).find((c) => (c.index || 0) === 0);
    if (!choice) return "";
    if (choice.finish_reason) this.finishReason = choice.finish_reason;
    const delta = choice.delta || {};
    let added = "";
    if (typeof delta.content === "string") added += delta.content;
    if (typeof delta.refusal === "string") {
      this.refusal += delta.refusal;
      added += delta.refusal;
    }
    for (const call of delta.tool_calls || []) this.#toolCall(call);
    this.content += typeof delta.content === "string" ? delta.content : "";
    return added;
  }

  #toolCall(call) {
    const at = Number.isInteger(call.index) ? call.index : this.toolCalls.length;
    const slot = (this.toolCalls[at] ||= { id: null, type: "function", function: { name: "", arguments: "" } });
    if (call.id) slot.id = call.id;
    if (call.type) slot.type = call.type;
    const fn = call.function || {};
    if (fn.name) slot.function.name += fn.name;
    if (typeof fn.arguments === "string") slot.function.arguments += fn.arguments;
  }

  /** The tool calls as one readable line each ("name(arguments)"), for an answer without text. */
  toolCallText() {
    return this.toolCalls
      .filter(Boolean)
      .map((c) => `${c.function.name || "tool"}(${c.function.arguments})`)
      .join("\n");
  }
}
