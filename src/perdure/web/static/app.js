// perdure web UI: plain JS, no build step, no third-party code.
// Views: #/ (runs, live) and #/runs/<id> (a run: facts, values, timeline, streams, events).
"use strict";

const POLL_MS = 1000;
const TOKEN_KEY = "perdure.token";
const STATUSES = ["pending", "running", "completed", "failed", "cancelled"];
const SVG = "http://www.w3.org/2000/svg";

// ---------------------------------------------------------------- token and API calls
(function takeTokenFromUrl() {
  const url = new URL(window.location.href);
  const token = url.searchParams.get("token");
  if (token) {
    localStorage.setItem(TOKEN_KEY, token);
    url.searchParams.delete("token");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  }
})();

function token() { return localStorage.getItem(TOKEN_KEY) || ""; }

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options = {}) {
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  if (token()) headers.Authorization = "Bearer " + token();
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, Object.assign({}, options, { headers }));
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (response.status === 401) showTokenPanel(true);
  if (!response.ok) {
    throw new ApiError(response.status, (body && body.error) || response.statusText);
  }
  return body;
}

function showTokenPanel(show) {
  document.getElementById("token-panel").classList.toggle("hidden", !show);
  if (show) document.getElementById("token-input").focus();
}

function showError(message) {
  const el = document.getElementById("error");
  el.textContent = message || "";
  el.classList.toggle("hidden", !message);
}

// ---------------------------------------------------------------- small DOM helpers
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function badge(status) { return el("span", { class: "status " + status, text: status }); }

function ms(iso) { return iso ? Date.parse(iso) : null; }

function fmtTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return (seconds * 1000).toFixed(1) + " ms";
  if (seconds < 120) return seconds.toFixed(2) + " s";
  const m = Math.floor(seconds / 60), s = Math.floor(seconds % 60);
  return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m} min ${s} s`;
}

function json(value, indent) {
  return JSON.stringify(value === undefined ? null : value, null, indent);
}

// ---------------------------------------------------------------- routing and polling
let current = null;  // the live view: { stop() }

function route() {
  if (current) current.stop();
  showError("");
  const hash = window.location.hash || "#/";
  const view = document.getElementById("view");
  view.replaceChildren();
  const match = hash.match(/^#\/runs\/([^?]+)/);
  current = match ? runView(view, decodeURIComponent(match[1])) : runsView(view, hash);
}

function poller(fn) {
  let timer = null, stopped = false;
  const live = document.getElementById("live");
  async function tick() {
    if (stopped) return;
    let again = true;
    try {
      again = (await fn()) !== false;
      showError("");
    } catch (error) {
      showError(error.status === 401 ? "Enter the API token to continue." : "Cannot load: " + error.message);
      again = error.status !== 404;
    }
    live.classList.toggle("off", !again);
    if (again && !stopped) timer = setTimeout(tick, POLL_MS);
  }
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

// ---------------------------------------------------------------- runs list
function runsView(root, hash) {
  const params = new URLSearchParams(hash.split("?")[1] || "");
  let status = params.get("status") || "";
  let workflow = params.get("workflow") || "";

  const chips = el("div", { class: "toolbar", id: "status-filters" });
  const renderChips = () => {
    chips.replaceChildren(...["", ...STATUSES].map((s) => el("button", {
      type: "button", class: "chip" + (s === status ? " active" : ""), "data-status": s || "all",
      text: s || "all", onclick: () => { status = s; renderChips(); sync(); refresh(); },
    })));
  };
  const wfInput = el("input", { id: "workflow-filter", placeholder: "workflow", value: workflow,
    onchange: () => { workflow = wfInput.value.trim(); sync(); refresh(); } });
  chips.append(el("span", { class: "spacer" }), wfInput);
  const sync = () => {
    const q = new URLSearchParams();
    if (status) q.set("status", status);
    if (workflow) q.set("workflow", workflow);
    history.replaceState(null, "", "#/" + (q.toString() ? "?" + q : ""));
  };
  renderChips();

  const select = el("select", { id: "start-workflow" });
  const args = el("input", { id: "start-args", placeholder: "args as JSON, e.g. [1, 2]", size: 28 });
  const startForm = el("form", { class: "toolbar", id: "start-form", onsubmit: async (e) => {
    e.preventDefault();
    let parsed = [];
    try { parsed = args.value.trim() ? JSON.parse(args.value) : []; } catch (err) {
      showError("Arguments must be a JSON array: " + err.message); return;
    }
    if (!Array.isArray(parsed)) parsed = [parsed];
    try {
      const run = await api("/api/runs", { method: "POST", body: json({ workflow: select.value, args: parsed }) });
      window.location.hash = "#/runs/" + encodeURIComponent(run.id);
    } catch (err) { showError("Cannot start: " + err.message); }
  } }, el("strong", { text: "Start a run" }), select, args, el("button", { type: "submit", text: "Start" }));
  api("/api/workflows").then((body) => {
    select.replaceChildren(...body.workflows.map((w) => el("option", { value: w, text: w })));
    startForm.classList.toggle("hidden", body.workflows.length === 0);
  }).catch(() => startForm.classList.add("hidden"));

  const tbody = el("tbody", { id: "runs-body" });
  const table = el("table", { id: "runs" }, el("thead", {}, el("tr", {},
    ["Run", "Workflow", "Status", "Created", "Duration"].map((h) => el("th", { text: h })))), tbody);
  root.append(el("h1", { text: "Runs" }), startForm, chips, table, el("div", { class: "muted", id: "runs-more" }));

  async function refresh() {
    const q = new URLSearchParams({ limit: "100" });
    if (status) q.set("status", status);
    if (workflow) q.set("workflow", workflow);
    const page = await api("/api/runs?" + q);
    tbody.replaceChildren(...page.runs.map((r) => el("tr", {
      class: "row-link", "data-run": r.id, "data-status": r.status,
      onclick: () => { window.location.hash = "#/runs/" + encodeURIComponent(r.id); },
    }, el("td", {}, el("a", { href: "#/runs/" + encodeURIComponent(r.id), class: "mono", text: r.id })),
       el("td", { text: r.workflow }), el("td", {}, badge(r.status)),
       el("td", { text: fmtTime(r.created_at) }), el("td", { text: fmtDuration(r.duration_seconds) }))));
    if (!page.runs.length) tbody.append(el("tr", {}, el("td", { colspan: 5, class: "empty", text: "No runs." })));
    document.getElementById("runs-more").textContent = page.next_cursor ? "Showing the newest 100." : "";
  }
  return { stop: poller(refresh) };
}

// ---------------------------------------------------------------- one run
function runView(root, runId) {
  const heading = el("h1", {}, el("span", { class: "mono", text: runId }));
  const facts = el("dl", { class: "facts", id: "facts" });
  const values = el("div", { class: "values", id: "values" });
  const timeline = el("div", { class: "timeline", id: "timeline" });
  const streamsBox = el("div", { class: "streams", id: "streams" });
  const eventsBody = el("tbody", { id: "events-body" });
  root.append(
    heading, facts, values,
    el("h2", { text: "Timeline" }), timeline,
    el("div", { class: "legend" }, ["completed", "running", "retrying", "failed"].map((s) =>
      el("span", {}, el("i", { class: s }), s)), el("span", {}, el("i", { class: "wait" }), "sleep"),
      el("span", {}, el("i", { class: "hook" }), "hook"), el("span", { text: "▼ retry" })),
    el("h2", { text: "Streams" }), streamsBox,
    el("h2", { text: "Events" }),
    el("table", { id: "events" }, el("thead", {}, el("tr", {},
      ["Seq", "Time", "+ms", "Type", "Correlation", "Data"].map((h) => el("th", { text: h })))), eventsBody),
  );
  const events = [];
  const streams = new Map();
  let run = null;

  function stopStreams() { for (const s of streams.values()) s.close(); }

  async function refresh() {
    const after = events.length ? events[events.length - 1].seq : 0;
    const [detail, page] = await Promise.all([
      api("/api/runs/" + encodeURIComponent(runId)),
      api(`/api/runs/${encodeURIComponent(runId)}/events?after_seq=${after}`),
    ]);
    run = detail;
    events.push(...page.events);
    renderHeading();
    renderFacts();
    renderValues();
    drawTimeline(timeline, run, events);
    renderStreams();
    renderEvents();
    return !run.terminal;  // keep polling until the run ended
  }

  function renderHeading() {
    const parts = [el("span", { class: "mono", text: run.id }), badge(run.status)];
    if (!run.terminal) {
      parts.push(el("button", { type: "button", class: "danger", id: "cancel", text: "Cancel run",
        onclick: async () => {
          if (!confirm("Cancel run " + run.id + "?")) return;
          try { await api(`/api/runs/${encodeURIComponent(run.id)}/cancel`, { method: "POST" }); }
          catch (err) { showError("Cannot cancel: " + err.message); }
        } }));
    }
    heading.replaceChildren(...parts);
  }

  function renderFacts() {
    const rows = [["Workflow", run.workflow], ["Created", fmtTime(run.created_at)],
      ["Started", fmtTime(run.started_at)], ["Ended", fmtTime(run.completed_at)],
      ["Duration", fmtDuration(run.duration_seconds)],
      ["Steps", String(run.steps.length)], ["Events", String(run.event_count)]];
    if (run.idempotency_key) rows.push(["Idempotency key", run.idempotency_key]);
    facts.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  }

  function renderValues() {
    const boxes = [el("div", {}, el("h3", { text: "Input" }), el("pre", { id: "input", text: json(run.input, 2) }))];
    if (run.status === "completed") {
      boxes.push(el("div", {}, el("h3", { text: "Output" }), el("pre", { id: "output", text: json(run.output, 2) })));
    }
    if (run.error) {
      const e = run.error;
      boxes.push(el("div", {}, el("h3", { text: "Error" }), el("pre", { id: "run-error", class: "error-text",
        text: `${e.type || "Error"}: ${e.message || ""}\n\n${e.traceback || ""}` })));
    }
    values.replaceChildren(...boxes);
  }

  function renderStreams() {
    for (const info of run.streams) {
      if (!streams.has(info.name)) streams.set(info.name, openStream(streamsBox, runId, info.name));
    }
    if (!run.streams.length) streamsBox.replaceChildren(el("div", { class: "empty", text: "No streams." }));
    else streamsBox.querySelector(".empty")?.remove();
  }

  function renderEvents() {
    const start = ms(run.created_at);
    if (eventsBody.children.length === events.length) return;
    eventsBody.replaceChildren(...events.map((e) => el("tr", { "data-seq": e.seq },
      el("td", { text: e.seq }), el("td", { text: fmtTime(e.created_at) }),
      el("td", { class: "mono", text: String(Math.round(ms(e.created_at) - start)) }),
      el("td", { text: e.type }), el("td", { class: "mono", text: e.correlation_id || "" }),
      el("td", { class: "data mono", title: json(e.data, 2), text: json(e.data) }))));
  }

  const stopPolling = poller(refresh);
  return { stop: () => { stopPolling(); stopStreams(); } };
}

// ---------------------------------------------------------------- live streams (SSE)
function openStream(box, runId, name) {
  const pre = el("pre", { class: "stream-chunks", "data-stream": name });
  const state = el("span", { class: "status running", text: "live" });
  const count = el("span", { class: "muted", text: "0 chunks" });
  box.append(el("div", { class: "stream", "data-stream": name },
    el("h3", {}, el("span", { class: "mono", text: name }), state, count), pre));
  let n = 0;
  let url = `/api/runs/${encodeURIComponent(runId)}/streams/${encodeURIComponent(name)}`;
  if (token()) url += "?access_token=" + encodeURIComponent(token());
  const source = new EventSource(url);
  source.onmessage = (message) => {
    const stick = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(chunkText(JSON.parse(message.data)) + "\n");
    n += 1;
    count.textContent = n + (n === 1 ? " chunk" : " chunks");
    if (stick) pre.scrollTop = pre.scrollHeight;
  };
  source.addEventListener("end", () => {
    source.close();  // else EventSource would reconnect and be told "end" again
    state.className = "status completed";
    state.textContent = "ended";
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) { state.className = "status failed"; state.textContent = "closed"; }
  };
  return source;
}

function chunkText(value) {
  if (value && typeof value === "object" && value.type === "bytes" && typeof value.base64 === "string") {
    const bytes = Uint8Array.from(atob(value.base64), (c) => c.charCodeAt(0));
    try { return new TextDecoder("utf-8", { fatal: true }).decode(bytes); }
    catch (_) { return "<" + bytes.length + " bytes> " + Array.from(bytes.slice(0, 32), (b) => b.toString(16).padStart(2, "0")).join(" "); }
  }
  return typeof value === "string" ? value : JSON.stringify(value);
}

// ---------------------------------------------------------------- timeline (SVG, to scale)
const COLORS = { completed: "#2e9e5b", running: "#2f6fde", retrying: "#e08a1e", failed: "#d6453d",
  wait: "#c7b3ea", hook: "#a9c4f2", pending: "#b9c1ca" };
const MAX_ROWS = 300;

const STEPS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 15e3, 3e4, 6e4, 12e4,
  3e5, 6e5, 9e5, 18e5, 36e5, 72e5, 216e5, 432e5, 864e5];

function niceStep(span, target) {  // a human tick interval giving about `target` ticks
  return STEPS_MS.find((step) => span / step <= target) || Math.ceil(span / target / 864e5) * 864e5;
}

function drawTimeline(box, run, events) {
  const now = Date.now();
  const t0 = ms(run.created_at);
  let t1 = run.completed_at ? ms(run.completed_at) : now;
  const rows = [];
  for (const s of run.steps) {
    const segments = s.attempts.map((a) => ({
      from: ms(a.started_at) ?? ms(s.created_at), to: ms(a.ended_at) ?? (run.terminal ? t1 : now),
      color: COLORS[a.status] || COLORS.pending, status: a.status, attempt: a.attempt,
      title: `${s.name} attempt ${a.attempt}: ${a.status}` + (a.error ? ` (${a.error.type}: ${a.error.message})` : ""),
    }));
    if (!segments.length) segments.push({ from: ms(s.created_at), to: run.terminal ? t1 : now, color: COLORS.pending, status: "pending", title: s.name + ": pending" });
    const marks = s.attempts.filter((a) => a.status === "retrying").map((a) => ({ at: ms(a.ended_at), title: `retry after attempt ${a.attempt}` }));
    rows.push({ kind: "step", label: s.name + (s.attempt > 1 ? ` ×${s.attempt}` : ""), status: s.status, segments, marks, id: s.correlation_id });
  }
  for (const w of run.waits) {
    // a sleep still waiting is drawn up to now (or the run's end), not to its wake-up
    // time: an hour-long sleep would squash everything else to slivers
    const end = ms(w.completed_at) ?? (run.terminal ? t1 : now);
    const label = w.completed_at || run.terminal ? "sleep" : "sleep → " + new Date(w.resume_at).toLocaleTimeString(undefined, { hour12: false });
    rows.push({ kind: "wait", label, id: w.correlation_id, status: w.status, marks: [],
      segments: [{ from: ms(w.created_at), to: end, color: COLORS.wait, title: `sleep until ${fmtTime(w.resume_at)} (${w.status})` }] });
  }
  for (const h of run.hooks) {
    const received = events.filter((e) => e.correlation_id === h.correlation_id && e.type === "hook_received");
    const end = ms(h.disposed_at) ?? (run.terminal ? t1 : now);
    rows.push({ kind: "hook", label: (h.is_webhook ? "webhook " : "hook ") + h.token.slice(0, 18), id: h.correlation_id,
      status: h.status, marks: received.map((e) => ({ at: ms(e.created_at), title: "payload received" })),
      segments: [{ from: ms(h.created_at), to: end, color: COLORS.hook, title: `hook ${h.token} (${h.status}, ${received.length} received)` }] });
  }
  rows.sort((a, b) => a.segments[0].from - b.segments[0].from);
  for (const r of rows) for (const s of r.segments) t1 = Math.max(t1, s.to);
  const shown = rows.slice(0, MAX_ROWS);

  const width = Math.max(640, box.clientWidth - 20);
  const labelW = 210, rowH = 22, top = 24;
  const plotW = width - labelW - 16;
  const span = Math.max(t1 - t0, 1);
  const x = (t) => labelW + ((t - t0) / span) * plotW;
  const height = top + Math.max(shown.length, 1) * rowH + 8;
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, id: "timeline-svg", role: "img",
    "aria-label": "timeline of steps, sleeps and hooks" });

  const step = niceStep(span, 8);
  for (let t = 0; t <= span + 1e-9; t += step) {
    const px = x(t0 + t);
    root.append(svg("line", { x1: px, x2: px, y1: top - 6, y2: height, stroke: "#eef0f2" }));
    root.append(svg("text", { x: px, y: 12, class: "axis", "text-anchor": "middle", text: fmtAxis(t) }));
  }
  root.append(svg("line", { x1: labelW, x2: labelW + plotW, y1: top - 6, y2: top - 6, stroke: "#c9d0d7" }));
  if (!shown.length) root.append(svg("text", { x: labelW, y: top + 14, class: "axis", text: "No steps, sleeps or hooks yet." }));

  shown.forEach((r, i) => {
    const y = top + i * rowH;
    const g = svg("g", { class: "row " + r.kind, "data-kind": r.kind, "data-id": r.id, "data-status": r.status });
    g.append(svg("text", { x: 0, y: y + 14, text: r.label.length > 30 ? r.label.slice(0, 29) + "…" : r.label }));
    r.segments.forEach((s, k) => {
      if (k > 0) {  // the backoff between two attempts
        const prev = r.segments[k - 1];
        g.append(svg("line", { x1: x(prev.to), x2: x(s.from), y1: y + 10, y2: y + 10, stroke: "#b9c1ca", "stroke-dasharray": "3 2" }));
      }
      const bar = svg("rect", { x: x(s.from), y: y + 4, width: Math.max(2, x(s.to) - x(s.from)), height: 12, rx: 2,
        fill: s.color, class: "bar", "data-status": s.status || r.kind });
      bar.append(svg("title", { text: `${s.title}\n${fmtTime(new Date(s.from).toISOString())} → ${fmtDuration((s.to - s.from) / 1000)}` }));
      g.append(bar);
    });
    for (const m of r.marks) {
      const px = x(m.at);
      const mark = svg("path", { d: `M${px - 4} ${y} L${px + 4} ${y} L${px} ${y + 6} Z`, fill: r.kind === "hook" ? "#2f6fde" : "#d6453d", class: "marker" });
      mark.append(svg("title", { text: m.title }));
      g.append(mark);
    }
    root.append(g);
  });
  const note = rows.length > shown.length ? el("div", { class: "muted", text: `Showing the first ${shown.length} of ${rows.length} rows.` }) : null;
  box.replaceChildren(root, ...(note ? [note] : []));
}

function fmtAxis(msValue) {
  if (msValue === 0) return "0";
  if (msValue < 1000) return Math.round(msValue) + " ms";
  if (msValue < 120000) return +(msValue / 1000).toFixed(2) + " s";
  if (msValue < 72e5) return +(msValue / 60000).toFixed(1) + " min";
  return +(msValue / 36e5).toFixed(1) + " h";
}

// ---------------------------------------------------------------- start
document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("token-button").addEventListener("click", () =>
    showTokenPanel(document.getElementById("token-panel").classList.contains("hidden")));
  document.getElementById("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    localStorage.setItem(TOKEN_KEY, document.getElementById("token-input").value.trim());
    document.getElementById("token-input").value = "";
    showTokenPanel(false);
    route();
  });
  document.getElementById("token-clear").addEventListener("click", () => {
    localStorage.removeItem(TOKEN_KEY);
    showTokenPanel(false);
  });
  window.addEventListener("hashchange", route);
  route();
});
