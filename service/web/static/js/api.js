// Calls to the service's API. The API key, when the service sets one, is asked for once,
// kept in sessionStorage (this tab only, gone when it closes) and sent as the
// Authorization header: never in a URL, where logs and history would keep it.

const KEY_ITEM = "corel-api-key";
let askingForKey = null; // one dialog at a time, however many calls got a 401

export class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "http_error";
    this.details = error.details ?? null;
  }
}

function headers(extra) {
  const key = sessionStorage.getItem(KEY_ITEM);
  const all = { ...(extra || {}) };
  if (key) all.Authorization = `Bearer ${key}`;
  return all;
}

function askForKey(wrong) {
  if (askingForKey) return askingForKey;
  const dialog = document.getElementById("key-dialog");
  const input = document.getElementById("key-input");
  document.getElementById("key-wrong").hidden = !wrong;
  input.value = "";
  askingForKey = new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        askingForKey = null;
        if (dialog.returnValue === "ok" && input.value) {
          sessionStorage.setItem(KEY_ITEM, input.value);
          resolve(true);
        } else {
          resolve(false);
        }
      },
      { once: true },
    );
  });
  dialog.showModal();
  input.focus();
  return askingForKey;
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_ITEM);
}

export function hasKey() {
  return sessionStorage.getItem(KEY_ITEM) !== null;
}

// fetch with the key; on a 401 ask for the key and try again
async function send(path, options = {}) {
  for (;;) {
    const response = await fetch(path, { ...options, headers: headers(options.headers) });
    if (response.status !== 401) return response;
    const hadKey = hasKey();
    forgetKey();
    if (!(await askForKey(hadKey))) throw new ApiError(401, await response.json());
  }
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON (a proxy's page): the status says enough
  }
  return new ApiError(response.status, body);
}

export async function getJson(path) {
  const response = await send(path);
  if (!response.ok) throw await failure(response);
  return response.json();
}

export async function sendJson(method, path, body) {
  const options = { method, headers: { "Content-Type": "application/json" } };
  if (body !== undefined) options.body = JSON.stringify(body);
  const response = await send(path, options);
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

// An image the API serves (it may want the key, which an <img src> cannot send): as an
// object URL for <img>; the caller revokes it when the image goes.
export async function imageUrl(path) {
  const response = await send(path);
  if (!response.ok) throw await failure(response);
  return URL.createObjectURL(await response.blob());
}

// The Prometheus text of /metrics (open: no key)
export async function metricsText() {
  const response = await fetch("/metrics");
  if (!response.ok) throw await failure(response);
  return response.text();
}

export function itemPng(id) {
  return `/items/${encodeURIComponent(id)}/input.png`;
}
