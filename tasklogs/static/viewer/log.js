// One task's logs: a virtual list over the line API, live lines from the WebSocket line frames.
//
// Two sources feed the list. One log (a pod's container) is a range: line n is fetched with
// from_line/limit in chunks, kept in a bounded cache, and the live frames fill its end. "All pods" and
// "only matches" are an array: the merged timeline (merge=time) or the grep result, in memory.
// Only the rows on screen exist in the page.

import { ApiError, api, download, encode, formatTs, ndjson, token, wsUrl } from "./api.js";
import { plainText, renderInto } from "./ansi.js";

const CHUNK = 500; // lines per range read
const MAX_CHUNKS = 60; // chunks kept per log (30,000 lines) besides the live end
const TAIL = 1000; // lines of each log the tail's snapshot brings
const MERGED_MAX = 200000; // lines the "all pods" timeline keeps
const MAX_PX = 8_000_000; // tallest spacer; beyond it a pixel stands for more than one line
const ALL = "*";

const parts = location.pathname.split("/");
const namespace = decodeURIComponent(parts[3] || "");
const taskId = decodeURIComponent(parts[5] || "");
const base = `/api/v1/namespaces/${encode(namespace)}/tasks/${encode(taskId)}`;

const $ = (selector) => document.querySelector(selector);
const root = $("#log-view");
const scroller = $("#scroller");
const spacer = $("#spacer");
const windowEl = $("#window");
const statusEl = $("#status");
const select = $("#log-select");
const followButton = $("#follow");
const countEl = $("[data-role=match-count]");

// What a reader would share is in the address: pod, container, q, regex, ic, context, ts, wrap, #L.
const query = new URLSearchParams(location.search);
const view = {
  selection: null, // a log key, or ALL
  ts: query.get("ts") || "",
  wrap: query.get("wrap") === "1",
  q: query.get("q") || "",
  regex: query.get("regex") === "1",
  ignoreCase: query.get("ic") === "1",
  context: query.get("context") ?? "",
  marked: parseHash(location.hash), // [first, last] line numbers, or null
  following: !location.hash,
  unseen: 0,
};

const task = { phase: "", complete: false, gone: new Set(), degraded: "", error: null, source: "" };
let readError = null; // the last failed range read: said in the status bar, retried after a pause
const READ_RETRY_MS = 2000;
const logs = new Map(); // key -> Log
let merged = null; // the "all pods" timeline: [{log, line, ts, text}]
let pendingJump = null; // {key, line}: a line link to a line not written yet
let earlier = null; // the read of older merged lines under way
let earlierFailedAt = -Infinity;
let grep = null; // {pattern, matches: [{key, line}], current, rows (only-matches mode), loading}
let cursor = null;
let socket = null;
let retries = 0;
let framesSeen = 0;

class Log {
  constructor(entry) {
    this.node = entry.node;
    this.pod = entry.pod;
    this.container = entry.container;
    this.key = `${entry.pod}/${entry.container}`;
    this.phase = entry.phase || "";
    this.total = 0; // the highest line number known
    this.chunks = new Map(); // chunk index -> Array(CHUNK) of {ts, text}
    this.loading = new Map(); // chunk index -> promise
    this.failedAt = new Map(); // chunk index -> when its read failed
    this.step = stepOf(entry.pod);
  }

  get(n) {
    const chunk = this.chunks.get(Math.floor((n - 1) / CHUNK));
    return chunk ? chunk[(n - 1) % CHUNK] : undefined;
  }

  put(n, line) {
    const index = Math.floor((n - 1) / CHUNK);
    let chunk = this.chunks.get(index);
    if (!chunk) {
      chunk = new Array(CHUNK);
      this.chunks.set(index, chunk);
    }
    chunk[(n - 1) % CHUNK] = line;
    if (n > this.total) this.total = n;
  }

  // The chunk holding line n, read by range unless cached or on its way.
  fetch(n) {
    const index = Math.floor((n - 1) / CHUNK);
    const chunk = this.chunks.get(index);
    if (chunk) {
      this.chunks.delete(index); // most recently used last
      this.chunks.set(index, chunk);
      return Promise.resolve();
    }
    if (!this.loading.has(index) && !(this.failedAt.get(index) > performance.now() - READ_RETRY_MS)) {
      const params = { format: "ndjson", pod: this.pod, container: this.container };
      Object.assign(params, { from_line: index * CHUNK + 1, limit: CHUNK });
      const done = readLines(params, (record) => this.put(record.line, record))
        .then(() => this.evict(index))
        .catch((error) => {
          this.failedAt.set(index, performance.now());
          failedRead(error);
        })
        .finally(() => this.loading.delete(index));
      this.loading.set(index, done);
    }
    return this.loading.get(index) || Promise.resolve();
  }

