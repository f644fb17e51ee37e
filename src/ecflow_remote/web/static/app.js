// ecflow-remote web: the page. Everything arrives on one event stream (/api/events); nothing reloads the page.
import { ServerTree, VirtualList, el, escapeHtml, matcher, visibleRows } from "./tree.js";

const ROW = 22;
const MAX_OUTPUT = 4 * 1024 * 1024;  // characters of job output kept on the page (the end of it)
const $ = (id) => document.getElementById(id);
const csrf = document.querySelector('meta[name="csrf-token"]').content;

const page = {
  hello: null,
  colours: {},
  serverColours: {},
  trees: new Map(),
  match: null,
  selected: null,    // {server, path}
  details: null,
  output: null,      // the EventSource of the job output shown
};
// For tests and bench/web.py: when each server's tree was first drawn (ms since navigation), and the last event.
window.ecfWeb = { painted: {}, events: {}, ready: false };

// --------------------------------------------------------------------------------------------- the tree

const list = new VirtualList($("tree"), $("tree-spacer"), $("tree-rows"), ROW, renderRow);

function colour(node) {
  const c = page.colours;
  return node.susp ? c.suspended : (c[node.state] || c.unknown);
}

function renderRow(row, index) {
  const { tree, node } = row;
  const sel = page.selected;
  if (!node) {
    const selected = sel && sel.server === tree.name && sel.path === "/";
    const state = tree.error ? null : el("span", { className: "sstate", style: { color: page.serverColours[tree.serverState] || "#333" } }, tree.serverState || "…");
    return el("div", { className: "node server" + (selected ? " selected" : ""), dataset: { i: index, server: tree.name, path: "/" }, title: tree.error || "" },
      el("span", { className: "tw" }, tree.expanded.has("/") ? "▾" : "▸"),
      el("span", { className: "name" }, tree.name),
      state,
      tree.error ? el("span", { className: "err" }, tree.error) : null);
  }
  const twisty = node.children.length ? (page.match || tree.expanded.has(node.path) ? "▾" : "▸") : "";
  const selected = sel && sel.server === tree.name && sel.path === node.path;
  return el("div", {
    className: `node ${node.kind}` + (selected ? " selected" : ""),
    dataset: { i: index, server: tree.name, path: node.path, state: node.state, suspended: node.susp ? 1 : 0 },
    style: { paddingLeft: `${node.depth * 16}px` },
    title: node.state + (node.susp ? ", suspended" : ""),
  },
  el("span", { className: "tw" }, twisty),
  el("span", { className: "name", style: { background: colour(node) } }, node.name),
  node.kind === "task" ? null : el("span", { className: "kind" }, node.kind),
  node.susp ? el("span", { className: "susp" }, "suspended") : null);
}

function orderedTrees() {
  const names = page.hello ? page.hello.servers.map((s) => s.name) : [...page.trees.keys()];
  return names.map((n) => page.trees.get(n)).filter(Boolean);
}

function refreshRows() {
  const rows = visibleRows(orderedTrees(), page.match);
  list.setRows(rows);
  const tasks = orderedTrees().reduce((sum, t) => sum + t.nodes.length, 0);
  $("count").textContent = page.match
    ? `${rows.length - orderedTrees().length} shown of ${tasks} nodes`
    : `${tasks} nodes`;
}

function tree(name) {
  let t = page.trees.get(name);
  if (!t) { t = new ServerTree(name); page.trees.set(name, t); }
  return t;
}

$("tree").addEventListener("click", (event) => {
  const row = event.target.closest(".node");
  if (!row) return;
  const entry = list.rows[Number(row.dataset.i)];
  if (!entry) return;
  const key = entry.node ? entry.node.path : "/";
  if (event.target.classList.contains("tw") && !page.match) {
    if (entry.tree.expanded.has(key)) entry.tree.expanded.delete(key); else entry.tree.expanded.add(key);
    refreshRows();
    return;
  }
  select(entry.tree.name, key);
});

$("tree").addEventListener("dblclick", (event) => {
  const row = event.target.closest(".node");
  const entry = row && list.rows[Number(row.dataset.i)];
  if (!entry || page.match) return;
  const key = entry.node ? entry.node.path : "/";
  if (entry.tree.expanded.has(key)) entry.tree.expanded.delete(key); else entry.tree.expanded.add(key);
  refreshRows();
});

