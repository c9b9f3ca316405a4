// The chat page: a bot's visitor chat, streamed over SSE read from a POST with fetch.
import { render } from "./md.js";

const $ = (id) => document.getElementById(id);
const botId = decodeURIComponent(location.pathname.split("/")[2] || "");
const api = `/api/v1/chat/${encodeURIComponent(botId)}`;
const query = new URLSearchParams(location.search);
const embed = query.get("embed") === "1";
const preview = query.get("preview") === "1"; // the dashboard's preview: never take the focus
const storeKey = `botgpt.session.${botId}`;
let sessionId = sessionStorage.getItem(storeKey);
let config = null;
let busy = null; // the AbortController of the reply being generated

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

function notice(text) {
  const box = el("p", "notice", text);
  box.setAttribute("role", "alert");
  $("log").append(box);
  return box;
}

function scroll() { const log = $("log"); log.scrollTop = log.scrollHeight; }

function userBubble(text) {
  const node = el("div", "msg user");
  node.append(render(text));
  $("log").append(node);
  scroll();
  return node;
}

function citationChip(msg, cite) {
  const chip = el("button", "chip", String(cite.number));
  chip.type = "button";
  const where = [cite.document_name || "document", cite.page != null ? `page ${cite.page}` : ""].filter(Boolean).join(", ");
  chip.setAttribute("aria-label", `Source ${cite.number}: ${where}`);
  chip.setAttribute("aria-expanded", "false");
  chip.addEventListener("click", () => {
    const open = msg.querySelector(`.passage[data-n="${cite.number}"]`);
    msg.querySelectorAll(".passage").forEach((p) => p.remove());
    msg.querySelectorAll(".chip").forEach((c) => c.setAttribute("aria-expanded", "false"));
    if (open) return;
    const box = el("div", "passage");
    box.dataset.n = String(cite.number);
    box.append(el("strong", "", `[${cite.number}] ${where}`), el("div", "", cite.snippet || ""));
    msg.append(box);
    chip.setAttribute("aria-expanded", "true");
  });
  return chip;
}

function botBubble() {
  const node = el("div", "msg bot");
  const body = el("div", "body");
  node.append(body);
  $("log").append(node);
  return node;
}

function fill(node, text, message) {
  const cites = (message && message.citations) || [];
  const byNumber = new Map(cites.map((c) => [c.number, c]));
  const body = node.querySelector(".body");
  body.replaceChildren(render(text, (n) => (byNumber.has(n) ? citationChip(node, byNumber.get(n)) : null)));
}

function finish(node, message, retryText) {
  node.querySelectorAll(".state, .tools").forEach((n) => n.remove());
  const status = message ? message.status : "failed";
  if (status === "failed" || status === "cancelled" || status === "interrupted") {
    const state = el("div", "state error", status === "cancelled" ? "Reply stopped." : (message && message.error && message.error.message) || "The reply failed.");
    node.append(state);
    if (retryText) {
      const retry = el("button", "", "Retry");
      retry.type = "button";
      retry.addEventListener("click", () => { node.remove(); send(retryText); });
      const tools = el("div", "tools");
      tools.append(retry);
      node.append(tools);
    }
    return;
  }
  if (!message || !message.id) return;
  if (status !== "complete") {
    node.append(el("div", "state muted", "This reply is still being written; reload in a moment."));
    return;
  }
  const tools = el("div", "tools");
  const cites = (message.citations || []).filter((c) => c.cited_in_answer !== false);
  if (cites.length) {
    tools.append(el("span", "muted", "Sources:"));
    cites.forEach((c) => tools.append(citationChip(node, c)));
  }
  for (const [rating, label] of [["up", "Helpful"], ["down", "Not helpful"]]) {
    const b = el("button", "", label);
    b.type = "button";
    b.setAttribute("aria-pressed", "false");
    b.dataset.rating = rating;
    b.addEventListener("click", async () => {
      const r = await fetch(`${api}/messages/${encodeURIComponent(message.id)}/feedback`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ session_id: sessionId, rating }),
      });
      if (r.ok) tools.querySelectorAll("[data-rating]").forEach((x) => x.setAttribute("aria-pressed", String(x === b)));
    });
    tools.append(b);
  }
  node.append(tools);
}

function explain(status, payload) {
  if (status === 429) return "You have reached the message limit for now. Please try again later.";
  if (status === 404 || status === 403) return "This assistant is not available.";
  return (payload && payload.error && payload.error.message) || "Something went wrong. Please try again.";
}

function setBusy(controller) {
  busy = controller;
  $("stop").classList.toggle("hidden", !controller);
  $("send").disabled = Boolean(controller);
  $("composer").setAttribute("aria-busy", String(Boolean(controller)));
}