  evict(keep) {
    const last = Math.floor((this.total - 1) / CHUNK);
    for (const index of this.chunks.keys()) {
      if (this.chunks.size <= MAX_CHUNKS) break;
      if (index !== keep && index < last - 1) this.chunks.delete(index);
    }
  }
}

function stepOf(pod) {
  return pod.startsWith(taskId + "-") ? pod.slice(taskId.length + 1) : pod;
}

function parseHash(hash) {
  const match = /^#L(\d+)(?:-L?(\d+))?$/.exec(hash);
  if (!match) return null;
  const first = Number(match[1]);
  const last = match[2] ? Number(match[2]) : first;
  return [Math.min(first, last), Math.max(first, last)];
}

async function readLines(params, each) {
  const response = await api(`${base}/logs?${new URLSearchParams(params)}`);
  const degraded = response.headers.get("X-Tasklogs-Degraded");
  if (degraded) task.degraded = degraded;
  for await (const record of ndjson(response)) each(record);
  readError = null;
  schedule();
}

// A read that failed leaves the view as it is (its rows stay pending) and says why.
function failedRead(error) {
  readError = error;
  if (!(error instanceof ApiError)) console.error(error);
  schedule();
  setTimeout(schedule, READ_RETRY_MS + 50); // the rows still pending then are read again
}

// ---------- the list: what the rows are ----------

function arrayRows() {
  if (grep && grep.rows && view.context !== "") return grep.rows;
  return view.selection === ALL ? merged || [] : null;
}

function arrayRowsOfGrep() {
  return Boolean(grep && grep.rows && view.context !== "");
}

function rowCount() {
  const rows = arrayRows();
  if (rows) return rows.length;
  const log = logs.get(view.selection);
  return log ? log.total : 0;
}

// Row i: {log, line, ts, text}; {log, line, pending} while its chunk is read.
function row(i) {
  const rows = arrayRows();
  if (rows) return rows[i];
  const log = logs.get(view.selection);
  const line = log.get(i + 1);
  if (!line) {
    log.fetch(i + 1);
    return { log, line: i + 1, pending: true };
  }
  return { log, line: i + 1, ts: line.ts, text: line.text };
}

function indexOfLine(key, line) {
  const rows = arrayRows();
  if (!rows) return key === view.selection ? line - 1 : -1;
  return rows.findIndex((r) => r.log && r.log.key === key && r.line === line);
}

// ---------- rendering ----------

let scheduled = false;
const rowPx = () => parseFloat(getComputedStyle(scroller).lineHeight) || 18;

function schedule() {
  if (!scheduled) {
    scheduled = true;
    requestAnimationFrame(render);
  }
}

function geometry() {
  const count = rowCount();
  const px = rowPx();
  const visible = Math.max(1, Math.floor(scroller.clientHeight / px));
  const perLine = count * px > MAX_PX ? MAX_PX / count : px;
  return { count, px, visible, perLine };
}

function render() {
  scheduled = false;
  const { count, px, visible, perLine } = geometry();
  const height = Math.max(scroller.clientHeight, count * perLine + (perLine < px ? visible * px : px));
  spacer.style.height = `${height}px`;
  if (view.following) scroller.scrollTop = scroller.scrollHeight;
  const maxTop = Math.max(0, count - visible);
  const range = Math.max(1, scroller.scrollHeight - scroller.clientHeight);
  let top;
  let offset = 0;
  if (view.following) top = maxTop;
  else if (perLine === px) {
    top = Math.min(maxTop, Math.floor(scroller.scrollTop / px));
    offset = top < maxTop ? scroller.scrollTop - top * px : 0;
  } else top = Math.round((scroller.scrollTop / range) * maxTop);
  windowEl.style.height = `${scroller.clientHeight}px`;
  const fragment = document.createDocumentFragment();
  const pattern = highlightPattern();
  const current = grep && grep.matches[grep.current];
  for (let i = top; i < Math.min(count, top + visible + 1); i++) {
    fragment.append(lineElement(row(i), pattern, current));
  }
  windowEl.replaceChildren(fragment);
  if (view.selection === ALL && !arrayRowsOfGrep() && top < visible && !view.following) loadEarlier();
  if (windowEl.firstChild) windowEl.firstChild.style.marginTop = `${-offset}px`; // smooth scrolling
  scroller.classList.toggle("wrap", view.wrap);
  // wrapped rows can be taller than one: at the end the last row sits on the bottom edge
  windowEl.classList.toggle("at-end", view.wrap && top === maxTop && count > visible);
  const widest = arrayRows() ? Math.max(...[...logs.values()].map((l) => l.total), 1) : count;
  scroller.style.setProperty("--digits", String(Math.max(4, String(widest).length)));
  followButton.hidden = view.following || task.complete;
  followButton.textContent = view.unseen ? `Follow (${view.unseen} new)` : "Follow";
  showStatus();
}

