// The admin dashboard: a hash-routed single page over the JSON API.
// The access token lives only in this module's memory; the refresh token is an httpOnly cookie.
import { chart, h } from "./ui.js";

let token = null;
let me = null;
const view = () => document.getElementById("view");

async function refresh() {
  const r = await fetch("/api/v1/auth/web/refresh", { method: "POST" });
  if (!r.ok) return false;
  token = (await r.json()).access_token;
  return true;
}

async function call(path, opts = {}, again = true) {
  const headers = { ...(opts.headers || {}) };
  if (token) headers.authorization = `Bearer ${token}`;
  if (opts.json !== undefined) { headers["content-type"] = "application/json"; opts.body = JSON.stringify(opts.json); }
  const r = await fetch(path, { ...opts, headers });
  if (r.status === 401 && again && (await refresh())) return call(path, opts, false);
  if (r.status === 401) { showSignin(); throw new Error("Signed out."); }
  if (!r.ok) {
    const p = await r.json().catch(() => null);
    throw new Error((p && p.error && p.error.message) || `HTTP ${r.status}`);
  }
  return r.status === 204 ? null : r.json();
}

function showSignin() {
  token = null;
  document.getElementById("app").classList.add("hidden");
  document.getElementById("signin").classList.remove("hidden");
  document.getElementById("email").focus();
}

async function showApp() {
  document.getElementById("signin").classList.add("hidden");
  document.getElementById("app").classList.remove("hidden");
  me = await call("/api/v1/users/me");
  document.getElementById("who").textContent = me.email;
  route();
}

function failure(err) { view().replaceChildren(h("p", { class: "error", role: "alert" }, err.message)); }

const routes = {
  bots: botsPage, bot: botPage, documents: documentsPage, conversations: conversationsPage,
  conversation: conversationPage, faqs: faqsPage, analytics: analyticsPage, keys: keysPage,
};

async function route() {
  if (!token) return;
  const [name, arg] = (location.hash.replace(/^#\/?/, "") || "bots").split("/");
  document.querySelectorAll("nav a").forEach((a) => {
    const current = a.getAttribute("href") === `#/${name}` || (name === "bot" && a.getAttribute("href") === "#/bots") || (name === "conversation" && a.getAttribute("href") === "#/conversations");
    if (current) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  });
  try { await (routes[name] || botsPage)(arg ? decodeURIComponent(arg) : undefined); }
  catch (err) { failure(err); }
}

// ---- Bots ----
async function botsPage() {
  const data = await call("/api/v1/bots?limit=100");
  const rows = data.items.map((b) => h("tr", {}, h("td", {}, h("a", { href: `#/bot/${encodeURIComponent(b.id)}` }, b.name)),
    h("td", {}, b.active ? "active" : "inactive"), h("td", {}, String(b.document_ids.length)), h("td", {}, `v${b.version}`)));
  view().replaceChildren(
    h("h1", {}, "Bots"),
    h("p", {}, h("a", { href: "#/bot/new" }, "Create a bot")),
    rows.length ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "State"), h("th", {}, "Documents"), h("th", {}, "Version"))), h("tbody", {}, ...rows))
      : h("p", { class: "muted" }, "No bots yet."));
}

const FIELDS = [
  ["name", "Name", "text"], ["description", "Description", "text"], ["system_prompt", "System prompt", "area"],
  ["welcome_message", "Welcome message", "area"], ["starters", "Starter questions (one per line)", "lines"],
  ["allowed_origins", "Allowed origins for the widget (one per line)", "lines"],
  ["provider", "Provider", ["default", "local", "openai", "anthropic", "groq"]], ["model", "Model", "text"], ["base_url", "Provider URL (https)", "text"], ["temperature", "Temperature", "number"], ["max_tokens", "Reply length (tokens)", "number"],
  ["top_k", "Passages per answer", "number"], ["min_score", "Relevance floor", "number"], ["memory_messages", "Memory (messages)", "number"],
  ["session_message_cap", "Messages per session", "number"], ["daily_message_cap", "Messages per day", "number"],
  ["faq_first", "Answer from FAQs first", "check"], ["faq_threshold", "FAQ match threshold", "number"], ["active", "Active", "check"],
  ["widget.title", "Widget title", "text"], ["widget.primary_color", "Colour", "color"], ["widget.position", "Launcher side", ["bottom-right", "bottom-left"]], ["widget.launcher_text", "Launcher text", "text"],
];

