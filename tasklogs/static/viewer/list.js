// The task list (GET /api/v1/tasks, keyset pages) and the search across tasks (GET /api/v1/search).
// Filters and the page's cursor are in the address, so a list can be shared and Back goes back.

import { ApiError, apiJson, api, encode, formatTs, ndjson } from "./api.js";

const $ = (selector) => document.querySelector(selector);
const root = $("#task-list");
const SEARCH_LIMIT = 200;

function params() {
  return new URLSearchParams(location.search);
}

function listPath(query) {
  const namespace = query.get("namespace");
  const api_ = namespace ? `/api/v1/namespaces/${encode(namespace)}/tasks` : "/api/v1/tasks";
  const out = new URLSearchParams();
  for (const name of ["phase", "prefix", "cursor"]) if (query.get(name)) out.set(name, query.get(name));
  out.set("limit", query.get("limit") || "50");
  return `${api_}?${out}`;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function localTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : formatTs(date.toISOString(), "local").slice(0, 19);
}

function duration(start, end) {
  if (!start) return "";
  const seconds = Math.max(0, ((end ? Date.parse(end) : Date.now()) - Date.parse(start)) / 1000);
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.round((seconds % 3600) / 60)} min`;
}

function size(bytes) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes || 0;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
}

function taskRow(task) {
  const tr = document.createElement("tr");
  tr.dataset.task = task.task_id;
  tr.dataset.namespace = task.namespace;
  const name = document.createElement("td");
  const link = document.createElement("a");
  link.href = `/ui/namespaces/${encode(task.namespace)}/tasks/${encode(task.task_id)}`;
  link.textContent = task.task_id;
  name.append(link);
  tr.append(
    name,
    cell(task.namespace),
    cell(task.phase || "unknown", `phase phase-${task.phase}`),
    cell(localTime(task.started_at)),
    cell(duration(task.started_at, task.finished_at)),
    cell(String(task.pods), "num"),
    cell(String(task.lines), "num"),
    cell(size(task.bytes), "num"),
  );
  return tr;
}

async function showTasks() {
  const query = params();
  for (const name of ["namespace", "phase", "prefix"]) $(`#f-${name}`).value = query.get(name) || "";
  root.dataset.state = "loading";
  $("[data-role=message]").textContent = "";
  try {
    const page = await apiJson(listPath(query));
    $("#tasks").replaceChildren(...page.tasks.map(taskRow));
    if (!page.tasks.length) $("[data-role=message]").textContent = "No tasks match.";
    $("#next-page").disabled = !page.next;
    $("#next-page").dataset.cursor = page.next || "";
    $("#first-page").disabled = !query.get("cursor");
    root.dataset.state = "complete";
  } catch (error) {
    $("#tasks").replaceChildren();
    $("[data-role=message]").textContent = error.message;
    root.dataset.state = "error";
  }
}

function go(changes) {
  const query = params();
  for (const [name, value] of Object.entries(changes)) value ? query.set(name, value) : query.delete(name);
  history.pushState(null, "", `/?${query}`);
  showTasks();
}

async function search(event) {
  event.preventDefault();
  const q = $("#search-q").value;
  const section = $("#search-results");
  const list = section.querySelector(".hits");
  const message = section.querySelector("[data-role=search-message]");
  const count = section.querySelector("[data-role=search-count]");
  section.hidden = false;
  list.replaceChildren();
  message.textContent = "";
  count.textContent = "…";
  const out = new URLSearchParams({ q, limit: String(SEARCH_LIMIT) });
  if ($("#search-ic").checked) out.set("ignore_case", "true");
  if (params().get("namespace")) out.set("namespace", params().get("namespace"));
  let found = 0;
  try {
    const response = await api(`/api/v1/search?${out}`);
    for await (const hit of ndjson(response)) {
      found++;
      list.append(hitItem(hit, q));
    }
    count.textContent = `${found}${found >= SEARCH_LIMIT ? "+" : ""} ${found === 1 ? "line" : "lines"}`;
    if (!found) message.textContent = "No line matches.";
  } catch (error) {
    count.textContent = "";
    message.textContent =
      error instanceof ApiError && error.status === 404 && error.code === "not_found"
        ? "Search across tasks is not available on this server."
        : error.message;
  }
}

function hitItem(hit, q) {
  const item = document.createElement("li");
  const where = document.createElement("a");
  where.className = "where";
  const view = new URLSearchParams({ pod: hit.pod, container: hit.container, q });
  where.href = `/ui/namespaces/${encode(hit.namespace)}/tasks/${encode(hit.task_id)}?${view}#L${hit.line}`;
  where.textContent = `${hit.namespace}/${hit.task_id} ${hit.pod}:${hit.line}`;
  const text = document.createElement("span");
  text.textContent = hit.text; // never markup
  item.append(where, text);
  return item;
}

$("#filters").addEventListener("submit", (event) => {
  event.preventDefault();
  go({
    namespace: $("#f-namespace").value.trim(),
    phase: $("#f-phase").value,
    prefix: $("#f-prefix").value.trim(),
    cursor: "",
  });
});
$("#next-page").addEventListener("click", (event) => go({ cursor: event.target.dataset.cursor }));
$("#first-page").addEventListener("click", () => go({ cursor: "" }));
$("#search-form").addEventListener("submit", search);
window.addEventListener("popstate", showTasks);
showTasks();