async function* frames(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) yield { event, data: JSON.parse(data) };
    }
  }
}

async function send(text) {
  if (busy || !text.trim()) return;
  $("starters").replaceChildren();
  userBubble(text);
  const node = botBubble();
  node.setAttribute("aria-busy", "true");
  const controller = new AbortController();
  setBusy(controller);
  let reply = "", message = null, failure = null, ended = false;
  try {
    const body = { message: text };
    if (sessionId) body.session_id = sessionId;
    const response = await fetch(`${api}?stream=true`, {
      method: "POST", headers: { "content-type": "application/json", accept: "text/event-stream" },
      body: JSON.stringify(body), signal: controller.signal,
    });
    const issued = response.headers.get("x-session-id");
    if (issued) { sessionId = issued; sessionStorage.setItem(storeKey, issued); }
    if (!response.ok) {
      const payload = await response.json().catch(() => null);
      failure = { status: "failed", error: { message: explain(response.status, payload) } };
    } else {
      let pending = false;
      for await (const frame of frames(response)) {
        if (frame.event === "delta") {
          reply += frame.data.text || "";
          // One repaint per frame; a repaint due after the reply ended must not undo the final one.
          if (!pending) { pending = true; requestAnimationFrame(() => { pending = false; if (!ended) { fill(node, reply); scroll(); } }); }
        } else if (frame.event === "done") message = frame.data.assistant_message;
        else if (frame.event === "error") failure = { status: "failed", error: { message: frame.data.message || "The reply failed." } };
        else if (frame.event === "cancelled" || frame.event === "failed") message = frame.data.assistant_message;
      }
    }
  } catch (err) {
    failure = { status: controller.signal.aborted ? "cancelled" : "failed", error: { message: "The connection was lost." } };
  }
  ended = true;
  setBusy(null);
  node.removeAttribute("aria-busy");
  if (message && message.status === "complete") { fill(node, message.content, message); finish(node, message); }
  else { fill(node, reply, null); finish(node, failure || message || { status: "failed" }, text); }
  scroll();
}

function welcome() {
  if (config.welcome_message) { const n = botBubble(); fill(n, config.welcome_message); }
  const box = $("starters");
  box.replaceChildren();
  for (const q of config.starters || []) {
    const b = el("button", "", q);
    b.type = "button";
    b.addEventListener("click", () => send(q));
    box.append(b);
  }
}

async function history() {
  const r = await fetch(`${api}/session/${encodeURIComponent(sessionId)}`);
  if (!r.ok) { sessionStorage.removeItem(storeKey); sessionId = null; return false; }
  const data = await r.json();
  if (!data.messages.length) return false;
  for (const m of data.messages) {
    if (m.role === "user") { userBubble(m.content); continue; }
    const n = botBubble();
    fill(n, m.content, m);
    finish(n, m);
  }
  scroll();
  return true;
}

async function start() {
  if (embed) document.body.classList.add("embed");
  const r = await fetch(`${api}/config`).catch(() => null);
  if (!r || !r.ok) {
    notice(r ? explain(r.status, null) : "The assistant cannot be reached.");
    $("composer").classList.add("hidden");
    $("new").classList.add("hidden");
    return;
  }
  config = await r.json();
  const name = (config.widget && config.widget.title) || config.name;
  document.title = name;
  $("title").textContent = name;
  if (config.widget && /^https:\/\//.test(config.widget.avatar_url || "")) {
    const img = el("img", "avatar");
    img.alt = "";
    img.src = config.widget.avatar_url;
    document.querySelector(".chat header .dot").replaceWith(img);
  }
  if (config.widget && /^#[0-9a-fA-F]{3,8}$/.test(config.widget.primary_color || "")) {
    document.documentElement.style.setProperty("--accent", config.widget.primary_color);
  }
  if (!(sessionId && (await history()))) welcome();
  if (!preview) $("input").focus({ preventScroll: embed });
}

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("input");
  const text = input.value;
  input.value = "";
  send(text);
});
$("input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); $("composer").requestSubmit(); }
});
$("stop").addEventListener("click", () => busy && busy.abort());
$("new").addEventListener("click", async () => {
  if (busy) busy.abort();
  if (sessionId) fetch(`${api}/session/${encodeURIComponent(sessionId)}`, { method: "DELETE" }).catch(() => {});
  sessionStorage.removeItem(storeKey);
  sessionId = null;
  $("log").replaceChildren();
  if (config) welcome();
  $("input").focus();
});
document.addEventListener("keydown", (e) => {
  // Inside the widget's frame, Esc asks the host page's launcher to close the chat.
  if (e.key === "Escape" && embed && window.parent !== window) window.parent.postMessage({ type: "botgpt:close" }, "*");
});
start();
