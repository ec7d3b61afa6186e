// Small helpers the views share: elements, messages, galleries of pictures or texts, inputs
// from pictures and texts.

import { getJson, imageUrl, itemPng } from "./api.js";

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }
  return node;
}

// A message in a status line (role="status": screen readers announce it)
export function say(target, text, kind = "info") {
  target.textContent = text;
  target.dataset.kind = kind;
}

export function sayError(target, error) {
  say(target, error.code ? `${error.message} (${error.code})` : String(error.message || error), "error");
}

export const fmt = (x, digits = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));

// Colours by label: ten well-separated hues, then hashed ones
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const assigned = new Map();
export function colour(label) {
  const key = label ?? "(none)";
  if (!assigned.has(key)) {
    const n = assigned.size;
    assigned.set(key, n < PALETTE.length ? PALETTE[n] : `hsl(${(n * 137.5) % 360} 60% 45%)`);
  }
  return assigned.get(key);
}

// An <img> of a stored item's input, loaded with the key (see api.imageUrl)
export function itemImage(id, alt) {
  const img = el("img", { alt: alt || `item ${id}`, width: 56, height: 56, class: "pixels" });
  imageUrl(itemPng(id))
    .then((url) => {
      img.src = url;
      img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
    })
    .catch(() => img.replaceWith(el("span", { class: "noimage" }, "no image")));
  return img;
}

// A stored item's text (text models), from the item when it has it (GET /items lists it),
// else fetched once (neighbours and map points carry only ids) and kept for the next time
const texts = new Map();
export function itemText(item, { full = false } = {}) {
  const node = el(full ? "blockquote" : "span", { class: full ? "item-text" : "snippet" });
  const known = typeof item.text === "string" ? item.text : texts.get(item.id);
  const fill = (text) => {
    node.textContent = text ?? "(no stored text)";
    if (!full && text) node.title = text; // a tile shows the start; hover shows it all
  };
  if (known !== undefined) {
    fill(known);
  } else {
    node.textContent = "…";
    getJson(`/items/${encodeURIComponent(item.id)}`)
      .then((stored) => {
        texts.set(item.id, stored.text ?? null);
        fill(stored.text);
      })
      .catch(() => fill(null));
  }
  if (typeof item.text === "string") texts.set(item.id, item.text);
  return node;
}

// What stands for an item: its picture, or for a text model its text
export function itemPreview(item, alt) {
  return model.kind === "text" ? itemText(item) : itemImage(item.id, alt);
}

// A gallery of items: each tile is a button (keyboard reachable) when `onpick` is given
export function gallery(items, { onpick, caption } = {}) {
  const list = el("ul", { class: model.kind === "text" ? "gallery texts" : "gallery" });
  for (const item of items) {
    const text = caption ? caption(item) : item.label ?? "";
    const content = [itemPreview(item, `${item.label ?? "unlabelled"} item ${item.id}`),
      el("span", { class: "caption" }, text), el("span", { class: "id" }, item.id)];
    const tile = onpick
      ? el("button", { type: "button", class: "tile", "data-id": item.id, onclick: () => onpick(item) }, content)
      : el("div", { class: "tile", "data-id": item.id }, content);
    list.append(el("li", {}, tile));
  }
  return list;
}

// The model's input: its kind ("image", "vector" or "text") and [C, H, W] from the
// manifest, set once the model is known
export const model = { kind: "image", shape: [1, 28, 28], labels: [] };

// Show the controls for the model's kind of input: `.picture-only` ones for pictures,
// `.text-only` ones for text (a hidden control is also not required)
export function showInputControls() {
  const text = model.kind === "text";
  document.body.dataset.inputKind = model.kind;
  for (const node of document.querySelectorAll(".picture-only, .text-only")) {
    const hide = node.classList.contains("text-only") ? !text : text;
    node.hidden = hide;
    if (node.dataset.required === undefined) node.dataset.required = String(node.required === true);
    if (node.dataset.required === "true") node.required = !hide;
  }
}

// Lines of a text box, as texts: one a line, blank lines skipped
export function textLines(value) {
  return value.split("\n").map((line) => line.trim()).filter(Boolean);
}

// Pixels of a canvas (drawn at the model's size) as an input the API takes: `data`
export function canvasInput(canvas) {
  const [channels, height, width] = model.shape;
  const rgba = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  const plane = (c) => Array.from({ length: height }, (_, y) =>
    Array.from({ length: width }, (_, x) => {
      const p = 4 * (y * width + x);
      if (c === null) return Math.round(0.299 * rgba[p] + 0.587 * rgba[p + 1] + 0.114 * rgba[p + 2]);
      return rgba[p + c];
    }));
  return { data: channels === 1 ? plane(null) : [plane(0), plane(1), plane(2)] };
}

// Any picture a browser can open, scaled to the model's size, as an input
export async function fileInput(file) {
  const bitmap = await createImageBitmap(file);
  const [, height, width] = model.shape;
  const canvas = el("canvas", { width, height });
  const context = canvas.getContext("2d");
  context.imageSmoothingQuality = "high";
  context.drawImage(bitmap, 0, 0, width, height);
  return canvasInput(canvas);
}

// A stored item's input, as an input again (to imprint a class from selected items)
export async function storedInput(id) {
  if (model.kind === "text") {
    const item = await getJson(`/items/${encodeURIComponent(id)}`);
    if (typeof item.text !== "string") throw new Error(`item ${id} has no stored text`);
    return { text: item.text };
  }
  const url = await imageUrl(itemPng(id));
  try {
    const img = new Image();
    img.src = url;
    await img.decode();
    const [, height, width] = model.shape;
    const canvas = el("canvas", { width, height });
    canvas.getContext("2d").drawImage(img, 0, 0, width, height);
    return canvasInput(canvas);
  } finally {
    URL.revokeObjectURL(url);
  }
}

// Items selected in Browse, for imprinting a class from them
export const selection = new Set();
export const selectionChanged = new EventTarget();
export function toggleSelected(id, on) {
  if (on) selection.add(id);
  else selection.delete(id);
  selectionChanged.dispatchEvent(new Event("change"));
}
