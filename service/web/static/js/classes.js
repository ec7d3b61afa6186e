// Classes: the list, imprint from pictures (a text model: typed texts) or from items selected
// in Browse, remove, restore.

import { getJson, sendJson } from "./api.js";
import {
  el, fileInput, fmt, model, say, sayError, selection, selectionChanged, storedInput, textLines, toggleSelected,
} from "./ui.js";

const $ = (id) => document.getElementById(id);

export async function loadClasses() {
  const status = $("classes-status");
  try {
    const answer = await getJson("/classes");
    const rows = answer.classes.map((c) => {
      const remove = el("button", { type: "button", class: "danger", "aria-label": `Remove class ${c.name}` }, "Remove");
      remove.addEventListener("click", () => removeClass(c));
      return el("tr", { "data-class": c.name },
        el("th", { scope: "row" }, c.name), el("td", {}, c.source), el("td", {}, fmt(c.threshold)),
        el("td", {}, c.examples ?? "–"), el("td", {}, remove));
    });
    $("classes-table").tBodies[0].replaceChildren(...rows);
    $("label-names").replaceChildren(...answer.classes.map((c) => el("option", { value: c.name })));
    say(status, `${answer.classes.length} classes · rule ${answer.rule}`);
  } catch (error) {
    sayError(status, error);
  }
}

async function removeClass(c) {
  const status = $("classes-status");
  const own = c.source === "bundle";
  if (own && !confirm(`${c.name} comes with the model. Remove it? (Restore brings it back.)`)) return;
  try {
    const force = own ? "?force=true" : "";
    await sendJson("DELETE", `/classes/${encodeURIComponent(c.name)}${force}`);
    await loadClasses();
    say(status, `Removed ${c.name}`, "ok");
  } catch (error) {
    sayError(status, error);
  }
}

async function imprint(event) {
  event.preventDefault();
  const status = $("classes-status");
  const name = $("imprint-name").value.trim();
  try {
    const inputs = [];
    const text = model.kind === "text";
    if (text) for (const line of textLines($("imprint-texts").value)) inputs.push({ text: line });
    else for (const file of $("imprint-files").files) inputs.push(await fileInput(file));
    for (const id of selection) inputs.push(await storedInput(id));
    if (!inputs.length) {
      throw new Error(`${text ? "type example texts" : "choose example pictures"} or select items in Browse items`);
    }
    const made = await sendJson("POST", "/classes", { name, inputs });
    $("imprint-form").reset();
    for (const id of [...selection]) toggleSelected(id, false); // used: start afresh
    await loadClasses();
    say(status, `Imprinted ${made.name} from ${made.examples} example(s)`, "ok");
  } catch (error) {
    sayError(status, error);
  }
}

function showSelection() {
  $("imprint-selected").textContent = selection.size
    ? `and ${selection.size} item(s) selected in Browse items`
    : "(or select items in Browse items)";
}

export function setUpClasses() {
  $("imprint-form").addEventListener("submit", imprint);
  $("classes-restore").addEventListener("click", async () => {
    try {
      const answer = await sendJson("POST", "/classes/restore", {});
      await loadClasses();
      say($("classes-status"), answer.restored.length ? `Restored ${answer.restored.join(", ")}` : "Nothing to restore", "ok");
    } catch (error) {
      sayError($("classes-status"), error);
    }
  });
  selectionChanged.addEventListener("change", showSelection);
  showSelection();
}
