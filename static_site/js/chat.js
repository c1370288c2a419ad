// Chat page: talks to the router like any OpenAI client would (streamed answers, rendered as
// the tokens arrive, with a Stop button), and shows what the router did with each request
// (model, request type, cost, turn id, gate) plus thumbs for explicit feedback.
import { ApiFailure, failureFromResponse, jsonBody, networkFailure, pageOrigin } from "./api.js";
import { feedbackOutcome, requestMessages, turnsUntilGate } from "./conversation.js";
import { formatUsd, h, replaceChildren, typeLabel } from "./dom.js";
import { loadSession, loadSiteConfig, normaliseApiUrl, saveSession } from "./settings.js";
import { hideHint, setStatus, showHint } from "./status.js";
import { SseReader, StreamedAnswer } from "./stream.js";

const PAGE = "chat";

const SCENARIOS = [
  {
    id: "debug",
    emoji: "🐛",
    title: "Debug my code",
    system:
      "You are a careful senior Python reviewer. Point at the exact line, explain the bug in one or two sentences, then show the corrected function.",
    starter:
      "This function should return the average of a list, but the result is wrong:\n\n" +
      "def average(values):\n    total = 0\n    for i in range(1, len(values)):\n        total += values[i]\n    return total / len(values)\n\n" +
      "print(average([2, 4, 6]))  # expected 4.0\n\nWhat's wrong with it?",
  },
  {
    id: "brainstorm",
    emoji: "💡",
    title: "Brainstorm a feature",
    system: "You are a pragmatic product designer. Offer concrete, buildable ideas; for each, say why users care and name one risk.",
    starter: "We run a small app where families share recipes. Brainstorm five features that would bring people back every week.",
  },
  {
    id: "explain",
    emoji: "📚",
    title: "Explain a concept",
    system: "You are a patient teacher. Start with the intuition, then a small worked example, then one common misconception.",
    starter: "Explain what a 95% credible interval of a Beta posterior means, with a small example about a success rate.",
  },
  {
    id: "write",
    emoji: "✍️",
    title: "Write something",
    system: "You are a clear, friendly writer. Keep it short, concrete and warm; no corporate filler.",
    starter:
      "Write a short message to my team: Friday's release moves to Monday because a load test failed, and say what we will do in the meantime.",
  },
];

const $ = (id) => document.getElementById(id);

const chat = {
  apiUrl: "",
  clientKey: "",
  router: "",
  sessionId: null,
  history: [],
  answers: new Map(),
  lastGate: null,
  busy: false,
  controller: null,
};

// ---------------------------------------------------------------- failures

function describe(failure, url) {
  if (failure.kind === "network") {
    return [
      "Cannot reach the API (network or CORS error).",
      `The browser could not read ${url}: ${failure.message}.`,
      `Check the API URL. If it is right, the API does not allow this page's origin (${pageOrigin()}) through CORS: ` +
        "the template allows its CloudFront site and one ExtraCorsOrigin parameter. Pages must be served over https or from localhost.",
    ];
  }
  if (failure.kind === "unauthorized") {
    return [
      "HTTP 401: the client key was rejected.",
      `The API said: ${failure.message}`,
      "Use a key created with `make create-key` (keys start with rk-; the local stack prints one when it starts).",
    ];
  }
  return [`HTTP ${failure.status}${failure.code ? ` (${failure.code})` : ""}: the request failed.`, `The API said: ${failure.message}`];
}

// ---------------------------------------------------------------- API calls

async function call(path, init = {}) {
  const url = new URL(path, chat.apiUrl).toString();
  const headers = { authorization: `Bearer ${chat.clientKey}`, ...(init.headers || {}) };
  let response;
  try {
    response = await fetch(url, { ...init, headers, cache: "no-store" });
  } catch (error) {
    throw Object.assign(networkFailure(error), { url });
  }
  return { response, url };
}