function lineElement(r, pattern, current) {
  const element = document.createElement("div");
  element.className = "line";
  if (!r) return element;
  if (r.separator) {
    element.classList.add("separator");
    element.textContent = "--";
    return element;
  }
  element.dataset.line = String(r.line);
  element.dataset.pod = r.log.pod;
  element.dataset.container = r.log.container;
  const number = document.createElement("a");
  number.className = "ln";
  number.href = `#L${r.line}`;
  number.textContent = String(r.line);
  element.append(number);
  if (view.selection === ALL || arrayRows()) {
    const step = document.createElement("span");
    step.className = "step";
    step.textContent = r.log.step;
    step.title = `${r.log.pod} (${r.log.container})`;
    element.append(step);
  }
  if (view.ts) {
    const ts = document.createElement("span");
    ts.className = "ts";
    ts.textContent = formatTs(r.ts, view.ts);
    element.append(ts);
  }
  const text = document.createElement("span");
  text.className = "text";
  if (r.pending) element.classList.add("pending");
  else renderInto(text, r.text, pattern);
  element.append(text);
  const marked = view.marked && r.log.key === markedKey();
  if (marked && r.line >= view.marked[0] && r.line <= view.marked[1]) element.classList.add("hl");
  if (r.match === false) element.classList.add("context");
  if (current && current.key === r.log.key && current.line === r.line) element.classList.add("current");
  return element;
}

function markedKey() {
  return view.selection === ALL ? firstLogKey() : view.selection;
}

function firstLogKey() {
  return logs.keys().next().value;
}

// ---------- status ----------

function setState(state) {
  root.dataset.state = state;
  showStatus(); // the state and the words change together
}

function showStatus() {
  const [status, words] = statusWords();
  statusEl.dataset.status = status;
  if (statusEl.textContent !== words) statusEl.textContent = words;
  $("[data-role=phase]").textContent = task.phase || "";
  $("[data-role=phase]").className = `phase phase-${task.phase}`;
}

function statusWords() {
  const state = root.dataset.state;
  if (task.error) {
    const kind = task.error.status === 403 ? "forbidden" : task.error.status === 503 ? "degraded" : "error";
    const lead = { forbidden: "Not allowed", degraded: "Unavailable", error: "Error" }[kind];
    return [kind, `${lead}: ${task.error.message}`];
  }
  if (state === "loading") return ["loading", "Loading…"];
  if (readError) return ["error", `Error: ${readError.message} (retrying)`];
  if (state === "reconnecting") return ["reconnecting", "Connection lost: reconnecting (the log resumes where it stopped)…"];
  const selected = logs.get(view.selection);
  const gone = selected ? task.gone.has(selected.key) : task.gone.size > 0;
  if (task.degraded) {
    const what = task.degraded === "database" ? "the database is unreachable: lines come from Kubernetes alone"
      : "the cluster is unreachable: this is the stored copy";
    return ["degraded", `Degraded: ${what}`];
  }
  if (task.complete) return ["complete", `Complete: ${task.phase || "finished"}. Everything is stored.`];
  if (gone) return ["gone", "Pod deleted: what was captured is all there is."];
  const waiting = task.phase === "Pending" || task.phase === "" ||
    (selected && selected.phase === "Pending" && !selected.total);
  if (waiting) return ["waiting", "Waiting for the container to start…"];
  const follow = view.following ? "following new lines" : `paused${view.unseen ? ` (${view.unseen} new lines)` : ""}: End or Follow resumes`;
  return ["running", `Running: ${follow}.`];
}