function applyFilter() {
  page.match = matcher($("filter").value, $("state-filter").value);
  refreshRows();
}
$("filter").addEventListener("input", applyFilter);
$("state-filter").addEventListener("change", applyFilter);
$("collapse-all").addEventListener("click", () => {
  for (const t of page.trees.values()) t.expanded = new Set(["/"]);
  refreshRows();
});

// ------------------------------------------------------------------------------------------ the details

async function select(server, path) {
  page.selected = { server, path };
  list.draw();
  stopOutput();
  $("output").textContent = "";
  $("output-source").textContent = "";
  if (path === "/") { showServer(server); return; }
  await loadDetails();
}

function showServer(server) {
  const t = page.trees.get(server);
  const s = page.hello.servers.find((x) => x.name === server) || {};
  $("details-empty").hidden = true;
  $("details-body").hidden = false;
  $("d-path").textContent = server;
  $("d-state").textContent = t && t.serverState ? t.serverState : "not connected";
  $("d-state").style.background = "#fff";
  $("d-server").textContent = `ecFlow server ${s.host}:${s.port}` + (t && t.error ? ` — ${t.error}` : "");
  $("d-actions").innerHTML = "";
  $("tab-info").innerHTML = "";
  $("vars").tBodies[0].innerHTML = "";
}

async function loadDetails() {
  const sel = page.selected;
  if (!sel || sel.path === "/") return;
  const q = new URLSearchParams({ server: sel.server, path: sel.path });
  const response = await fetch(`/api/node?${q}`);
  const data = await response.json();
  if (page.selected !== sel) return;  // another node was chosen meanwhile
  if (!response.ok) { toast(data.error || response.statusText, true); return; }
  page.details = data;
  renderDetails(data);
}

function renderDetails(d) {
  $("details-empty").hidden = true;
  $("details-body").hidden = false;
  $("d-path").textContent = d.path;
  $("d-state").textContent = d.state + (d.suspended ? " (suspended)" : "");
  $("d-state").style.background = d.suspended ? page.colours.suspended : (page.colours[d.state] || page.colours.unknown);
  $("d-state").dataset.state = d.state;
  $("d-server").textContent = `${d.kind} on ${d.server}` + (d.try_no ? ` · try ${d.try_no}` : "");
  renderActions(d);
  renderInfo(d);
  renderVariables(d);
  $("output-open").disabled = !(d.kind === "task" || d.kind === "alias");
}

function renderActions(d) {
  const holder = $("d-actions");
  holder.innerHTML = "";
  const destructive = new Set(page.hello.destructive);
  for (const action of page.hello.actions) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = action;
    b.dataset.action = action;
    if (destructive.has(action)) b.classList.add("destructive");
    b.addEventListener("click", () => confirmAction(d.server, action, [d.path]));
    holder.appendChild(b);
  }
}

