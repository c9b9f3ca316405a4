// DOM helpers for the dashboard: elements from tag/attributes/children (text only, never HTML),
// and bar charts drawn as SVG with the values printed on them (readable without hovering).
const SVG = "http://www.w3.org/2000/svg";

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) if (c !== null && c !== undefined && c !== "") node.append(c);
  return node;
}

function s(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

export function chart(title, points) {
  const W = 320, H = 160, pad = 20;
  const max = Math.max(1, ...points.map((p) => p[1]));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${title}: ${points.map((p) => `${p[0]} ${p[1]}`).join(", ") || "no data"}` });
  svg.append(s("line", { class: "axis", x1: pad, y1: H - pad, x2: W - 4, y2: H - pad }));
  const step = points.length ? (W - pad - 4) / points.length : 0;
  points.forEach(([label, value], i) => {
    const bh = ((H - 2 * pad) * value) / max;
    const x = pad + i * step + step * 0.15;
    svg.append(s("rect", { class: "bar", x, y: H - pad - bh, width: Math.max(1, step * 0.7), height: bh }));
    if (value && points.length <= 31) svg.append(s("text", { x: x + step * 0.35, y: H - pad - bh - 3, "text-anchor": "middle" }, String(value)));
    if (i === 0 || i === points.length - 1) svg.append(s("text", { x: x + step * 0.35, y: H - 6, "text-anchor": i ? "end" : "start" }, String(label).slice(5)));
  });
  const box = document.createElement("figure");
  box.className = "chart";
  const cap = document.createElement("h3");
  cap.textContent = title;
  box.append(cap, svg);
  return box;
}