function failed(error) {
  if (error instanceof ApiError) {
    task.error = error;
    setState("error");
    schedule();
  } else {
    console.error(error);
  }
}

// ---------- the tail ----------

function connect() {
  const params = { format: "lines" };
  if (cursor) params.cursor = cursor;
  else params.tail = String(TAIL);
  framesSeen = 0;
  socket = new WebSocket(wsUrl(`/ws/namespaces/${encode(namespace)}/tasks/${encode(taskId)}/logs`, params));
  socket.onmessage = (message) => {
    framesSeen++;
    retries = 0;
    onFrame(JSON.parse(message.data));
  };
  socket.onclose = (event) => onClose(event.code);
}

function onFrame(frame) {
  if (frame.cursor) cursor = frame.cursor;
  const handle = {
    snapshot: onSnapshot,
    lines: (f) => addLines(logFor(f), f.line, f.lines),
    phase: onPhase,
    gone: (f) => task.gone.add(logFor(f).key),
    complete: (f) => {
      task.phase = f.phase;
      task.complete = true;
      setState("complete");
      if (grep && !grep.final) runGrep(); // now the store holds everything: the final count
    },
    error: (f) => failed(new ApiError(f.status, f.error, f.message)),
  }[frame.type];
  if (handle) handle(frame);
  schedule();
}

function logFor(entry) {
  const key = `${entry.pod}/${entry.container}`;
  if (!logs.has(key)) {
    logs.set(key, new Log(entry));
    fillSelect();
  }
  return logs.get(key);
}

function onSnapshot(frame) {
  const first = !view.selection;
  task.phase = frame.phase;
  task.source = frame.source;
  task.complete = frame.complete;
  const added = [];
  for (const entry of frame.logs) {
    const log = logFor(entry);
    log.phase = entry.phase;
    if (entry.line - 1 + entry.lines.length > log.total) log.total = entry.line - 1 + entry.lines.length;
    added.push(...entry.lines.map((line, i) => ({ log, line: entry.line + i, ts: line.ts, text: line.text })));
    entry.lines.forEach((line, i) => log.put(entry.line + i, line));
  }
  if (first) {
    // every log's last TAIL lines: the timeline starts where the latest of the full ones starts
    let cut = "";
    for (const entry of frame.logs) {
      if (entry.lines.length >= TAIL && entry.lines[0].ts > cut) cut = entry.lines[0].ts;
    }
    added.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
    merged = added.filter((r) => r.ts >= cut);
    choose();
  } else mergeLive(added);
  setState(task.complete ? "complete" : "live");
  if (!first) jumpWhenWritten();
  if (!task.complete) checkDegraded();
}

// The tail does not say whether a store is down; the REST twin's X-Tasklogs-Degraded does.
async function checkDegraded() {
  try {
    const response = await api(`${base}/logs?${new URLSearchParams({ format: "ndjson", tail: "1" })}`);
    task.degraded = response.headers.get("X-Tasklogs-Degraded") || "";
    await response.body.cancel();
  } catch (error) {
    if (error instanceof ApiError && error.status === 503) task.degraded = "database";
  }
  schedule();
}

function addLines(log, first, lines) {
  const added = lines.map((line, i) => ({ log, line: first + i, ts: line.ts, text: line.text }));
  lines.forEach((line, i) => log.put(first + i, line));
  if (log.chunks.size > MAX_CHUNKS + 2) log.evict(-1);
  mergeLive(added);
  matchLive(added);
  const shown = view.selection === ALL || view.selection === log.key;
  if (shown && !view.following) view.unseen += lines.length;
  jumpWhenWritten();
}

function mergeLive(added) {
  if (!merged) return;
  for (const r of added) merged.push(r);
  if (merged.length > MERGED_MAX) merged.splice(0, merged.length - MERGED_MAX);
}

// The first line of each log in the timeline.
function mergedFirsts() {
  const firsts = new Map();
  for (const r of merged) if (!firsts.has(r.log.key) || r.line < firsts.get(r.log.key)) firsts.set(r.log.key, r.line);
  return firsts;
}

function hasEarlier(firsts) {
  for (const log of logs.values()) {
    const first = firsts.get(log.key);
    if (first === undefined ? log.total > 0 : first > 1) return true;
  }
  return false;
}

