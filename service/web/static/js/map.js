// The latent map: the server projects (GET /map), the page draws on a canvas. Points are
// kept in typed arrays and drawn as small squares, one fill colour per label, so 10,000
// points redraw in a few milliseconds; hover looks points up in a grid, not by a scan.

import { getJson } from "./api.js";
import { colour, el, itemPreview, model, say, sayError } from "./ui.js";

const $ = (id) => document.getElementById(id);
const GRID = 64; // cells per side of the hover lookup grid
const HOVER_PX = 6;

let data = null; // {xs, ys, group, ids, labels, groups, classes, box}
let view = { scale: 1, tx: 0, ty: 0 };
let grid = new Map();
let frame = 0;
let onOpen = () => {};

function canvas() {
  return $("map-canvas");
}

function fit() {
  if (!data) return;
  const c = canvas();
  const { minX, maxX, minY, maxY } = data.box;
  const width = c.clientWidth, height = c.clientHeight;
  const scale = 0.9 * Math.min(width / (maxX - minX || 1), height / (maxY - minY || 1));
  view = { scale, tx: width / 2 - scale * (minX + maxX) / 2, ty: height / 2 + scale * (minY + maxY) / 2 };
  draw();
}

const toScreen = (x, y) => [view.tx + view.scale * x, view.ty - view.scale * y];
const toData = (sx, sy) => [(sx - view.tx) / view.scale, (view.ty - sy) / view.scale];

export function draw() {
  cancelAnimationFrame(frame);
  frame = requestAnimationFrame(render);
}

// A colour as the 32-bit pixel canvas memory holds (RGBA bytes, little-endian)
const packed = new Map();
function pixel(css) {
  if (!packed.has(css)) {
    const probe = document.createElement("canvas").getContext("2d", { willReadFrequently: true });
    probe.fillStyle = css;
    probe.fillRect(0, 0, 1, 1);
    const [r, g, b] = probe.getImageData(0, 0, 1, 1).data;
    packed.set(css, (255 << 24) | (b << 16) | (g << 8) | r);
  }
  return packed.get(css);
}

let frameBuffer = null; // reused ImageData: the points are written as pixels, not paths

function render() {
  const c = canvas();
  const ratio = window.devicePixelRatio || 1;
  const width = c.clientWidth, height = c.clientHeight;
  if (c.width !== Math.round(width * ratio)) c.width = Math.round(width * ratio);
  if (c.height !== Math.round(height * ratio)) c.height = Math.round(height * ratio);
  const context = c.getContext("2d");
  context.setTransform(1, 0, 0, 1, 0, 0);
  context.clearRect(0, 0, c.width, c.height);
  if (!data) return;
  // Points: 3 x 3 device pixels each, straight into one pixel buffer. Measured at 10,000
  // points (benchmarks/web_page.py): a zoom step took 46 ms with a fillRect per point,
  // 16 ms (one 60 Hz frame) this way
  if (!frameBuffer || frameBuffer.width !== c.width || frameBuffer.height !== c.height) {
    frameBuffer = context.createImageData(c.width, c.height);
  }
  const buffer = new Uint32Array(frameBuffer.data.buffer);
  buffer.fill(0);
  const { xs, ys, group, groups } = data;
  const colours = groups.map((g) => pixel(colour(g)));
  const w = c.width, h = c.height, s = view.scale * ratio, tx = view.tx * ratio, ty = view.ty * ratio;
  const size = Math.max(3, Math.round(2 * ratio));
  for (let i = 0; i < xs.length; i++) {
    const x0 = Math.round(tx + s * xs[i]) - (size >> 1), y0 = Math.round(ty - s * ys[i]) - (size >> 1);
    if (x0 < 0 || y0 < 0 || x0 + size > w || y0 + size > h) continue;
    const value = colours[group[i]];
    for (let dy = 0; dy < size; dy++) buffer.fill(value, (y0 + dy) * w + x0, (y0 + dy) * w + x0 + size);
  }
  context.putImageData(frameBuffer, 0, 0);
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.font = "bold 12px system-ui, sans-serif";
  for (const klass of data.classes) {
    const [sx, sy] = toScreen(klass.x, klass.y);
    context.beginPath();
    context.moveTo(sx, sy - 8); context.lineTo(sx + 8, sy); context.lineTo(sx, sy + 8); context.lineTo(sx - 8, sy);
    context.closePath();
    context.fillStyle = colour(klass.name);
    context.fill();
    context.lineWidth = 2;
    context.strokeStyle = "#000";
    context.stroke();
    context.fillStyle = "#000";
    context.fillText(klass.name, sx + 10, sy + 4);
  }
}