function table(rows) {
  return `<table><tbody>${rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td class="value">${escapeHtml(v)}</td></tr>`).join("")}</tbody></table>`;
}

function renderInfo(d) {
  const a = d.attributes;
  const parts = [];
  parts.push('<div class="section-title">Why is it not running?</div>');
  if (d.why === null || d.why === undefined) {
    parts.push(`<p class="muted">${escapeHtml(d.why_error || "not available in this version of ecflow-remote yet")}</p>`);
  } else if (!d.why.length) {
    parts.push('<p class="muted">Nothing holds it.</p>');
  } else {
    parts.push(`<ul class="why">${d.why.map((w) => `<li>${escapeHtml(w)}</li>`).join("")}</ul>`);
  }
  const facts = [["path", d.path], ["state", d.state + (d.suspended ? ", suspended" : "")]];
  if (d.abort_reason) facts.push(["abort reason", d.abort_reason]);
  if (d.jobout) facts.push(["job output", d.jobout]);
  if (d.logserver) facts.push(["log server", d.logserver]);
  if (d.jobout_error) facts.push(["job output", d.jobout_error]);
  if (a.defstatus) facts.push(["defstatus", a.defstatus]);
  if (a.repeat) facts.push(["repeat", a.repeat]);
  if (a.late) facts.push(["late", a.late]);
  parts.push(table(facts));
  if (a.trigger) parts.push('<div class="section-title">Trigger</div>' + table([["trigger", a.trigger]]));
  if (a.complete) parts.push('<div class="section-title">Complete</div>' + table([["complete", a.complete]]));
  const labels = Object.entries(a.labels || {});
  if (labels.length) parts.push('<div class="section-title">Labels</div>' + table(labels));
  const meters = Object.entries(a.meters || {});
  if (meters.length) parts.push('<div class="section-title">Meters</div>' + table(meters.map(([k, m]) => [k, `${m.value} (${m.min} to ${m.max}, threshold ${m.threshold})`])));
  const evs = Object.entries(a.events || {});
  if (evs.length) parts.push('<div class="section-title">Events</div>' + table(evs.map(([k, v]) => [k, v ? "set" : "clear"])));
  if ((a.times || []).length) parts.push('<div class="section-title">Time dependencies</div>' + table(a.times.map((t) => ["", t])));
  if ((a.limits || []).length) parts.push('<div class="section-title">Limits</div>' + table(a.limits.map((l) => [l.name, `${l.value} of ${l.limit}` + (l.paths.length ? `: ${l.paths.join(", ")}` : "")])));
  if ((a.inlimits || []).length) parts.push('<div class="section-title">In limits</div>' + table(a.inlimits.map((l) => [l.name, `${l.path || ""} (${l.tokens} token${l.tokens === 1 ? "" : "s"})`])));
  $("tab-info").innerHTML = parts.join("");
}

function renderVariables(d) {
  const text = $("var-filter").value.trim().toLowerCase();
  const inherited = $("var-inherited").checked;
  const rows = [];
  for (const v of d.variables) {
    if (!inherited && !v.own) continue;
    if (text && !v.name.toLowerCase().includes(text) && !v.value.toLowerCase().includes(text)) continue;
    const from = v.own ? (v.kind === "generated" ? "generated" : "this node") : `${v.origin}${v.kind === "generated" ? " (generated)" : ""}`;
    const value = v.hidden ? "(hidden)" : v.value;
    rows.push(`<tr class="${v.own ? "own" : "inherited"}"><td>${escapeHtml(v.name)}</td><td class="value">${escapeHtml(value)}</td><td>${escapeHtml(from)}</td></tr>`);
    for (const o of v.overrides) {
      rows.push(`<tr class="overridden"><td></td><td class="value">${escapeHtml(o.value)}</td><td>${escapeHtml(o.origin)} (overridden)</td></tr>`);
    }
  }
  $("vars").tBodies[0].innerHTML = rows.join("");
}
$("var-filter").addEventListener("input", () => page.details && renderVariables(page.details));
$("var-inherited").addEventListener("change", () => page.details && renderVariables(page.details));

for (const b of document.querySelectorAll("#tabs button")) {
  b.addEventListener("click", () => {
    for (const other of document.querySelectorAll("#tabs button")) other.classList.toggle("active", other === b);
    for (const tab of document.querySelectorAll(".tab")) tab.hidden = tab.id !== `tab-${b.dataset.tab}`;
  });
}

// --------------------------------------------------------------------------------------------- actions

let pending = null;
function confirmAction(server, action, paths) {
  pending = { server, action, paths };
  const destructive = page.hello.destructive.includes(action);
  $("confirm-text").textContent = `${action[0].toUpperCase() + action.slice(1)} on ${server}?`;
  $("confirm-paths").innerHTML = paths.map((p) => `<li>${escapeHtml(p)}</li>`).join("");
  $("confirm-ok").textContent = action;
  $("confirm-ok").classList.toggle("destructive", destructive);
  $("confirm").showModal();
}
$("confirm-cancel").addEventListener("click", () => { pending = null; $("confirm").close(); });
$("confirm-ok").addEventListener("click", async () => {
  const todo = pending;
  pending = null;
  $("confirm").close();
  if (!todo) return;
  const response = await fetch("/api/action", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(todo),
  });
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (response.ok) toast(`${todo.action}: done on ${todo.server}`);
  else toast(data.error || response.statusText, true);
});

// ------------------------------------------------------------------------------------------- job output

function stopOutput() {
  if (page.output) { page.output.close(); page.output = null; }
  $("output-stop").hidden = true;
  $("output-open").hidden = false;
}

function appendOutput(text, cls) {
  const pre = $("output");
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  if (cls) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text + "\n";
    pre.appendChild(span);
  } else {
    pre.appendChild(document.createTextNode(text));
  }
  if (pre.textContent.length > MAX_OUTPUT) {
    pre.textContent = "… (the beginning is not shown)\n" + pre.textContent.slice(-MAX_OUTPUT);
  }
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}

$("output-open").addEventListener("click", () => {
  const sel = page.selected;
  if (!sel) return;
  stopOutput();
  $("output").textContent = "";
  $("output-source").textContent = "reading…";
  const follow = $("output-follow").checked;
  const q = new URLSearchParams({ server: sel.server, path: sel.path, follow: follow ? "1" : "0" });
  const es = new EventSource(`/api/output?${q}`);
  page.output = es;
  $("output-open").hidden = true;
  $("output-stop").hidden = false;
  es.addEventListener("source", (e) => {
    const s = JSON.parse(e.data);
    $("output-source").textContent = `${s.jobout} — from the ${s.from}`;
    $("output").dataset.source = s.from;
  });
  es.addEventListener("data", (e) => appendOutput(JSON.parse(e.data).text));
  es.addEventListener("note", (e) => appendOutput(JSON.parse(e.data).text, "note"));
  es.addEventListener("end", () => { $("output").dataset.complete = "1"; stopOutput(); });
  es.addEventListener("error", (e) => {
    // Either the server's own error event, or the stream closed: never reconnect to an output by itself.
    if (e.data) { appendOutput(JSON.parse(e.data).text, "note"); $("output-source").textContent = "failed"; }
    stopOutput();
  });
});
$("output-stop").addEventListener("click", stopOutput);

// ---------------------------------------------------------------------------------------------- header

function showStatus(s) {
  const t = s.tunnel;
  const badge = $("tunnel");
  badge.textContent = `tunnel ${t.state} · ${t.method}`;
  badge.className = "badge " + (t.state === "up" ? "up" : ["reconnecting", "starting"].includes(t.state) ? "warn" : "down");
  badge.title = t.message || "";
  const cert = $("cert");
  if (t.certificate) {
    cert.textContent = `certificate: ${t.certificate.summary}`;
    cert.classList.toggle("warn", !!t.certificate.warning);
    cert.title = t.certificate.warning || "";
  } else {
    cert.textContent = "certificate: none found";
  }
}

let toastTimer = 0;
function toast(text, error = false) {
  const el = $("toast");
  el.textContent = text;
  el.className = error ? "error" : "";
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, error ? 10000 : 4000);
}

// ------------------------------------------------------------------------------------------- live events

let detailsTimer = 0;
function refreshDetailsSoon() {
  clearTimeout(detailsTimer);
  detailsTimer = setTimeout(loadDetails, 150);
}

function connect() {
  const es = new EventSource("/api/events");
  const live = $("live");
  es.onopen = () => { live.textContent = "live"; live.className = "badge up"; };
  es.onerror = () => { live.textContent = "reconnecting…"; live.className = "badge off"; };
  const on = (name, fn) => es.addEventListener(name, (e) => {
    window.ecfWeb.events[name] = (window.ecfWeb.events[name] || 0) + 1;
    fn(JSON.parse(e.data));
  });
  on("hello", (h) => {
    page.hello = h;
    page.colours = h.colours;
    page.serverColours = h.server_colours;
    for (const s of h.servers) tree(s.name);
    refreshRows();
    window.ecfWeb.ready = true;
  });
  on("status", showStatus);
  on("tree", (data) => {
    const t = tree(data.server);
    t.load(data);
    refreshRows();
    if (!(data.server in window.ecfWeb.painted)) window.ecfWeb.painted[data.server] = performance.now();
    if (page.selected && page.selected.server === data.server) refreshDetailsSoon();
  });
  on("states", (data) => {
    const t = tree(data.server);
    t.serverState = data.server_state;
    for (const [path, state, susp] of data.nodes) {
      const node = t.byPath.get(path);
      if (node) { node.state = state; node.susp = !!susp; }
    }
    if (page.match) refreshRows(); else list.draw();
    const sel = page.selected;
    if (sel && sel.server === data.server && data.nodes.some(([p]) => p === sel.path)) refreshDetailsSoon();
  });
  on("touched", (data) => {
    const sel = page.selected;
    if (sel && sel.server === data.server && data.paths.includes(sel.path)) refreshDetailsSoon();
  });
  on("server_error", (data) => {
    const t = tree(data.server);
    t.error = data.error;
    t.nodes = [];
    t.byPath = new Map();
    refreshRows();
  });
}

connect();
