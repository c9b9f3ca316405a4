/* BOT GPT widget: <script src=".../widget.js" data-bot-id="..." async></script>.
   Draws a launcher in a shadow root (host styles cannot reach it) and opens the bot's
   chat page in an iframe; defines only window.BotGPTWidget. */
(function () {
  "use strict";
  if (window.BotGPTWidget) return;
  var script = document.currentScript;
  if (!script) return;
  var base = new URL(script.src).origin;
  var botId = script.getAttribute("data-bot-id") || "";
  var api = base + "/api/v1/chat/" + encodeURIComponent(botId) + "/config";
  var state = { open: false };
  window.BotGPTWidget = { open: function () { toggle(true); }, close: function () { toggle(false); } };
  var host, root, launcher, frame, toggle = function () {};

  var CSS =
    ":host{all:initial}" +
    ".l,.f{all:initial;position:fixed;z-index:2147483646;box-sizing:border-box}" +
    ".l{bottom:20px;padding:12px 18px;border-radius:999px;background:var(--c);color:#fff;" +
    "font:600 16px/1.2 system-ui,sans-serif;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.25)}" +
    ".l:focus-visible{outline:3px solid #111;outline-offset:3px}" +
    ".f{bottom:80px;width:380px;height:600px;max-width:calc(100vw - 24px);max-height:calc(100vh - 100px);" +
    "border:0;border-radius:12px;background:#fff;box-shadow:0 8px 30px rgba(0,0,0,.3);display:none}" +
    ".f.o{display:block}";

  function sheet(node) {
    try {
      var s = new CSSStyleSheet();
      s.replaceSync(CSS);
      node.adoptedStyleSheets = [s];
    } catch (e) {
      var st = document.createElement("style");
      st.textContent = CSS;
      node.appendChild(st);
    }
  }

  function build(cfg) {
    var w = cfg.widget || {};
    var colour = /^#[0-9a-fA-F]{3,8}$/.test(w.primary_color || "") ? w.primary_color : "#2563eb";
    var side = w.position === "bottom-left" ? "left" : "right";
    host = document.createElement("botgpt-widget");
    root = host.attachShadow({ mode: "open" });
    sheet(root);
    launcher = document.createElement("button");
    launcher.type = "button";
    launcher.className = "l";
    launcher.textContent = w.launcher_text || "Chat";
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", (w.launcher_text || "Chat") + " (" + (w.title || cfg.name) + ")");
    launcher.style.setProperty("--c", colour);
    launcher.style.setProperty(side, "20px");
    frame = document.createElement("iframe");
    frame.className = "f";
    frame.title = w.title || cfg.name;
    frame.style.setProperty(side, "20px");
    launcher.addEventListener("click", function () { toggle(!state.open); });
    root.appendChild(launcher);
    root.appendChild(frame);
    document.body.appendChild(host);
    toggle = function (open) {
      if (open === state.open) return;
      state.open = open;
      if (open && !frame.src) frame.src = base + "/chat/" + encodeURIComponent(botId) + "?embed=1";
      frame.classList.toggle("o", open);
      launcher.setAttribute("aria-expanded", String(open));
      if (open) frame.focus();
      else launcher.focus();
    };
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && state.open) toggle(false);
    });
    window.addEventListener("message", function (e) {
      if (e.origin === base && e.source === frame.contentWindow && e.data && e.data.type === "botgpt:close") toggle(false);
    });
  }

  fetch(api, { credentials: "omit" })
    .then(function (r) {
      if (r.status === 403) throw new Error("this website (" + location.origin + ") is not in the bot's allowed origins");
      if (!r.ok) throw new Error("the bot is not available (HTTP " + r.status + ")");
      return r.json();
    })
    .then(function (cfg) {
      if (document.body) build(cfg);
      else document.addEventListener("DOMContentLoaded", function () { build(cfg); });
    })
    .catch(function (err) {
      // A refused origin gets a 403 without a CORS grant, which fetch reports as a TypeError.
      var why = err instanceof TypeError ? "this website (" + location.origin + ") is not in the bot's allowed origins, or BOT GPT cannot be reached" : err.message;
      console.warn("BOT GPT widget: no chat launcher: " + why);
    });
})();