function buildGrid() {
  grid = new Map();
  const { xs, ys, box } = data;
  const cell = Math.max(box.maxX - box.minX, box.maxY - box.minY, 1e-9) / GRID;
  data.cell = cell;
  for (let i = 0; i < xs.length; i++) {
    const key = `${Math.floor(xs[i] / cell)},${Math.floor(ys[i] / cell)}`;
    if (!grid.has(key)) grid.set(key, []);
    grid.get(key).push(i);
  }
}

function nearest(sx, sy) {
  if (!data || !data.xs.length) return -1;
  const [x, y] = toData(sx, sy);
  const radius = HOVER_PX / view.scale;
  const reach = Math.ceil(radius / data.cell);
  if (reach > 8) return -1; // zoomed far out: too many cells to look in, and points overlap
  const cx = Math.floor(x / data.cell), cy = Math.floor(y / data.cell);
  let best = -1, bestDistance = radius * radius;
  for (let gx = cx - reach; gx <= cx + reach; gx++) {
    for (let gy = cy - reach; gy <= cy + reach; gy++) {
      for (const i of grid.get(`${gx},${gy}`) || []) {
        const d = (data.xs[i] - x) ** 2 + (data.ys[i] - y) ** 2;
        if (d <= bestDistance) { best = i; bestDistance = d; }
      }
    }
  }
  return best;
}

let tipFor = -1;
function hover(event) {
  const box = canvas().getBoundingClientRect();
  const sx = event.clientX - box.left, sy = event.clientY - box.top;
  const i = nearest(sx, sy);
  const tip = $("map-tip");
  if (i < 0) {
    tip.hidden = true;
    tipFor = -1;
    return;
  }
  if (i !== tipFor) {
    tipFor = i;
    // a picture, or a text model's stored text (fetched once per item)
    tip.replaceChildren(itemPreview({ id: data.ids[i] }), el("strong", {}, data.labels[i] ?? "unlabelled"), el("br"), data.ids[i]);
  }
  tip.hidden = false;
  const wide = model.kind === "text" ? Math.max(120, tip.offsetWidth) : 120; // a text tip is wider
  tip.style.left = `${Math.min(sx + 12, box.width - wide)}px`;
  tip.style.top = `${sy + 12}px`;
}

function zoom(factor, sx, sy) {
  const c = canvas();
  const px = sx ?? c.clientWidth / 2, py = sy ?? c.clientHeight / 2;
  view.tx = px - (px - view.tx) * factor;
  view.ty = py - (py - view.ty) * factor;
  view.scale *= factor;
  draw();
}

function pan(dx, dy) {
  view.tx += dx;
  view.ty += dy;
  draw();
}