function fieldInput([key, label, kind], bot) {
  const id = `f-${key.replace(".", "-")}`;
  const value = key.startsWith("widget.") ? (bot ? bot.widget[key.slice(7)] : null) : bot ? bot[key] : null;
  let input;
  if (Array.isArray(kind)) input = h("select", { id }, ...kind.map((o) => h("option", { value: o }, o)));
  else if (kind === "area" || kind === "lines") input = h("textarea", { id, rows: kind === "area" ? 4 : 3 });
  else input = h("input", { id, type: kind === "check" ? "checkbox" : kind === "number" ? "number" : kind === "color" ? "color" : "text", step: "any" });
  if (kind === "check") input.checked = bot ? Boolean(value) : key === "active";
  else if (kind === "lines") input.value = (value || []).join("\n");
  else if (value != null) input.value = String(value);
  else if (kind === "color") input.value = "#2563eb";
  input.dataset.key = key; input.dataset.kind = Array.isArray(kind) ? "choice" : kind;
  return h("div", {}, h("label", { for: id }, label), input);
}

function readForm(form, bot) {
  const body = { widget: { ...(bot ? bot.widget : {}) } };
  form.querySelectorAll("[data-key]").forEach((input) => {
    const { key, kind } = input.dataset;
    let v = kind === "check" ? input.checked : kind === "number" ? (input.value === "" ? null : Number(input.value))
      : kind === "lines" ? input.value.split("\n").map((s) => s.trim()).filter(Boolean) : input.value.trim() || null;
    if (key.startsWith("widget.")) { if (v !== null) body.widget[key.slice(7)] = v; return; }
    if (v === null && bot === null) return;
    body[key] = v;
  });
  const secret = form.querySelector("#f-api-key");
  if (secret && secret.value) body.api_key = secret.value;
  return body;
}

function copyRow(label, text) {
  const code = h("div", { class: "code" }, text);
  const button = h("button", { type: "button" }, `Copy ${label}`);
  button.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(text); button.textContent = "Copied"; } catch { button.textContent = "Select and copy"; }
  });
  return h("div", {}, h("h3", {}, label), h("div", { class: "row" }, code, button));
}

async function botPage(id) {
  const bot = id && id !== "new" ? await call(`/api/v1/bots/${encodeURIComponent(id)}`) : null;
  const docs = await call("/api/v1/documents?limit=100");
  const status = h("p", { role: "status" });
  const form = h("form", { id: "bot-form" }, ...FIELDS.map((f) => fieldInput(f, bot)));
  form.append(h("div", {}, h("label", { for: "f-api-key" }, `Provider key (write-only${bot && bot.has_api_key ? `, set …${bot.api_key_last4}` : ""})`), h("input", { id: "f-api-key", type: "password", autocomplete: "off" })));
  const docBox = h("fieldset", {}, h("legend", {}, "Documents"));
  for (const d of docs.items) {
    const box = h("input", { type: "checkbox", id: `doc-${d.id}`, value: d.id });
    box.checked = bot ? bot.document_ids.includes(d.id) : false;
    docBox.append(h("div", { class: "row" }, box, h("label", { for: `doc-${d.id}` }, `${d.filename} (${d.status})`)));
  }
  form.append(docBox, status, h("button", { type: "submit", class: "primary" }, bot ? "Save" : "Create bot"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = readForm(form, bot);
    body.document_ids = [...docBox.querySelectorAll("input:checked")].map((x) => x.value);
    try {
      const saved = bot ? await call(`/api/v1/bots/${encodeURIComponent(bot.id)}`, { method: "PATCH", json: body })
        : await call("/api/v1/bots", { method: "POST", json: body });
      status.textContent = "Saved.";
      if (!bot) location.hash = `#/bot/${encodeURIComponent(saved.id)}`; else botPage(bot.id);
    } catch (err) { status.textContent = err.message; status.className = "error"; }
  });
  const side = h("div", {});
  if (bot) {
    side.append(h("h2", {}, "Preview"), h("iframe", { title: "Chat preview", src: `/chat/${encodeURIComponent(bot.id)}?embed=1&preview=1` }),
      h("h2", {}, "Deployment"), copyRow("chat URL", bot.deployment.chat_url), copyRow("embed code", bot.deployment.embed_code));
    const versions = await call(`/api/v1/bots/${encodeURIComponent(bot.id)}/versions?limit=20`);
    const list = h("ul", {});
    for (const v of versions.items || []) {
      const restore = h("button", { type: "button" }, "Restore");
      restore.addEventListener("click", async () => { await call(`/api/v1/bots/${encodeURIComponent(bot.id)}/versions/${v.number}/restore`, { method: "POST" }); botPage(bot.id); });
      list.append(h("li", {}, `v${v.number} ${new Date(v.created_at).toLocaleString()} — ${(v.changed || []).join(", ") || "created"} `, v.number === bot.version ? h("span", { class: "muted" }, "(current)") : restore));
    }
    side.append(h("h2", {}, "Versions"), list);
  }
  view().replaceChildren(h("h1", {}, bot ? bot.name : "New bot"), h("div", { class: "split" }, form, side));
}