async function connect() {
  const apiUrl = normaliseApiUrl($("api-url").value);
  const clientKey = $("client-key").value.trim();
  if (!apiUrl) return showHint("Enter the API URL.", "An http(s) URL such as the stack output ApiUrl.");
  if (!clientKey) return showHint("Enter a client key.", "Keys start with rk-; create one with `make create-key`.");
  chat.apiUrl = apiUrl;
  chat.clientKey = clientKey;
  $("api-url").value = apiUrl;
  saveSession(PAGE, { apiUrl, clientKey });
  setStatus("connecting", "Connecting…");
  try {
    const { response, url } = await call("v1/models");
    if (!response.ok) throw Object.assign(await failureFromResponse(response), { url });
    const body = await jsonBody(response);
    const routers = (body.data || []).filter((m) => m.owned_by === "router").map((m) => String(m.id));
    if (routers.length === 0) {
      setStatus("error", "No routers");
      return showHint("The API lists no routers.", "Add a router to the configuration (routers.yaml) and redeploy.");
    }
    fillRouters(routers);
    hideHint();
    setStatus("live", "Connected");
    $("send-button").disabled = false;
  } catch (failure) {
    if (!(failure instanceof ApiFailure)) throw failure;
    setStatus("error", failure.kind === "network" ? "Unreachable" : `HTTP ${failure.status}`);
    $("send-button").disabled = true;
    showHint(...describe(failure, failure.url || apiUrl));
  }
}

function fillRouters(routers) {
  const select = $("router-select");
  const saved = loadSession(PAGE, ["router"]).router || chat.router;
  replaceChildren(select, routers.map((name) => h("option", { value: name, text: name })));
  select.disabled = false;
  select.value = routers.includes(saved) ? saved : routers[0];
  chat.router = select.value;
  saveSession(PAGE, { router: chat.router });
}

// ---------------------------------------------------------------- conversation

function newChat() {
  stop();
  chat.sessionId = null;
  chat.history = [];
  chat.answers.clear();
  chat.lastGate = null;
  replaceChildren($("messages"), $("chat-empty"));
  $("chat-empty").hidden = false;
  renderGate();
}

function pickScenario(scenario) {
  newChat();
  $("system-prompt").value = scenario.system;
  $("composer-input").value = scenario.starter;
  for (const button of document.querySelectorAll(".scenario")) {
    button.setAttribute("aria-pressed", String(button.dataset.scenario === scenario.id));
  }
  $("composer-input").focus();
}

function scrollBehavior() {
  return window.matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth";
}

function addBubble(role, text, extra = []) {
  $("chat-empty").hidden = true;
  const node = h("div", { className: `message message-${role}` }, h("div", { className: "bubble", text }), extra);
  $("messages").append(node);
  node.scrollIntoView({ block: "end", behavior: scrollBehavior() });
  return node;
}

function addError(failure, url) {
  const [title, ...lines] = describe(failure, url);
  const bubble = h("div", { className: "bubble" }, h("strong", { text: title }), ...lines.map((l) => h("div", { text: l })));
  const node = h("div", { className: "message message-system", attrs: { role: "alert" } }, bubble);
  $("messages").append(node);
  node.scrollIntoView({ block: "end" });
}

function setStreaming(controller) {
  chat.busy = Boolean(controller);
  chat.controller = controller;
  $("send-button").disabled = Boolean(controller) || !chat.apiUrl;
  // The Stop button disappears with the stream: keep the keyboard where the user types.
  if (!controller && document.activeElement === $("stop-button")) $("composer-input").focus();
  $("stop-button").hidden = !controller;
  // Screen readers announce the answer once it is whole, not token by token.
  $("messages").setAttribute("aria-busy", String(Boolean(controller)));
}

function stop() {
  if (chat.controller) chat.controller.abort();
}

