// Small helpers the views share: elements, messages, image galleries, inputs from pictures.

import { imageUrl, itemPng } from "./api.js";

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

// A gallery of items: each tile is a button (keyboard reachable) when `onpick` is given
export function gallery(items, { onpick, caption } = {}) {
  const list = el("ul", { class: "gallery" });
  for (const item of items) {
    const text = caption ? caption(item) : item.label ?? "";
    const content = [itemImage(item.id, `${item.label ?? "unlabelled"} item ${item.id}`),
      el("span", { class: "caption" }, text), el("span", { class: "id" }, item.id)];
    const tile = onpick
      ? el("button", { type: "button", class: "tile", "data-id": item.id, onclick: () => onpick(item) }, content)
      : el("div", { class: "tile", "data-id": item.id }, content);
    list.append(el("li", {}, tile));
  }
  return list;
}

// The model's input: [C, H, W] from the manifest, set once the model is known
export const model = { shape: [1, 28, 28], labels: [] };

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
