// Browse items: a paged gallery with label and metadata filters, an item's neighbours,
// delete, select for a class, and add by upload (for a text model: texts, one a line).

import { getJson, sendJson } from "./api.js";
import {
  el, fileInput, fmt, gallery, itemPreview, itemText, model, say, sayError, selection, textLines, toggleSelected,
} from "./ui.js";

const $ = (id) => document.getElementById(id);
const PAGE = 24;

// pages[n]: the server cursor page n starts after (null: the first page)
let pages = [null];
let current = 0;
let filter = { label: "", metadata: {} };

function parseMetadata(text) {
  const wanted = {};
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const at = part.indexOf("=");
    if (at < 1) throw new Error(`"${part}" is not key=value`);
    const raw = part.slice(at + 1).trim();
    let value = raw;
    try {
      value = JSON.parse(raw); // 3, true, null, "text"
    } catch {
      // plain text
    }
    wanted[part.slice(0, at).trim()] = value;
  }
  return wanted;
}

function describe(total) {
  const fields = Object.entries(filter.metadata).map(([key, value]) => `${key}=${JSON.stringify(value)}`);
  return `${total} item${total === 1 ? "" : "s"}`
    + (filter.label ? ` labelled ${filter.label}` : "")
    + (fields.length ? ` with ${fields.join(", ")}` : "");
}

export async function loadPage(n = 0) {
  const status = $("browse-status");
  say(status, "Loading…");
  try {
    // both filters are the server's (GET /items), so a rare value costs one request a page
    const query = new URLSearchParams({ limit: String(PAGE) });
    if (pages[n]) query.set("cursor", pages[n]);
    if (filter.label) query.set("label", filter.label);
    if (Object.keys(filter.metadata).length) query.set("metadata", JSON.stringify(filter.metadata));
    const answer = await getJson(`/items?${query}`);
    current = n;
    pages = pages.slice(0, n + 1);
    // a full last page still has a cursor: the total says whether anything follows
    if (answer.next_cursor !== null && (n + 1) * PAGE < answer.total) pages.push(answer.next_cursor);
    const shown = answer.items;
    $("browse-gallery").replaceChildren(shown.length
      ? gallery(shown, { onpick: openItem })
      : el("p", { class: "muted" }, "No items match."));
    for (const tile of $("browse-gallery").querySelectorAll(".tile")) {
      tile.classList.toggle("selected", selection.has(tile.dataset.id));
    }
    $("browse-page").textContent = `Page ${n + 1}`;
    $("browse-prev").disabled = n === 0;
    $("browse-next").disabled = pages.length <= n + 1;
    say(status, describe(answer.total));
  } catch (error) {
    sayError(status, error);
  }
}

export async function openItem(item) {
  const panel = $("browse-detail");
  panel.hidden = false;
  const status = el("p", { role: "status", class: "status" });
  const chosen = el("input", { type: "checkbox", id: "detail-select", checked: selection.has(item.id) || null });
  chosen.addEventListener("change", () => {
    toggleSelected(item.id, chosen.checked);
    $("browse-gallery").querySelector(`.tile[data-id="${CSS.escape(item.id)}"]`)
      ?.classList.toggle("selected", chosen.checked);
  });
  const remove = el("button", { type: "button", class: "danger", id: "detail-delete" }, "Delete item");
  remove.addEventListener("click", async () => {
    if (!confirm(`Delete item ${item.id}?`)) return;
    try {
      await sendJson("DELETE", `/items/${encodeURIComponent(item.id)}`);
      toggleSelected(item.id, false);
      panel.hidden = true;
      await loadPage(current);
    } catch (error) {
      sayError(status, error);
    }
  });
  const neighbours = el("div", { id: "detail-neighbours" }, el("p", { class: "muted" }, "Finding neighbours…"));
  panel.replaceChildren(
    el("h3", {}, `Item ${item.id}`),
    el("div", { class: "row" },
      model.kind === "text" ? itemText(item, { full: true }) : itemPreview(item),
      el("dl", { class: "figures" },
        el("dt", {}, "Label"), el("dd", {}, item.label ?? "–"),
        el("dt", {}, "Metadata"), el("dd", {}, JSON.stringify(item.metadata)),
        el("dt", {}, "Created"), el("dd", {}, item.created))),
    el("div", { class: "controls" },
      el("label", { for: "detail-select" }, chosen, " Select for a new class"), remove),
    status,
    el("h3", {}, "Nearest stored items"),
    neighbours);
  panel.scrollIntoView({ block: "nearest" });
  try {
    const answer = await getJson(`/neighbors?id=${encodeURIComponent(item.id)}&k=8`);
    const found = answer.neighbors;
    neighbours.replaceChildren(found.length
      ? gallery(found, { onpick: openItem, caption: (n) => `${n.label ?? "–"} · ${fmt(n.score)}` })
      : el("p", { class: "muted" }, "No other items."));
  } catch (error) {
    neighbours.replaceChildren(el("p", { class: "error" }, error.message));
  }
}

async function addItems(event) {
  event.preventDefault();
  const status = $("browse-status");
  const label = $("add-label").value.trim() || undefined;
  try {
    const items = [];
    if (model.kind === "text") {
      const texts = textLines($("add-texts").value);
      if (!texts.length) throw new Error("type one text a line to add");
      for (const text of texts) items.push({ input: { text }, label, metadata: { source: "web" } });
    } else {
      for (const file of $("add-files").files) {
        items.push({ input: await fileInput(file), label, metadata: { source: "web", file: file.name } });
      }
    }
    const answer = await sendJson("POST", "/items", { items });
    $("browse-add").reset();
    pages = [null];
    await loadPage(0);
    const cut = answer.truncated?.length
      ? `; ${answer.truncated.length} longer than the model's ${model.shape.at(-1)} tokens, embedded from their start`
      : "";
    say(status, `Added ${answer.items.length} item(s)${cut}`, "ok");
  } catch (error) {
    sayError(status, error);
  }
}

export function setUpBrowse() {
  $("browse-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      filter = { label: $("browse-label").value.trim(), metadata: parseMetadata($("browse-meta").value) };
    } catch (error) {
      sayError($("browse-status"), error);
      return;
    }
    pages = [null];
    loadPage(0);
  });
  $("browse-prev").addEventListener("click", () => loadPage(Math.max(0, current - 1)));
  $("browse-next").addEventListener("click", () => loadPage(current + 1));
  $("browse-add").addEventListener("submit", addItems);
}