// ---- Documents ----
let poll = null;
async function documentsPage() {
  clearTimeout(poll);
  const [data, bots] = await Promise.all([call("/api/v1/documents?limit=100"), call("/api/v1/bots?limit=100")]);
  const usedBy = (id) => bots.items.filter((b) => b.document_ids.includes(id)).map((b) => b.name).join(", ") || "–";
  const input = h("input", { type: "file", id: "files", multiple: "" });
  const drop = h("div", { class: "drop" }, h("label", { for: "files" }, "Drop files here or choose them"), input);
  const note = h("p", { role: "status" });
  const upload = async (files) => {
    for (const f of files) {
      const form = new FormData(); form.append("file", f);
      try { await call("/api/v1/documents", { method: "POST", body: form }); note.textContent = `Uploaded ${f.name}.`; }
      catch (err) { note.textContent = `${f.name}: ${err.message}`; }
    }
    documentsPage();
  };
  input.addEventListener("change", () => upload(input.files));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); upload(e.dataTransfer.files); });
  const rows = data.items.map((d) => {
    const del = h("button", { type: "button" }, "Delete");
    del.addEventListener("click", async () => { await call(`/api/v1/documents/${encodeURIComponent(d.id)}`, { method: "DELETE" }); documentsPage(); });
    const state = d.status === "failed" && d.error ? `failed: ${d.error.message}` : d.status === "ready" ? "ready" : `${d.status} ${Math.round(d.progress * 100)}%`;
    return h("tr", {}, h("td", {}, d.filename), h("td", { class: "doc-status" }, state), h("td", {}, String(d.chunk_count)), h("td", {}, usedBy(d.id)), h("td", {}, del));
  });
  view().replaceChildren(h("h1", {}, "Documents"), drop, note,
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "File"), h("th", {}, "Status"), h("th", {}, "Chunks"), h("th", {}, "Used by"), h("th", {}, ""))), h("tbody", {}, ...rows)));
  if (data.items.some((d) => d.status !== "ready" && d.status !== "failed")) poll = setTimeout(() => location.hash.startsWith("#/documents") && documentsPage(), 1000);
}

// ---- Conversations ----
async function conversationsPage() {
  const data = await call("/api/v1/conversations?limit=100");
  const search = h("input", { id: "c-search", type: "search" });
  const body = h("tbody", {});
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    body.replaceChildren(...(data.items || []).filter((c) => !q || (c.title || "").toLowerCase().includes(q)).map((c) =>
      h("tr", {}, h("td", {}, h("a", { href: `#/conversation/${encodeURIComponent(c.id)}` }, c.title || "(untitled)")),
        h("td", {}, c.mode), h("td", {}, String(c.message_count)), h("td", {}, new Date(c.updated_at).toLocaleString()))));
  };
  search.addEventListener("input", draw);
  draw();
  view().replaceChildren(h("h1", {}, "Conversations"), h("div", { class: "row" }, h("label", { for: "c-search" }, "Search titles"), search),
    h("table", {}, h("thead", {}, h("tr", {}, ...["Title", "Mode", "Messages", "Last activity"].map((x) => h("th", {}, x)))), body));
}

async function conversationPage(id) {
  const c = await call(`/api/v1/conversations/${encodeURIComponent(id)}`);
  const items = (c.messages || []).map((m) => h("section", { class: "card" },
    h("p", {}, h("strong", {}, m.role), ` · ${m.status}${m.source ? ` · ${m.source}` : ""}${m.model ? ` · ${m.provider}/${m.model}` : ""}${m.usage ? ` · ${m.usage.total_tokens} tokens` : ""}${m.cost_usd != null ? ` · $${m.cost_usd.toFixed(5)}` : ""}${m.latency_ms != null ? ` · ${Math.round(m.latency_ms)} ms` : ""}`),
    h("p", { class: "pre" }, m.content),
    m.error ? h("p", { class: "error" }, m.error.message) : "",
    ...(m.citations || []).map((x) => h("p", { class: "muted" }, `[${x.number}] ${x.document_name}${x.page != null ? `, page ${x.page}` : ""}: ${x.snippet}`)),
    m.context_manifest ? h("details", {}, h("summary", {}, "Context manifest (what the model was given)"), h("pre", {}, JSON.stringify(m.context_manifest, null, 2))) : ""));
  view().replaceChildren(h("h1", {}, c.title || "Conversation"),
    h("p", { class: "muted" }, `${c.usage.total_tokens} tokens · $${c.usage.cost_usd.toFixed(5)}`), ...items);
}