export async function loadMap() {
  const status = $("map-status");
  const method = $("map-method").value;
  const limit = $("map-limit").value;
  say(status, method === "tsne" ? "Computing t-SNE on the server (seconds per thousand items)…" : "Loading…");
  try {
    const started = performance.now();
    const answer = await getJson(`/map?method=${method}&limit=${limit}`);
    const n = answer.points.length;
    const groups = [...new Set(answer.points.map((p) => p.label ?? "(none)"))].sort();
    const index = new Map(groups.map((g, i) => [g, i]));
    const xs = new Float32Array(n), ys = new Float32Array(n), group = new Uint16Array(n);
    answer.points.forEach((p, i) => {
      xs[i] = p.x; ys[i] = p.y; group[i] = index.get(p.label ?? "(none)");
    });
    const box = { minX: Infinity, maxX: -Infinity, minY: Infinity, maxY: -Infinity };
    for (const p of [...answer.points, ...answer.classes]) {
      box.minX = Math.min(box.minX, p.x); box.maxX = Math.max(box.maxX, p.x);
      box.minY = Math.min(box.minY, p.y); box.maxY = Math.max(box.maxY, p.y);
    }
    data = { xs, ys, group, groups, box, classes: answer.classes,
      ids: answer.points.map((p) => p.id), labels: answer.points.map((p) => p.label) };
    buildGrid();
    fit();
    $("map-legend").replaceChildren(...groups.map((g) =>
      el("li", {}, el("span", { style: `background:${colour(g)}` }), g)));
    canvas().dataset.points = String(n);
    const took = ((performance.now() - started) / 1000).toFixed(2);
    say(status, `${n} items${answer.truncated ? " (the first stored; more exist)" : ""}, ` +
      `${answer.classes.length} class vectors (diamonds) · ${method.toUpperCase()} ` +
      `${answer.cached ? "from the cache" : `computed in ${answer.seconds.toFixed(2)} s`} · shown in ${took} s`, "ok");
  } catch (error) {
    sayError(status, error);
  }
}

export function setUpMap(open) {
  onOpen = open;
  const c = canvas();
  let dragging = null;
  c.addEventListener("pointerdown", (event) => {
    dragging = { x: event.clientX, y: event.clientY, moved: false };
    c.setPointerCapture(event.pointerId);
  });
  c.addEventListener("pointermove", (event) => {
    if (dragging) {
      const dx = event.clientX - dragging.x, dy = event.clientY - dragging.y;
      if (Math.abs(dx) + Math.abs(dy) > 2) dragging.moved = true;
      dragging.x = event.clientX;
      dragging.y = event.clientY;
      pan(dx, dy);
    } else {
      hover(event);
    }
  });
  c.addEventListener("pointerup", (event) => {
    const click = dragging && !dragging.moved;
    dragging = null;
    if (click && tipFor >= 0) onOpen(data.ids[tipFor]);
    hover(event);
  });
  c.addEventListener("pointerleave", () => { $("map-tip").hidden = true; });
  c.addEventListener("wheel", (event) => {
    event.preventDefault();
    const box = c.getBoundingClientRect();
    zoom(event.deltaY < 0 ? 1.25 : 0.8, event.clientX - box.left, event.clientY - box.top);
  }, { passive: false });
  c.addEventListener("keydown", (event) => {
    const steps = { ArrowLeft: [40, 0], ArrowRight: [-40, 0], ArrowUp: [0, 40], ArrowDown: [0, -40] };
    if (steps[event.key]) pan(...steps[event.key]);
    else if (event.key === "+" || event.key === "=") zoom(1.25);
    else if (event.key === "-") zoom(0.8);
    else return;
    event.preventDefault();
  });
  $("map-zoom-in").addEventListener("click", () => zoom(1.25));
  $("map-zoom-out").addEventListener("click", () => zoom(0.8));
  $("map-reset").addEventListener("click", fit);
  $("map-method").addEventListener("change", () => {
    // t-SNE costs seconds per thousand items on the server: start from a size that answers soon
    if ($("map-method").value === "tsne" && Number($("map-limit").value) > 2000) $("map-limit").value = "2000";
  });
  $("map-form").addEventListener("submit", (event) => {
    event.preventDefault();
    loadMap();
  });
  window.addEventListener("resize", draw);
}