// Older lines of "all pods": the TAIL lines before each log's first line in the timeline, read by range
// (from_line/limit, so equal timestamps page back too), merged in by time. A log that still has older
// lines is complete in the timeline only from its block's first timestamp on: lines before the latest
// such start wait for the next read, so the timeline never skips a log's lines.
function loadEarlier() {
  if (earlier || !merged || !merged.length) return;
  if (earlierFailedAt > performance.now() - READ_RETRY_MS) return;
  const firsts = mergedFirsts();
  if (!hasEarlier(firsts)) return;
  const reads = [];
  const blocks = [];
  for (const log of logs.values()) {
    const first = firsts.get(log.key) ?? log.total + 1;
    if (first <= 1) continue;
    const from = Math.max(1, first - TAIL);
    const block = { log, from, rows: [] };
    blocks.push(block);
    const params = { format: "ndjson", pod: log.pod, container: log.container };
    Object.assign(params, { from_line: from, limit: first - from });
    reads.push(
      readLines(params, (r) => block.rows.push({ log, line: r.line, ts: r.ts, text: r.text })),
    );
  }
  earlier = Promise.all(reads)
    .then(() => {
      let cut = "";
      for (const block of blocks) {
        if (block.from > 1 && block.rows.length && block.rows[0].ts > cut) cut = block.rows[0].ts;
      }
      const kept = blocks.flatMap((block) => block.rows).filter((r) => r.ts >= cut);
      kept.forEach((r) => r.log.put(r.line, { ts: r.ts, text: r.text }));
      kept.sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
      const { px, perLine } = geometry();
      const topTs = merged[Math.min(merged.length - 1, Math.floor(scroller.scrollTop / perLine))].ts;
      const before = kept.filter((r) => r.ts <= topTs).length;
      merged = mergeByTime(kept, merged);
      if (view.selection === ALL && !view.following && perLine === px) scroller.scrollTop += before * px;
    })
    .catch((error) => {
      earlierFailedAt = performance.now();
      failedRead(error);
    })
    .finally(() => {
      earlier = null;
      schedule();
    });
}

// Two timelines as one; on equal timestamps the older block first (a log's earlier lines stay first).
function mergeByTime(older, newer) {
  const out = [];
  let i = 0;
  let j = 0;
  while (i < older.length || j < newer.length) {
    if (j >= newer.length || (i < older.length && older[i].ts <= newer[j].ts)) out.push(older[i++]);
    else out.push(newer[j++]);
  }
  return out;
}

function onPhase(frame) {
  if (frame.node === null || frame.node === undefined) task.phase = frame.phase;
  else for (const log of logs.values()) if (log.node === frame.node) log.phase = frame.phase;
}

async function onClose(code) {
  socket = null;
  if (code === 1000 || task.complete) return;
  if (code === 1008 || (task.error && task.error.status < 500)) {
    setState("error");
    schedule();
    return;
  }
  if (code === 1006 && framesSeen === 0) {
    // refused before the upgrade (401, 403, 429, 503): the REST twin says why
    try {
      await api(`/api/v1/namespaces/${encode(namespace)}/tasks?limit=1&prefix=${encode(taskId)}`);
    } catch (error) {
      // a refusal is the answer; no answer at all (the server restarting) means try again
      const refused = error instanceof ApiError && ![429, 502, 503].includes(error.status);
      if (refused) return failed(error);
    }
  }
  setState("reconnecting");
  schedule();
  const delay = Math.min(5000, 250 * 2 ** retries++) * (0.75 + Math.random() / 2);
  setTimeout(() => {
    task.error = null;
    connect();
  }, delay);
}

// ---------- choosing a log ----------

function fillSelect() {
  const options = [new Option("all pods (by time)", ALL)];
  for (const log of logs.values()) options.push(new Option(`${log.step} · ${log.container}`, log.key));
  select.replaceChildren(...options);
  if (view.selection) select.value = view.selection;
}

function choose() {
  const pod = query.get("pod");
  const container = query.get("container");
  const wanted = [...logs.values()].find((log) => log.pod === pod && (!container || log.container === container));
  if (wanted) view.selection = wanted.key;
  else if (logs.size === 1 || view.marked) view.selection = firstLogKey() || ALL;
  else view.selection = ALL;
  select.value = view.selection;
  if (view.marked) goToLine(markedKey(), view.marked[0], true);
  if (view.q) runGrep();
}