// ---- FAQs ----
function faqForm(faq, onSaved) {
  const n = faq ? faq.id : `new-${Math.random().toString(36).slice(2, 8)}`;
  const q = h("textarea", { id: `q-${n}`, rows: "2" }), a = h("textarea", { id: `a-${n}`, rows: "3" });
  const status = h("select", { id: `s-${n}` }, ...["active", "draft", "archived"].map((x) => h("option", { value: x }, x)));
  q.value = faq ? faq.question : ""; a.value = faq ? faq.answer || "" : ""; status.value = faq && faq.status ? faq.status : "active";
  const note = h("p", { role: "status" });
  const form = h("form", { class: "card" }, h("label", { for: q.id }, "Question"), q, h("label", { for: a.id }, "Answer"), a,
    h("label", { for: status.id }, "Status"), status, note, h("button", { type: "submit", class: "primary" }, faq && faq.id ? "Save FAQ" : "Add FAQ"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const json = { question: q.value, answer: a.value, status: status.value };
    try {
      if (faq && faq.id) await call(`/api/v1/faqs/${encodeURIComponent(faq.id)}`, { method: "PATCH", json });
      else await call("/api/v1/faqs", { method: "POST", json });
      onSaved();
    } catch (err) { note.textContent = err.message; note.className = "error"; }
  });
  return form;
}

async function faqsPage() {
  const [faqs, bots] = await Promise.all([call("/api/v1/faqs?limit=100"), call("/api/v1/bots?limit=100")]);
  const left = h("div", {}, h("h2", {}, "New FAQ"), faqForm(null, faqsPage), h("h2", {}, `FAQs (${faqs.total})`),
    ...(faqs.items || []).map((f) => h("details", {}, h("summary", {}, `${f.question} — ${f.status}, ${f.hits} hits`), faqForm(f, faqsPage))));
  const right = h("div", {}, h("h2", {}, "Unanswered questions"));
  for (const b of bots.items) {
    const u = await call(`/api/v1/bots/${encodeURIComponent(b.id)}/unanswered?limit=20`);
    if (!u.items.length) continue;
    right.append(h("h3", {}, b.name));
    for (const item of u.items) {
      const box = h("div", {});
      const add = h("button", { type: "button" }, "Answer this as a FAQ");
      add.addEventListener("click", () => { box.replaceChildren(faqForm({ question: item.question, answer: "" }, faqsPage)); box.querySelector("textarea:nth-of-type(2)")?.focus(); });
      right.append(h("div", { class: "card" }, h("p", {}, item.question), h("p", { class: "muted" }, item.reason === "not_found" ? "Not covered by the documents" : "Thumbs down"), add, box));
    }
  }
  if (right.children.length === 1) right.append(h("p", { class: "muted" }, "None: every question was answered."));
  view().replaceChildren(h("h1", {}, "FAQs"), h("div", { class: "split" }, left, right));
}

// ---- Analytics ----
async function analyticsPage() {
  const bots = await call("/api/v1/bots?limit=100");
  const pick = h("select", { id: "a-bot" }, ...bots.items.map((b) => h("option", { value: b.id }, b.name)));
  const day = (offset) => new Date(Date.now() + offset * 86400000).toISOString().slice(0, 10);
  const from = h("input", { id: "a-from", type: "date" }), to = h("input", { id: "a-to", type: "date" });
  from.value = day(-29); to.value = day(0);
  const out = h("div", {});
  const draw = async () => {
    if (!pick.value) { out.replaceChildren(h("p", { class: "muted" }, "No bots yet.")); return; }
    const since = `${from.value}T00:00:00Z`, until = new Date(Date.parse(`${to.value}T00:00:00Z`) + 86400000).toISOString();
    const range = `since=${encodeURIComponent(since)}&until=${encodeURIComponent(until)}`;
    const a = await call(`/api/v1/analytics/bots/${encodeURIComponent(pick.value)}?${range}`);
    const pct = (x) => (x == null ? "–" : `${Math.round(x * 100)}%`);
    const ms = (x) => (x == null ? "–" : `${Math.round(x)} ms`);
    const cards = [["Sessions", a.sessions], ["Messages", a.user_messages], ["Replies", a.replies], ["Failed", a.failed_replies],
      ["Tokens", a.tokens.total_tokens], ["Cost", `$${a.cost_usd.toFixed(4)}`], ["Latency p50", ms(a.latency_p50_ms)], ["Latency p95", ms(a.latency_p95_ms)],
      ["FAQ hit rate", pct(a.faq_hit_rate)], ["Not found", pct(a.not_found_rate)], ["Feedback", `${a.feedback_up} up · ${a.feedback_down} down`]];
    const points = a.per_day;
    out.replaceChildren(
      h("div", { class: "cards" }, ...cards.map(([k, v]) => h("div", { class: "card" }, h("span", { class: "muted" }, k), h("b", {}, String(v))))),
      h("div", { class: "charts" },
        chart("Messages per day", points.map((p) => [p.date, p.user_messages])),
        chart("Sessions per day", points.map((p) => [p.date, p.sessions])),
        chart("Replies per day", points.map((p) => [p.date, p.replies]))));
    if (me && (me.is_admin || me.role === "analyst")) out.append(...(await overall(range)));
  };
  for (const input of [pick, from, to]) input.addEventListener("change", () => draw().catch(failure));
  view().replaceChildren(h("h1", {}, "Analytics"),
    h("div", { class: "row" }, h("label", { for: "a-bot" }, "Bot"), pick, h("label", { for: "a-from" }, "From"), from, h("label", { for: "a-to" }, "To"), to), out);
  await draw();
}

