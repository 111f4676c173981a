// The public API as the pages use it: fetch with the session's token, NDJSON streams, WebSocket URLs.
// Every request goes to this origin; with TASKLOGS_AUTH=kubernetes or token the first 401 asks the
// reader for a token once, and it is kept for the browser session (sessionStorage) only.

const TOKEN_KEY = "tasklogs.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export function encode(part) {
  return encodeURIComponent(part);
}

export async function api(path, options = {}) {
  for (;;) {
    const headers = { ...(options.headers || {}) };
    if (token()) headers.Authorization = `Bearer ${token()}`;
    const response = await fetch(path, { headers, signal: options.signal });
    if (response.ok) return response;
    const error = await errorOf(response);
    if (response.status !== 401 || options.noPrompt) throw error;
    forgetToken();
    await askToken(error.message);
  }
}

export async function apiJson(path, options) {
  return (await api(path, options)).json();
}

async function errorOf(response) {
  let body = {};
  try {
    body = await response.json();
  } catch {
    body = {};
  }
  const message = body.message || `${response.status} ${response.statusText}`;
  return new ApiError(response.status, body.error || "http_" + response.status, message);
}

// One dialog for every request waiting on a token: they all resume when it is given.
let asking = null;

export function askToken(message) {
  if (asking) return asking;
  const dialog = document.getElementById("token-dialog");
  const form = dialog.querySelector("form");
  const input = dialog.querySelector("input");
  dialog.querySelector("[data-role=token-reason]").textContent = message || "";
  asking = new Promise((resolve, reject) => {
    const done = (event) => {
      event.preventDefault();
      form.removeEventListener("submit", done);
      dialog.removeEventListener("cancel", cancel);
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = "";
      dialog.close();
      asking = null;
      resolve();
    };
    const cancel = () => {
      form.removeEventListener("submit", done);
      dialog.removeEventListener("cancel", cancel);
      asking = null;
      reject(new ApiError(401, "unauthorized", message || "a token is needed"));
    };
    form.addEventListener("submit", done);
    dialog.addEventListener("cancel", cancel);
  });
  dialog.showModal();
  input.focus();
  return asking;
}

// The objects of an application/x-ndjson body, as they arrive.
export async function* ndjson(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let held = "";
  for (;;) {
    const { value, done } = await reader.read();
    held += done ? decoder.decode() : decoder.decode(value, { stream: true });
    const pieces = held.split("\n");
    held = pieces.pop();
    for (const piece of pieces) if (piece) yield JSON.parse(piece);
    if (done) break;
  }
  if (held.trim()) yield JSON.parse(held);
}

export function wsUrl(path, params) {
  const query = new URLSearchParams(params);
  if (token()) query.set("access_token", token());
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}?${query}`;
}

// A download that carries the token: the body is fetched and handed to the browser as a file.
export async function download(path, filename) {
  if (!token()) {
    const link = document.createElement("a");
    link.href = path;
    link.download = filename;
    link.click();
    return;
  }
  const blob = await (await api(path)).blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

export function formatTs(ts, zone) {
  // ts is RFC 3339 with nine fraction digits, UTC: keep milliseconds.
  if (!ts) return "";
  if (zone === "utc") return ts.slice(0, 10) + " " + ts.slice(11, 23) + "Z";
  const date = new Date(ts.slice(0, 23) + "Z");
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.` +
    pad(date.getMilliseconds(), 3)
  );
}