function selectLog(key) {
  view.selection = key;
  view.marked = null;
  if (key === ALL) {
    query.delete("pod");
    query.delete("container");
  } else {
    const log = logs.get(key);
    query.set("pod", log.pod);
    query.set("container", log.container);
  }
  saveAddress("");
  view.following = true;
  if (view.q) runGrep();
  schedule();
}

function saveAddress(hash = location.hash) {
  for (const [name, value] of [["q", view.q], ["ts", view.ts], ["context", view.context]]) {
    value ? query.set(name, value) : query.delete(name);
  }
  for (const [name, on] of [["wrap", view.wrap], ["regex", view.regex], ["ic", view.ignoreCase]]) {
    on ? query.set(name, "1") : query.delete(name);
  }
  const search = query.toString();
  history.replaceState(null, "", `${location.pathname}${search ? "?" + search : ""}${hash}`);
}

// Scrolls so that line `line` of log `key` is on screen (a third down), reading its chunk first.
async function goToLine(key, line, mark) {
  const log = logs.get(key);
  if (!log) return;
  if (view.selection !== ALL && view.selection !== key && !arrayRows()) selectLog(key);
  view.following = false;
  if (mark) view.marked = view.marked || [line, line];
  if (!arrayRows()) await log.fetch(line);
  const index = indexOfLine(key, line);
  if (index < 0 || (!arrayRows() && line > log.total)) {
    pendingJump = { key, line }; // not written yet (a running task): gone to when it comes
    schedule();
    return;
  }
  pendingJump = null;
  render(); // the spacer as tall as the rows known now, so the scroll is not cut short
  const { perLine, visible, count } = geometry();
  const top = Math.max(0, index - Math.floor(visible / 3));
  if (perLine === rowPx()) scroller.scrollTop = top * perLine;
  else scroller.scrollTop = (top / Math.max(1, count - visible)) * (scroller.scrollHeight - scroller.clientHeight);
  schedule();
}

function jumpWhenWritten() {
  const log = pendingJump && logs.get(pendingJump.key);
  if (log && log.total >= pendingJump.line) goToLine(pendingJump.key, pendingJump.line, false);
}

// ---------- search ----------

function escapeRegex(text) {
  return text.replace(/[\\^$.*+?()[\]{}|]/g, "\\$&");
}

function highlightPattern() {
  if (!view.q) return null;
  try {
    return new RegExp(view.regex ? view.q : escapeRegex(view.q), view.ignoreCase ? "gi" : "g");
  } catch {
    return null;
  }
}

let grepRun = 0;

async function runGrep() {
  const run = ++grepRun;
  saveAddress();
  if (!view.q) {
    grep = null;
    countEl.textContent = "";
    schedule();
    return;
  }
  grep = { matches: [], seen: new Set(), current: -1, rows: view.context !== "" ? [] : null, loading: true };
  grep.final = task.complete; // a running task's store may lag its tail by a journal commit
  countEl.textContent = "searching…";
  const params = { format: "ndjson", grep: view.regex ? view.q : escapeRegex(view.q) };
  if (view.ignoreCase) params.ignore_case = "true";
  if (view.context !== "" && Number(view.context) > 0) params.context = view.context;
  if (view.selection === ALL) params.merge = "time";
  else {
    params.pod = logs.get(view.selection).pod;
    params.container = logs.get(view.selection).container;
  }
  const found = grep;
  let previous = null;
  try {
    await readLines(params, (record) => {
      if (run !== grepRun) return;
      const log = logFor(record);
      if (record.match !== false) addMatch(found, log, record.line);
      if (found.rows) {
        const adjacent = previous && previous.log === log && previous.line + 1 === record.line;
        if (previous && !adjacent) found.rows.push({ separator: true });
        previous = { log, line: record.line, ts: record.ts, text: record.text, match: record.match };
        found.rows.push(previous);
      }
    });
  } catch (error) {
    if (run !== grepRun) return;
    countEl.textContent = error instanceof ApiError ? error.message : String(error);
    countEl.dataset.error = "true";
    grep.loading = false;
    return;
  }
  if (run !== grepRun) return;
  delete countEl.dataset.error;
  found.loading = false;
  if (!found.rows) matchCachedLines(found);
  countMatches();
  if (found.rows) {
    view.following = false;
    scroller.scrollTop = 0;
  }
  schedule();
}

