// Model and health: the model card (manifest, figures, metrics), the clustering report of
// the stored items, and live figures read from /metrics every few seconds.

import { getJson, imageUrl, metricsText } from "./api.js";
import { el, fmt, gallery, say, sayError } from "./ui.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;
let previous = null; // the last reading, for rates
let timer = 0;

// Prometheus text -> [{name, labels, value}]
export function parseMetrics(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!match) continue;
    const labels = {};
    for (const pair of (match[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[pair[1]] = pair[2];
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

// Requests other than the page's own polling of /metrics
const counted = (s) => s.labels.route !== "/metrics";
const total = (samples, name, keep = counted) =>
  samples.filter((s) => s.name === name && keep(s)).reduce((sum, s) => sum + s.value, 0);

function reading(samples) {
  const buckets = new Map();
  for (const s of samples) {
    if (s.name === "corel_request_seconds_bucket" && counted(s)) {
      buckets.set(s.labels.le, (buckets.get(s.labels.le) || 0) + s.value);
    }
  }
  return {
    at: performance.now(),
    requests: total(samples, "corel_requests_total"),
    seconds: total(samples, "corel_request_seconds_sum"),
    count: total(samples, "corel_request_seconds_count"),
    buckets,
  };
}

function quantile(now, before, q) {
  const les = [...now.buckets.keys()].sort((a, b) => Number(a) - Number(b));
  const n = now.count - before.count;
  if (n <= 0) return null;
  for (const le of les) {
    if (now.buckets.get(le) - (before.buckets.get(le) || 0) >= q * n) return Number(le);
  }
  return null;
}

async function poll() {
  try {
    const samples = parseMetrics(await metricsText());
    const now = reading(samples);
    const figures = [];
    if (previous) {
      const dt = (now.at - previous.at) / 1000;
      const n = now.count - previous.count;
      const p95 = quantile(now, previous, 0.95);
      figures.push(["Requests/s", fmt((now.requests - previous.requests) / dt, 1)],
        ["Mean latency", n > 0 ? `${fmt((1000 * (now.seconds - previous.seconds)) / n, 1)} ms` : "–"],
        ["p95 latency (bucket bound)", p95 === null ? "–" : `≤ ${fmt(1000 * p95, 1)} ms`]);
    }
    previous = now;
    const gauge = (name, labels = {}) => samples.find((s) => s.name === name &&
      Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    figures.push(["In flight", gauge("corel_requests_in_flight") ?? "–"],
      ["Queued inputs", gauge("corel_queue_items") ?? "–"],
      ["Items indexed", gauge("corel_index_size", { index: "items" }) ?? "–"],
      ["Classes", gauge("corel_index_size", { index: "classes" }) ?? "–"]);
    $("live").replaceChildren(...figures.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, String(value))]));
    const byClass = new Map();
    for (const s of samples.filter((x) => x.name === "corel_classified_total")) {
      const row = byClass.get(s.labels.label) || { all: 0, unknown: 0 };
      row.all += s.value;
      if (s.labels.unknown === "true") row.unknown += s.value;
      byClass.set(s.labels.label, row);
    }
    $("unknown-table").tBodies[0].replaceChildren(...[...byClass].map(([label, row]) =>
      el("tr", {}, el("th", { scope: "row" }, label), el("td", {}, row.all), el("td", {}, row.unknown),
        el("td", {}, `${fmt((100 * row.unknown) / row.all, 1)} %`))));
  } catch (error) {
    sayError($("health-status"), error);
  }
}

function card(info) {
  const m = info.manifest;
  const metrics = Object.entries(m.metrics || {}).filter(([, v]) => typeof v === "number");
  return el("div", {},
    el("dl", { class: "figures" },
      ...[["Name", m.name], ["Created", m.created], ["Loss", JSON.stringify(m.loss)],
        ["Encoder", `${m.architecture?.encoder ?? "?"} (${m.architecture?.parameters ?? "?"} parameters)`],
        ["Input", `${m.input.kind} ${m.input.shape.join(" × ")}`], ["Embedding", `${m.embedding_dim} dimensions`],
        ["Class rule", m.class_rule], ["Labels", m.labels.join(", ")], ["Provider", info.provider],
        ["Indexes", `${info.indexes.classes} classes, ${info.indexes.items} items`]]
        .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))])),
    el("table", {}, el("caption", {}, "Test-set metrics of the bundle"),
      el("tbody", {}, metrics.map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, fmt(v, 4)))))));
}

export async function loadModelCard() {
  try {
    const info = await getJson("/model");
    $("model-card").replaceChildren(card(info));
    const figures = Object.keys(info.manifest.files || {}).filter((f) => f.endsWith(".png"));
    $("model-figures").replaceChildren(...figures.map((name) => {
      const img = el("img", { alt: `${name.replace(".png", "").replace(/_/g, " ")} of the bundle` });
      imageUrl(`/model/figures/${encodeURIComponent(name)}`).then((url) => { img.src = url; });
      return el("figure", {}, img, el("figcaption", {}, name));
    }));
  } catch (error) {
    sayError($("health-status"), error);
  }
}

export async function loadReport() {
  const target = $("report");
  target.replaceChildren(el("p", { class: "muted" }, "Computing…"));
  try {
    const report = await getJson("/clustering/report");
    if (!report.classes.length) {
      target.replaceChildren(el("p", { class: "muted" }, "No labelled items stored yet."));
      return;
    }
    const rows = report.classes.map((c) => el("tr", {},
      el("th", { scope: "row" }, c.label), el("td", {}, c.n), el("td", {}, fmt(c.cohesion)),
      el("td", {}, c.nearest_class ? `${c.nearest_class} (${fmt(c.nearest_class_similarity)})` : "–"),
      el("td", {}, c.misplaced ?? "–")));
    const misplaced = report.classes.flatMap((c) => c.misplaced_examples.map((m) => ({ ...m, label: c.label })));
    target.replaceChildren(
      el("p", {}, `${report.n_labelled} labelled of ${report.n_items} items · ${report.misplaced} nearer another class vector (rule ${report.rule})`),
      el("table", {}, el("caption", {}, "Per class: cohesion, nearest other class, misplaced items"),
        el("thead", {}, el("tr", {}, ...["Class", "Items", "Cohesion", "Nearest class", "Misplaced"].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, rows)),
      el("h4", {}, "Misplaced items"),
      misplaced.length
        ? gallery(misplaced.slice(0, 48), { caption: (m) => `${m.label} → ${m.closest_class}` })
        : el("p", { class: "muted" }, "None."));
  } catch (error) {
    target.replaceChildren(el("p", { class: "error" }, error.message));
  }
}

export function startHealth() {
  loadModelCard();
  loadReport();
  poll();
  clearInterval(timer);
  timer = setInterval(poll, POLL_MS);
}

export function stopHealth() {
  clearInterval(timer);
  previous = null;
}

export function setUpHealth() {
  $("report-run").addEventListener("click", loadReport);
}
