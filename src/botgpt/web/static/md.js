// A small markdown renderer that only builds DOM nodes and sets textContent: model text can
// never become markup. Supports paragraphs, headings, lists, code blocks, inline code, bold,
// italics, http(s)/mailto links, and [n] citation markers (handed to `cite`).

const SAFE_URL = /^(https?:|mailto:)/i;
const INLINE = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*)|(\[[^\]]+\]\([^)\s]+\))|(\[\d{1,2}\])/;

function inline(parent, text, cite) {
  let rest = text;
  while (rest) {
    const m = INLINE.exec(rest);
    if (!m) { parent.append(rest); break; }
    if (m.index) parent.append(rest.slice(0, m.index));
    const tok = m[0];
    if (m[1]) { const c = document.createElement("code"); c.textContent = tok.slice(1, -1); parent.append(c); }
    else if (m[2]) { const b = document.createElement("strong"); inline(b, tok.slice(2, -2), cite); parent.append(b); }
    else if (m[3]) { const i = document.createElement("em"); inline(i, tok.slice(1, -1), cite); parent.append(i); }
    else if (m[4]) {
      const label = tok.slice(1, tok.indexOf("]("));
      const href = tok.slice(tok.indexOf("](") + 2, -1);
      if (SAFE_URL.test(href)) {
        const a = document.createElement("a");
        a.href = href; a.textContent = label; a.rel = "noopener noreferrer nofollow"; a.target = "_blank";
        parent.append(a);
      } else parent.append(label);
    } else if (m[5]) {
      const n = Number(tok.slice(1, -1));
      const chip = cite ? cite(n) : null;
      parent.append(chip || tok);
    }
    rest = rest.slice(m.index + tok.length);
  }
}

export function render(text, cite) {
  const root = document.createDocumentFragment();
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  let para = null, list = null;
  const close = () => { para = null; list = null; };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith("```")) {
      close();
      const pre = document.createElement("pre"), code = document.createElement("code");
      const body = [];
      for (i++; i < lines.length && !lines[i].startsWith("```"); i++) body.push(lines[i]);
      code.textContent = body.join("\n"); pre.append(code); root.append(pre);
      continue;
    }
    if (!line.trim()) { close(); continue; }
    const h = /^(#{1,4})\s+(.*)$/.exec(line);
    if (h) { close(); const el = document.createElement("h" + Math.min(6, h[1].length + 2)); inline(el, h[2], cite); root.append(el); continue; }
    const li = /^\s*(?:[-*+]|(\d+)[.)])\s+(.*)$/.exec(line);
    if (li) {
      const tag = li[1] ? "OL" : "UL";
      if (!list || list.tagName !== tag) { list = document.createElement(tag); root.append(list); }
      para = null;
      const item = document.createElement("li"); inline(item, li[2], cite); list.append(item);
      continue;
    }
    list = null;
    if (!para) { para = document.createElement("p"); root.append(para); }
    else para.append(document.createElement("br"));
    inline(para, line, cite);
  }
  return root;
}