function addMatch(found, log, line) {
  const id = `${log.key}:${line}`;
  if (found.seen.has(id)) return;
  found.seen.add(id);
  found.matches.push({ key: log.key, line });
}

function inScope(log) {
  return view.selection === ALL || view.selection === log.key;
}

// Lines the tail brought that the store did not hold yet when the grep read it.
function matchCachedLines(found) {
  const pattern = highlightPattern();
  if (!pattern) return;
  for (const log of logs.values()) {
    if (!inScope(log)) continue;
    for (const [index, chunk] of log.chunks) {
      chunk.forEach((line, i) => {
        pattern.lastIndex = 0;
        if (line && pattern.test(plainText(line.text))) addMatch(found, log, index * CHUNK + i + 1);
      });
    }
  }
  if (view.selection !== ALL) found.matches.sort((a, b) => a.line - b.line);
}

function countMatches() {
  const n = grep.matches.length;
  const where = grep.current >= 0 ? `${grep.current + 1} of ` : "";
  countEl.textContent = `${where}${n} ${n === 1 ? "match" : "matches"}`;
  countEl.dataset.count = String(n);
}

// New lines of a running task: counted as they come, as the server's grep would count them.
function matchLive(added) {
  if (!grep || grep.loading || grep.rows) return;
  const pattern = highlightPattern();
  if (!pattern) return;
  const before = grep.matches.length;
  for (const r of added) {
    pattern.lastIndex = 0;
    if (inScope(r.log) && pattern.test(plainText(r.text))) addMatch(grep, r.log, r.line);
  }
  if (grep.matches.length !== before) countMatches();
}

function step(direction) {
  if (!grep || !grep.matches.length) return;
  const n = grep.matches.length;
  grep.current = grep.current < 0 ? (direction > 0 ? 0 : n - 1) : (grep.current + direction + n) % n;
  const match = grep.matches[grep.current];
  countMatches();
  if (view.selection === ALL && !grep.rows && indexOfLine(match.key, match.line) < 0) selectLog(match.key);
  goToLine(match.key, match.line, false);
}

// ---------- copy, download, line links ----------

async function linesOf(key, first, last) {
  const log = logs.get(key);
  const out = [];
  for (let n = first; n <= last; n++) {
    if (!log.get(n)) await log.fetch(n);
    const line = log.get(n);
    out.push(line ? plainText(line.text) : "");
  }
  return out.join("\n") + "\n";
}

async function copy() {
  const selection = getSelection().toString();
  let text = selection;
  if (!text && view.marked) text = await linesOf(markedKey(), view.marked[0], view.marked[1]);
  if (!text) return;
  try {
    await navigator.clipboard.writeText(text);
    flash("Copied.");
  } catch {
    flash("The browser refused the clipboard: select the text and press Ctrl+C.");
  }
}

function flash(words) {
  const button = $("#copy");
  button.textContent = words.length < 12 ? words : "Copy";
  button.title = words;
  setTimeout(() => (button.textContent = "Copy"), 1500);
}

function downloadLog() {
  const params = { format: "text" };
  const log = logs.get(view.selection);
  if (log) Object.assign(params, { pod: log.pod, container: log.container });
  // the API's Content-Disposition names the file; a download with a token is named the same
  download(`${base}/logs?${new URLSearchParams(params)}`, `${taskId}.log`).catch(failedRead);
}

function onLineLink(event) {
  const link = event.target.closest("a.ln");
  if (!link) return;
  event.preventDefault();
  const element = link.closest(".line");
  const line = Number(element.dataset.line);
  const key = `${element.dataset.pod}/${element.dataset.container}`;
  if (view.selection === ALL || arrayRows()) {
    view.selection = key;
    select.value = key;
    query.set("pod", element.dataset.pod);
    query.set("container", element.dataset.container);
    if (arrayRowsOfGrep()) {
      view.context = ""; // from the matches to the line in its log
      $("#grep-context").value = "";
    }
    view.marked = [line, line];
    saveAddress(`#L${line}`);
    goToLine(key, line, true);
    return;
  }
  if (event.shiftKey && view.marked) {
    view.marked = [Math.min(view.marked[0], line), Math.max(view.marked[1], line)];
  } else view.marked = [line, line];
  const [first, last] = view.marked;
  saveAddress(first === last ? `#L${first}` : `#L${first}-L${last}`);
  view.following = false;
  schedule();
}