async function send() {
  if (chat.busy) return;
  const input = $("composer-input");
  const text = input.value.trim();
  if (!text) return;
  if (!chat.apiUrl) return showHint("Connect first.", "Enter the API URL and your client key, then Connect.");
  chat.router = $("router-select").value;
  const controller = new AbortController();
  setStreaming(controller);
  const userMessage = { role: "user", content: text };
  const messages = requestMessages($("system-prompt").value, [...chat.history, userMessage]);
  const userNode = addBubble("user", text);
  input.value = "";
  const pending = addBubble("assistant", "Routing…");
  pending.classList.add("message-pending");
  const started = performance.now();
  let response;
  try {
    const headers = { "content-type": "application/json" };
    if (chat.sessionId) headers["x-router-session-id"] = chat.sessionId;
    const body = { model: chat.router, messages, stream: true, stream_options: { include_usage: true } };
    const sent = await call("v1/chat/completions", {
      method: "POST",
      headers,
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    response = sent.response;
    if (!response.ok) throw Object.assign(await failureFromResponse(response), { url: sent.url });
  } catch (failure) {
    pending.remove();
    userNode.remove();
    // Give the text back so nothing typed is lost.
    input.value = text;
    setStreaming(null);
    if (controller.signal.aborted) return;
    if (!(failure instanceof ApiFailure)) throw failure;
    if (failure.kind === "unauthorized") setStatus("error", "HTTP 401");
    addError(failure, failure.url || chat.apiUrl);
    return;
  }
  pending.remove();
  // "New chat" during the stream starts a new history: this answer stays with its own.
  const history = chat.history;
  history.push(userMessage);
  // The router's headers come with the response head: show what it chose before any token.
  const view = startAnswer(response.headers);
  const answer = new StreamedAnswer();
  let firstTokenMs = null;
  let ending = "done";
  try {
    for await (const added of answerPieces(response, answer)) {
      if (added && firstTokenMs === null) firstTokenMs = performance.now() - started;
      view.append(added);
    }
    if (answer.error) ending = "error";
    else if (!answer.done && !answer.finishReason) {
      ending = "error";
      answer.error = { message: "the stream ended before the answer was complete", type: "incomplete_stream", code: null };
    }
  } catch (error) {
    if (controller.signal.aborted) ending = "stopped";
    else {
      ending = "error";
      answer.error = { message: `the stream was cut: ${error && error.message ? error.message : error}`, type: "network", code: null };
    }
  }
  const shown = answer.content + answer.refusal;
  if (!shown && answer.toolCalls.length) view.append(answer.toolCallText());
  const content = shown || answer.toolCallText();
  if (content) history.push({ role: "assistant", content });
  view.finish(answer, { ending, totalMs: performance.now() - started, firstTokenMs });
  setStreaming(null);
  if (ending !== "error") setStatus("live", "Connected");
}

/** The text each read adds to the answer (one string per network read: one render each). A JSON
 * body (a server that does not stream) is applied as one piece. */
async function* answerPieces(response, answer) {
  const type = response.headers.get("content-type") || "";
  if (!type.includes("text/event-stream")) {
    const body = await jsonBody(response);
    const message = (body.choices && body.choices[0] && body.choices[0].message) || {};
    answer.content = typeof message.content === "string" ? message.content : "";
    answer.facts = body.router || null;
    answer.usage = body.usage || null;
    answer.done = true;
    yield answer.content;
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  const events = new SseReader();
  for (;;) {
    const { value, done } = await reader.read();
    const found = done ? [...events.push(decoder.decode()), ...events.end()] : events.push(decoder.decode(value, { stream: true }));
    let added = "";
    for (const event of found) {
      added += answer.apply(event.data);
      if (answer.done || answer.error) break;
    }
    yield added;
    if (done) return;
    if (answer.done || answer.error) {
      // The answer is whole (or failed): let the connection finish in the background.
      drain(reader);
      return;
    }
  }
}

async function drain(reader) {
  try {
    while (!(await reader.read()).done);
  } catch {
    // The server closed the connection: nothing was left to read.
  }
}

function meta(className, label, value, title) {
  return h("span", { className: `meta ${className}`, title }, label ? `${label} ` : "", h("strong", { text: value }));
}

/** The assistant's message as soon as the response head arrived: the router's choice (headers),
 * an empty bubble that grows as tokens arrive, thumbs enabled once the answer ends. */
function startAnswer(headers) {
  const model = headers.get("x-router-model") || "?";
  const requestType = headers.get("x-router-request-type") || "?";
  const turnId = headers.get("x-router-turn-id") || null;
  const sessionId = headers.get("x-router-session-id") || null;
  const fallback = headers.get("x-router-fallback") || null;
  if (sessionId) chat.sessionId = sessionId;

  const latency = meta("meta-latency", "", "…", "round trip measured in this browser");
  const cost = meta("meta-cost", "", "…", "cost of this answer");
  const metaLine = h(
    "div",
    { className: "answer-meta" },
    meta("meta-model", "model", model, "x-router-model: the model the router picked"),
    meta("meta-type", "type", typeLabel(requestType), "x-router-request-type: what the classifier saw"),
    latency,
    cost,
    // Turn ids start with the session id; their tail is what tells turns apart.
    turnId ? meta("meta-turn", "turn", shortTurn(turnId), `turn id ${turnId}`) : null,
    fallback ? meta("meta-fallback", "fallback", fallback, "the router's pick failed; another model answered") : null,
  );
  const outcome = h("span", { className: "outcome", attrs: { "aria-live": "polite" } });
  const up = h("button", { className: "button thumb", type: "button", text: "👍", title: "good answer", attrs: { "aria-label": "thumbs up" } });
  const down = h("button", { className: "button thumb", type: "button", text: "👎", title: "bad answer", attrs: { "aria-label": "thumbs down" } });
  up.disabled = down.disabled = true;
  const actions = h("div", { className: "answer-actions" }, up, down, outcome);
  const node = addBubble("assistant", "", [metaLine, actions]);
  const bubble = node.querySelector(".bubble");
  // Model text only ever goes into this text node: it is untrusted and never becomes markup.
  const text = document.createTextNode("");
  bubble.append(text);
  node.dataset.state = "streaming";
  node.dataset.turnId = turnId || "";
  node.dataset.model = model;
  node.dataset.requestType = requestType;
  if (turnId) chat.answers.set(turnId, node);
  const messages = $("messages");

  return {
    append(added) {
      if (!added) return;
      const atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
      text.appendData(added);
      // Follow the answer unless the reader scrolled up to read something else.
      if (atBottom) messages.scrollTop = messages.scrollHeight;
    },
    finish(answer, { ending, totalMs, firstTokenMs }) {
      const facts = answer.facts || {};
      node.dataset.state = ending;
      if (!node.isConnected) return; // a new chat was started while this answer streamed
      const finalTurn = turnId || facts.turn_id || null;
      if (!turnId && finalTurn) {
        node.dataset.turnId = finalTurn;
        chat.answers.set(finalTurn, node);
        metaLine.append(meta("meta-turn", "turn", shortTurn(finalTurn), `turn id ${finalTurn}`));
      }
      if (!chat.sessionId && facts.session_id) chat.sessionId = facts.session_id;
      latency.querySelector("strong").textContent = `${Math.round(totalMs)} ms`;
      latency.title =
        firstTokenMs === null ? "round trip measured in this browser" : `first token after ${Math.round(firstTokenMs)} ms; whole answer after ${Math.round(totalMs)} ms (this browser)`;
      cost.querySelector("strong").textContent = Number.isFinite(facts.cost_usd) ? formatUsd(facts.cost_usd) : "—";
      if (Number.isFinite(facts.baseline_cost_usd)) cost.title = `cost of this answer; ${formatUsd(facts.baseline_cost_usd)} on the priciest model`;
      const gate = facts.feedback_gate || null;
      if (gate) {
        chat.lastGate = gate;
        metaLine.append(meta("meta-gate", "", gate.passed ? "feedback counts" : `below gate ${gate.messages}/${gate.required}`, "signal gate of this answer"));
      }
      if (ending === "stopped") {
        bubble.append(h("span", { className: "stream-note", text: "⏹ stopped" }));
      } else if (ending === "error") {
        const error = answer.error || {};
        const code = error.code ? ` (${error.code})` : "";
        node.append(h("div", { className: "stream-error", attrs: { role: "alert" }, text: `The answer was cut off${code}: ${error.message}` }));
      }
      if (finalTurn) {
        up.disabled = down.disabled = false;
        up.addEventListener("click", () => rate(finalTurn, "up", { up, down, outcome }));
        down.addEventListener("click", () => rate(finalTurn, "down", { up, down, outcome }));
      } else {
        outcome.textContent = "No turn id: this answer cannot be rated.";
      }
      showImplicit(facts.implicit_feedback, metaLine);
      renderGate();
      node.scrollIntoView({ block: "end", behavior: scrollBehavior() });
    },
  };
}

function shortTurn(turnId) {
  return turnId.length > 14 ? `…${turnId.slice(-10)}` : turnId;
}

function showImplicit(implicit, metaLine) {
  if (!implicit || !implicit.turn_id) return;
  const thumb = implicit.reward >= 0.5 ? "👍" : "👎";
  const earlier = chat.answers.get(implicit.turn_id);
  const note = `The router read your follow-up as ${implicit.kind} (${thumb} ${Number(implicit.reward).toFixed(1)}) about this answer; it is applied once, in the background.`;
  if (earlier) earlier.append(h("div", { className: "implicit-note", text: note }));
  metaLine.append(meta("meta-implicit", "", `${thumb} implicit ${implicit.kind} on the previous answer`, note));
}

async function rate(turnId, rating, parts) {
  parts.up.disabled = parts.down.disabled = true;
  (rating === "up" ? parts.up : parts.down).setAttribute("aria-pressed", "true");
  parts.outcome.dataset.tone = "";
  parts.outcome.textContent = "Sending…";
  let result;
  try {
    const { response } = await call("v1/feedback", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ turn_id: turnId, rating }),
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    result = feedbackOutcome(response.status, body);
  } catch (failure) {
    if (!(failure instanceof ApiFailure)) throw failure;
    result = { tone: "bad", text: describe(failure, chat.apiUrl)[0], final: false };
  }
  parts.outcome.dataset.tone = result.tone;
  parts.outcome.textContent = result.text;
  if (!result.final) {
    parts.up.disabled = parts.down.disabled = false;
    (rating === "up" ? parts.up : parts.down).removeAttribute("aria-pressed");
  }
}

function renderGate() {
  const gate = chat.lastGate;
  const fill = $("gate-fill");
  if (!gate) {
    fill.style.width = "0%";
    $("gate-text").textContent = "Send a message to start.";
    $("gate-note").textContent =
      "Feedback moves the router once a conversation is long enough (its signal gate, counted in user and assistant messages).";
  } else {
    const remaining = turnsUntilGate(gate);
    fill.style.width = `${Math.min(100, (gate.messages / Math.max(1, gate.required)) * 100)}%`;
    $("gate-text").textContent =
      remaining === 0 ? "✅ Feedback counts: the router learns from this conversation." : `${remaining} more turn${remaining === 1 ? "" : "s"} until feedback counts`;
    $("gate-note").textContent = `${gate.messages} of ${gate.required} messages (user and assistant, answer included; the system prompt does not count).`;
  }
  const turns = chat.history.filter((m) => m.role === "assistant").length;
  $("session-facts").textContent = chat.sessionId ? `session ${chat.sessionId} · ${turns} answer${turns === 1 ? "" : "s"}` : "new session";
}

// ---------------------------------------------------------------- start

async function start() {
  const saved = loadSession(PAGE, ["apiUrl", "clientKey", "router"]);
  const site = await loadSiteConfig();
  // chatApiUrl: the deployed stack's streaming base URL (BaseUrl); apiUrl: the HTTP API.
  $("api-url").value = saved.apiUrl || site.chatApiUrl || site.apiUrl || "";
  $("client-key").value = saved.clientKey || site.clientKey || "";
  chat.router = saved.router || (Array.isArray(site.routers) && site.routers.length ? String(site.routers[0]) : "");

  replaceChildren(
    $("scenarios"),
    SCENARIOS.map((scenario) =>
      h(
        "button",
        {
          className: "scenario",
          type: "button",
          dataset: { scenario: scenario.id },
          attrs: { "aria-pressed": "false" },
          on: { click: () => pickScenario(scenario) },
        },
        h("span", { className: "emoji", text: scenario.emoji }),
        scenario.title,
      ),
    ),
  );
  $("connect").addEventListener("submit", (event) => {
    event.preventDefault();
    connect();
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  $("composer-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      send();
    }
  });
  $("stop-button").addEventListener("click", stop);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && chat.busy) {
      event.preventDefault();
      stop();
    }
  });
  $("router-select").addEventListener("change", (event) => {
    chat.router = event.target.value;
    saveSession(PAGE, { router: chat.router });
    newChat();
  });
  $("new-chat").addEventListener("click", () => {
    for (const button of document.querySelectorAll(".scenario")) button.setAttribute("aria-pressed", "false");
    newChat();
    $("composer-input").value = "";
    $("composer-input").focus();
  });
  renderGate();
  document.body.dataset.ready = "true";
  if (saved.apiUrl && saved.clientKey) connect();
}

start();