async function overall(range) {
  const d = await call(`/api/v1/analytics/dashboard?${range}`);
  const rows = d.models.map((m) => h("tr", {}, h("td", {}, `${m.provider || "–"}/${m.model || "–"}`), h("td", {}, String(m.replies)),
    h("td", {}, String(m.prompt_tokens + m.completion_tokens)), h("td", {}, `$${m.cost_usd.toFixed(4)}`), h("td", {}, m.avg_latency_ms == null ? "–" : `${Math.round(m.avg_latency_ms)} ms`)));
  return [
    h("h2", {}, "All of BOT GPT"),
    h("p", {}, `Error rate ${d.error_rate == null ? "–" : `${(d.error_rate * 100).toFixed(1)}%`} · ${d.users.active} active users · $${d.cost_usd.toFixed(4)} in all`),
    h("div", { class: "charts" },
      chart("Tokens per day", d.daily.map((p) => [p.date, p.tokens])),
      chart("Cost per day (USD)", d.daily.map((p) => [p.date, Number(p.cost_usd.toFixed(4))])),
      chart("Conversations per day", d.daily.map((p) => [p.date, p.conversations]))),
    h("h3", {}, "Per model"),
    h("table", {}, h("thead", {}, h("tr", {}, ...["Model", "Replies", "Tokens", "Cost", "Avg latency"].map((x) => h("th", {}, x)))), h("tbody", {}, ...rows)),
  ];
}

// ---- API keys ----
async function keysPage() {
  const data = await call("/api/v1/api-keys?limit=100");
  const name = h("input", { id: "k-name", required: "" });
  const shown = h("p", { role: "status" });
  const form = h("form", {}, h("label", { for: "k-name" }, "New key name"), name, h("button", { type: "submit", class: "primary" }, "Create key"), shown);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const k = await call("/api/v1/api-keys", { method: "POST", json: { name: name.value } });
    shown.replaceChildren(copyRow("new key (shown once)", k.key));
  });
  const rows = data.items.map((k) => {
    const del = h("button", { type: "button" }, "Revoke");
    del.addEventListener("click", async () => { await call(`/api/v1/api-keys/${encodeURIComponent(k.id)}`, { method: "DELETE" }); keysPage(); });
    return h("tr", {}, h("td", {}, k.name), h("td", {}, k.prefix || ""), h("td", {}, del));
  });
  view().replaceChildren(h("h1", {}, "API keys"), form, h("table", {}, h("tbody", {}, ...rows)));
}

document.getElementById("signin").addEventListener("submit", async (e) => {
  e.preventDefault();
  const err = document.getElementById("signin-error");
  err.textContent = "";
  const r = await fetch("/api/v1/auth/web/login", {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ email: document.getElementById("email").value, password: document.getElementById("password").value }),
  });
  if (!r.ok) { err.textContent = r.status === 429 ? "Too many attempts; wait a minute." : "Wrong email or password."; return; }
  token = (await r.json()).access_token;
  document.getElementById("password").value = "";
  showApp();
});
document.getElementById("signout").addEventListener("click", async () => {
  await call("/api/v1/auth/web/logout", { method: "POST" }).catch(() => {});
  showSignin();
});
window.addEventListener("hashchange", route);
refresh().then((ok) => (ok ? showApp() : showSignin()));
