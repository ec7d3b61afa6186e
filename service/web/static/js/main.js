// The page: tabs (the ARIA tabs pattern: arrow keys move between them), the model's input
// size, and each view loaded when it is first shown.

import { forgetKey, getJson, hasKey } from "./api.js";
import { loadPage, openItem, setUpBrowse } from "./browse.js";
import { loadClasses, setUpClasses } from "./classes.js";
import { setUpHealth, startHealth, stopHealth } from "./health.js";
import { draw, loadMap, setUpMap } from "./map.js";
import { resetCanvas, setUpTry } from "./try.js";
import { model, say, sayError, showInputControls } from "./ui.js";

const $ = (id) => document.getElementById(id);
const tabs = () => [...document.querySelectorAll('[role="tab"]')];
const loaded = new Set();

function show(name, focus = false) {
  for (const tab of tabs()) {
    const on = tab.id === `tab-${name}`;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
    $(tab.getAttribute("aria-controls")).hidden = !on;
    if (on && focus) tab.focus();
  }
  history.replaceState(null, "", `#${name}`);
  if (name === "health") startHealth();
  else stopHealth();
  if (name === "browse" && !loaded.has(name)) loadPage(0);
  if (name === "classes") loadClasses();
  if (name === "map") {
    if (!loaded.has(name)) loadMap();
    else draw();
  }
  loaded.add(name);
}

function setUpTabs() {
  for (const tab of tabs()) {
    tab.addEventListener("click", () => show(tab.id.slice(4)));
    tab.addEventListener("keydown", (event) => {
      const all = tabs();
      const at = all.indexOf(tab);
      const next = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: all.length - 1 }[event.key];
      if (next === undefined) return;
      event.preventDefault();
      show(all[(next + all.length) % all.length].id.slice(4), true);
    });
  }
}

async function openById(id) {
  show("browse");
  try {
    await openItem(await getJson(`/items/${encodeURIComponent(id)}`));
  } catch (error) {
    sayError($("browse-status"), error);
  }
}

async function start() {
  setUpTabs();
  setUpTry();
  setUpBrowse();
  setUpMap(openById);
  setUpClasses();
  setUpHealth();
  try {
    const info = await getJson("/model"); // asks for the API key here when one is set
    model.kind = info.manifest.input.kind;
    model.shape = info.manifest.input.shape.length === 3 ? info.manifest.input.shape : [1, ...info.manifest.input.shape];
    model.labels = info.manifest.labels;
    $("model-name").textContent = `· ${info.manifest.name}`;
    showInputControls(); // a text model: text boxes instead of the canvas and file pickers
    if (model.kind !== "text") resetCanvas();
  } catch (error) {
    sayError($("global-status"), error);
  }
  $("forget-key").hidden = !hasKey();
  $("forget-key").addEventListener("click", () => {
    forgetKey();
    $("forget-key").hidden = true;
    say($("global-status"), "The API key is forgotten; the next call asks for it again.");
  });
  const wanted = location.hash.slice(1);
  show(tabs().some((t) => t.id === `tab-${wanted}`) ? wanted : "try");
  document.body.dataset.ready = "true"; // for tests and scripts: the page is set up
}

start();