// ---------- follow and keys ----------

function follow() {
  pendingJump = null;
  view.following = true;
  view.unseen = 0;
  schedule();
}

function pause() {
  if (!view.following) return;
  view.following = false;
  schedule();
}

// Away from the end pauses follow (the view's own scrolls go to the end, or pause first); only End
// or the Follow button resume it.
function onScroll() {
  const atEnd = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 2;
  if (!atEnd) pause();
  schedule();
}

function onKey(event) {
  const typing = ["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (event.key === "Escape" && typing) {
    document.activeElement.blur();
    scroller.focus();
    return;
  }
  if (typing) return;
  const { px, visible } = geometry();
  const keys = {
    "/": () => $("#grep-q").focus(),
    End: () => follow(),
    Home: () => { pause(); scroller.scrollTop = 0; },
    PageUp: () => { pause(); scroller.scrollTop -= visible * px; },
    PageDown: () => { scroller.scrollTop += visible * px; },
    ArrowUp: () => { pause(); scroller.scrollTop -= px; },
    ArrowDown: () => { scroller.scrollTop += px; },
    n: () => step(1),
    N: () => step(-1),
    t: () => cycleTimestamps(),
    w: () => toggleWrap(),
    c: () => copy(),
  };
  const action = keys[event.key];
  if (action && !event.ctrlKey && !event.metaKey && !event.altKey) {
    event.preventDefault();
    action();
    schedule();
  }
}

function cycleTimestamps() {
  view.ts = { "": "local", local: "utc", utc: "" }[view.ts];
  $("#ts-mode").value = view.ts;
  saveAddress();
}

function toggleWrap() {
  view.wrap = !view.wrap;
  $("#wrap").checked = view.wrap;
  saveAddress();
}

// ---------- wiring ----------

function wire() {
  document.title = `${taskId} · tasklogs`;
  $("[data-role=task-name]").textContent = `${namespace} / ${taskId}`;
  $("#grep-q").value = view.q;
  $("#grep-regex").checked = view.regex;
  $("#grep-ic").checked = view.ignoreCase;
  $("#grep-context").value = view.context;
  $("#ts-mode").value = view.ts;
  $("#wrap").checked = view.wrap;
  scroller.addEventListener("scroll", onScroll, { passive: true });
  scroller.addEventListener("wheel", (event) => event.deltaY < 0 && pause(), { passive: true });
  scroller.addEventListener("click", onLineLink);
  window.addEventListener("keydown", onKey);
  window.addEventListener("resize", schedule);
  followButton.addEventListener("click", follow);
  select.addEventListener("change", () => selectLog(select.value));
  $("#grep-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = $("#grep-q").value;
    if (q === view.q && grep && !grep.loading) return step(event.submitter === $("#grep-prev") ? -1 : 1);
    view.q = q;
    runGrep();
  });
  $("#grep-q").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.shiftKey) {
      event.preventDefault();
      step(-1);
    }
  });
  $("#grep-next").addEventListener("click", () => step(1));
  $("#grep-prev").addEventListener("click", () => step(-1));
  for (const [id, apply] of [
    ["#grep-regex", (e) => (view.regex = e.checked)],
    ["#grep-ic", (e) => (view.ignoreCase = e.checked)],
    ["#grep-context", (e) => (view.context = e.value)],
  ]) {
    $(id).addEventListener("change", (event) => {
      apply(event.target);
      if (view.q) runGrep();
      else saveAddress();
    });
  }
  $("#ts-mode").addEventListener("change", (event) => {
    view.ts = event.target.value;
    saveAddress();
    schedule();
  });
  $("#wrap").addEventListener("change", (event) => {
    view.wrap = event.target.checked;
    saveAddress();
    schedule();
  });
  $("#copy").addEventListener("click", copy);
  $("#download").addEventListener("click", downloadLog);
  window.addEventListener("hashchange", () => {
    view.marked = parseHash(location.hash);
    if (view.marked) goToLine(markedKey(), view.marked[0], true);
  });
}

wire();
schedule();
connect();
scroller.focus();
// For people who automate the page (and the tests): the view's state, read-only by convention.
window.tasklogsViewer = { view, task, logs, merged: () => merged, token: () => Boolean(token()) };
