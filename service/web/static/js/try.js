// Try an item: draw or drop a picture (or, for a text model, type a text), see the classes
// and the nearest stored items.

import { sendJson } from "./api.js";
import { canvasInput, el, fileInput, fmt, gallery, model, say, sayError } from "./ui.js";

const $ = (id) => document.getElementById(id);
let drawing = false;

function canvas() {
  return $("draw-canvas");
}

export function resetCanvas() {
  const c = canvas();
  [, c.height, c.width] = model.shape;
  const context = c.getContext("2d");
  context.fillStyle = "#000";
  context.fillRect(0, 0, c.width, c.height);
}

function paint(event) {
  const c = canvas();
  const box = c.getBoundingClientRect();
  const x = ((event.clientX - box.left) / box.width) * c.width;
  const y = ((event.clientY - box.top) / box.height) * c.height;
  const context = c.getContext("2d");
  context.fillStyle = "#fff";
  context.beginPath();
  context.arc(x, y, Number($("brush").value) * (c.width / 28), 0, 2 * Math.PI);
  context.fill();
}

async function showFile(file) {
  if (!file) return;
  const input = await fileInput(file); // scaled to the model's size
  const c = canvas();
  const image = c.getContext("2d").createImageData(c.width, c.height);
  const gray = input.data.length === model.shape[1] ? input.data : null;
  for (let y = 0; y < c.height; y++) {
    for (let x = 0; x < c.width; x++) {
      const p = 4 * (y * c.width + x);
      const rgb = gray ? [gray[y][x], gray[y][x], gray[y][x]] : [0, 1, 2].map((ch) => input.data[ch][y][x]);
      image.data.set([...rgb, 255], p);
    }
  }
  c.getContext("2d").putImageData(image, 0, 0);
  await run();
}

// The API's reason codes in words (docs/open-world.md says how each is decided).
const REASONS = (things) => ({
  outside_data: `the input is unlike the ${things} the model was trained on`,
  far_from_classes: `the input is far from the training ${things} of every class`,
  between_classes: "the input lies between classes",
});

function classification(result) {
  const against = result.threshold === null || result.threshold === undefined
    ? `best score ${fmt(result.score)}; ${result.label} has no score threshold`
    : `best score ${fmt(result.score)}, threshold ${fmt(result.threshold)} of ${result.label}`;
  const reasons = REASONS(model.kind === "text" ? "texts" : "images");
  const why = result.reason ? `${reasons[result.reason] ?? result.reason} (${result.reason}): ${against}` : against;
  const rows = result.top.map((t) =>
    el("tr", {},
      el("td", {}, t.label),
      el("td", {}, fmt(t.score)),
      el("td", {}, el("span", { class: "bar", style: `width:${Math.max(0, t.score) * 120}px` }))));
  return el("div", { id: "try-answer" },
    el("p", {},
      el("strong", { id: "try-label" }, result.label), " ",
      el("span", { class: `flag ${result.unknown ? "unknown" : "known"}`, id: "try-flag" },
        result.unknown ? "unknown" : "known"),
      ` margin ${fmt(result.margin)}`),
    el("p", { class: "muted", id: "try-reason" }, why),
    el("table", {},
      el("caption", {}, "Top classes by score"),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Class"), el("th", { scope: "col" }, "Score"),
        el("th", { scope: "col" }, el("span", { class: "visually-hidden" }, "Score bar")))),
      el("tbody", {}, rows)));
}

export async function run() {
  const status = $("try-status");
  const text = $("try-text").value.trim();
  if (model.kind === "text" && !text) {
    say(status, "Type a text first.", "error");
    $("try-text").focus();
    return;
  }
  const input = model.kind === "text" ? { text } : canvasInput(canvas());
  say(status, "Asking the model…");
  try {
    const [classified, neighbours] = await Promise.all([
      sendJson("POST", "/classify", { inputs: [input], k: 5 }),
      sendJson("POST", "/neighbors", { queries: [{ input }], k: 12 }).catch((error) => error),
    ]);
    $("try-result").replaceChildren(classification(classified.results[0]));
    if (classified.truncated?.length) {
      $("try-result").append(el("p", { class: "muted", id: "try-truncated" },
        `The text is longer than the model's ${model.shape.at(-1)} tokens: its first ${model.shape.at(-1)} were used.`));
    }
    const target = $("try-neighbours");
    if (neighbours instanceof Error) {
      target.replaceChildren(el("p", { class: "error" }, neighbours.message));
    } else {
      const found = neighbours.results[0].neighbors;
      target.replaceChildren(found.length
        ? gallery(found, { caption: (n) => `${n.label ?? "–"} · ${fmt(n.score)}` })
        : el("p", { class: "muted" }, "No items stored yet: add some in Browse items."));
    }
    say(status, "");
  } catch (error) {
    sayError(status, error);
  }
}

export function setUpTry() {
  resetCanvas();
  const c = canvas();
  c.addEventListener("pointerdown", (event) => {
    drawing = true;
    c.setPointerCapture(event.pointerId);
    paint(event);
  });
  c.addEventListener("pointermove", (event) => drawing && paint(event));
  c.addEventListener("pointerup", () => {
    drawing = false;
  });
  $("try-clear").addEventListener("click", () => {
    if (model.kind === "text") $("try-text").value = "";
    else resetCanvas();
    $("try-result").replaceChildren();
    $("try-neighbours").replaceChildren();
  });
  $("try-run").addEventListener("click", run);
  $("try-text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) run(); // Enter alone: a new line
  });
  $("try-file").addEventListener("change", (event) => showFile(event.target.files[0]));
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    showFile(event.dataTransfer.files[0]);
  });
}
