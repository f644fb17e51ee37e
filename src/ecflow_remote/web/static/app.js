// ecflow-remote web: the page. Everything arrives on one event stream (/api/events); nothing reloads the page.
import { setupKeys, setupSearch, setupSuiteFilter, tableView } from "./find.js";
import { Watcher } from "./notify.js";
import { LOADERS, alter, renderVariables, tabsFor } from "./panels.js";
import { ServerTree, VirtualList, el, escapeHtml, matcher, visibleRows } from "./tree.js";
import { $, api, askConfirm, post, toast } from "./ui.js";

const ROW = 22;
const MAX_OUTPUT = 4 * 1024 * 1024;  // characters of job output kept on the page (the end of it)

const page = {
  hello: null,
  colours: {},
  serverColours: {},
  trees: new Map(),
  match: null,
  selected: null,    // {server, path}
  kind: null,        // the selected node's kind ("server" for a server's own row)
  tab: "info",       // the details tab shown
  view: {},          // the panels' own choices (lines of log, sort column…), kept from node to node
  details: null,
  output: null,      // the EventSource of the job output shown
};
// For tests and bench/web.py: when each server's tree was first drawn (ms since navigation), and the last event.
window.ecfWeb = { painted: {}, events: {}, ready: false };

// --------------------------------------------------------------------------------------------- the tree

const watcher = new Watcher(() => list.draw(), (...a) => navigate(...a));
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
    dataset: { i: index, server: tree.name, path: node.path, state: node.state, suspended: node.susp ? 1 : 0, late: node.late ? 1 : 0 },
    style: { paddingLeft: `${node.depth * 16}px` },
    title: node.state + (node.susp ? ", suspended" : ""),
  },
  el("span", { className: "tw" }, twisty),
  el("span", { className: "name", style: { background: colour(node) } }, node.name),
  node.kind === "task" ? null : el("span", { className: "kind" }, node.kind),
  node.susp ? el("span", { className: "susp" }, "suspended") : null,
  node.late ? el("span", { className: "late", title: "late: a late attribute's limit passed" }, "late") : null,
  watcher.isWatched(tree.name, node.path) && node.parent < 0 ? el("span", { className: "watched", title: "watched: notifications on" }, "watched") : null);
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
  navigate(entry.tree.name, key);
});

$("tree").addEventListener("dblclick", (event) => {
  const row = event.target.closest(".node");
  const entry = row && list.rows[Number(row.dataset.i)];
  if (!entry || page.match) return;
  const key = entry.node ? entry.node.path : "/";
  if (entry.tree.expanded.has(key)) entry.tree.expanded.delete(key); else entry.tree.expanded.add(key);
  refreshRows();
});

setupKeys($("tree"), list, () => page.selected, () => !!page.match, refreshRows, navigate);

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

// The view is the address: #/SERVER/PATH/TAB (#/SERVER//TAB for the server itself), so every view has a link and
// the browser's back button walks the views.
function routeOf(server, path, tab) {
  const parts = path === "/" ? [""] : path.split("/").slice(1);
  return "#/" + [server, ...parts, tab].map(encodeURIComponent).join("/");
}
function parseRoute(hash) {
  const parts = hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  if (parts.length < 2 || !parts[0]) return null;
  const tab = parts.length >= 3 ? parts.pop() : "info";
  const rest = parts.slice(1).filter((p) => p !== "");
  return { server: parts[0], path: rest.length ? "/" + rest.join("/") : "/", tab: tab || "info" };
}
// `replace`: the keyboard's moves through the tree replace the view in the history instead of adding one each.
export function navigate(server, path, tab, replace = false) {
  const route = routeOf(server, path, tab || page.tab);
  if (replace) history.replaceState(null, "", route);
  if (location.hash !== route) location.hash = route; else applyRoute();
}
let pendingRoute = null;
function applyRoute() {
  const route = parseRoute(location.hash);
  if (!route) return;
  const t = page.trees.get(route.server);
  if (!t || !t.loaded) { pendingRoute = route; return; }  // opened once the server's tree arrives
  pendingRoute = null;
  if (route.path !== "/" && !t.byPath.has(route.path)) {
    // Perhaps a suite the page has not heard of yet: tried again with the server's next tree.
    pendingRoute = route;
    toast(`${route.server}: no node ${route.path} (yet)`, true);
    return;
  }
  revealInTree(t, route.path);
  const sel = page.selected;
  if (sel && sel.server === route.server && sel.path === route.path) { showTab(route.tab); return; }
  select(route.server, route.path, route.tab);
}
window.addEventListener("hashchange", applyRoute);

function revealInTree(t, path) {
  t.expanded.add("/");
  for (let n = t.byPath.get(path); n && n.parent >= 0;) { n = t.nodes[n.parent]; t.expanded.add(n.path); }
  refreshRows();
  const index = list.rows.findIndex((r) => r.tree === t && (r.node ? r.node.path : "/") === path);
  if (index >= 0) list.scrollTo(index);
}

function isTask(server, path) {
  const n = page.trees.get(server)?.byPath.get(path);
  return !!n && (n.kind === "task" || n.kind === "alias");
}

function context() {
  const sel = page.selected;
  return { server: sel.server, path: sel.path, kind: page.kind, details: page.details, readOnly: page.hello.read_only,
    navigate, reload: loadDetails, colours: page.colours, isTask: (path) => isTask(sel.server, path), view: page.view };
}

async function select(server, path, tab) {
  page.selected = { server, path };
  page.details = null;
  list.draw();
  stopOutput();
  $("output").textContent = "";
  $("output-source").textContent = "";
  for (const holder of document.querySelectorAll(".tab")) delete holder.dataset.loaded;
  const t = page.trees.get(server);
  page.kind = path === "/" ? "server" : (t && t.byPath.get(path) ? t.byPath.get(path).kind : "task");
  showTabs(tab || page.tab || "info");
  await loadDetails();
}

function showTabs(wanted) {
  const tabs = tabsFor(page.kind);
  for (const b of document.querySelectorAll("#tabs button")) b.hidden = !tabs.includes(b.dataset.tab);
  showTab(tabs.includes(wanted) ? wanted : "info", false);
}

// Show a tab; its panel is read from the server each time it is shown (Reload buttons read again).
function showTab(tab, load = true) {
  const tabs = tabsFor(page.kind);
  if (!tabs.includes(tab)) tab = "info";
  page.tab = tab;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === tab);
  for (const holder of document.querySelectorAll(".tab")) holder.hidden = holder.id !== `tab-${tab}`;
  const sel = page.selected;
  if (sel) history.replaceState(null, "", routeOf(sel.server, sel.path, tab));
  if (load) loadPanel();
}

function loadPanel() {
  if (page.tab === "table" && page.selected) {
    const t = page.trees.get(page.selected.server);
    if (t) tableView(context(), $("tab-table"), t, colour);
    return;
  }
  const loader = LOADERS[page.tab];
  if (!loader || !page.selected || !page.hello) return;
  if (page.tab === "why" && !page.details) return;  // drawn once the details arrive
  const holder = $(`tab-${page.tab}`);
  delete holder.dataset.loaded;  // set again once this read is shown (the tests wait for it)
  loader(context(), holder);
}

for (const b of document.querySelectorAll("#tabs button")) {
  if (!$(`tab-${b.dataset.tab}`)) $("details-body").append(el("div", { id: `tab-${b.dataset.tab}`, className: "tab", hidden: true }));
  b.addEventListener("click", () => { const s = page.selected; if (s) navigate(s.server, s.path, b.dataset.tab); });
}

async function loadDetails() {
  const sel = page.selected;
  if (!sel) return;
  let data;
  try {
    data = sel.path === "/" ? await api("server", { server: sel.server }) : await api("node", { server: sel.server, path: sel.path });
  } catch (e) {
    if (page.selected === sel) {
      if (sel.path === "/") showServer(sel.server, null); else toast(e.message, true);
    }
    return;
  }
  if (page.selected !== sel) return;  // another node was chosen meanwhile
  const first = !page.details;
  page.details = data;
  if (sel.path === "/") showServer(sel.server, data); else renderDetails(data);
  renderVariables(context());
  if (first || ["why", "triggers"].includes(page.tab)) loadPanel();
}

function showServer(server, data) {
  const t = page.trees.get(server);
  const s = page.hello.servers.find((x) => x.name === server) || {};
  $("details-empty").hidden = true;
  $("details-body").hidden = false;
  $("d-path").textContent = server;
  $("d-state").textContent = t && t.serverState ? t.serverState : "not connected";
  $("d-state").style.background = "#fff";
  $("d-server").textContent = `ecFlow server ${s.host}:${s.port}` + (t && t.error ? ` — ${t.error}` : "");
  $("d-actions").innerHTML = "";
  const facts = [["server", `${s.host}:${s.port}`], ["state", t && t.serverState ? t.serverState : "not connected"]];
  if (t && t.loaded) {
    const tasks = t.nodes.filter((n) => n.kind === "task" || n.kind === "alias");
    facts.push(["suites", t.roots().map((r) => r.name).join(", ") || "none"], ["nodes", `${t.nodes.length} (${tasks.length} tasks)`]);
    for (const state of ["aborted", "active", "submitted"]) facts.push([state, String(tasks.filter((n) => n.state === state).length)]);
  }
  if (t && t.error) facts.push(["error", t.error]);
  $("tab-info").innerHTML = table(facts);
  if (!data) $("vars").tBodies[0].innerHTML = "";
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
  $("output-open").disabled = !(d.kind === "task" || d.kind === "alias");
}

function renderActions(d) {
  const holder = $("d-actions");
  holder.innerHTML = "";
  if (d.kind === "suite") holder.append(watcher.button(d.server, d.path));
  if (page.hello.read_only) return;
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
  const facts = [["path", d.path], ["state", d.state + (d.suspended ? ", suspended" : "")]];
  if (d.abort_reason) facts.push(["abort reason", d.abort_reason]);
  if (d.jobout) facts.push(["job output", d.jobout]);
  if (d.logserver) facts.push(["log server", d.logserver]);
  if (d.jobout_error) facts.push(["job output", d.jobout_error]);
  if (a.defstatus) facts.push(["defstatus", a.defstatus]);
  if (a.repeat) facts.push(["repeat", a.repeat]);
  if (a.late) facts.push(["late", a.late]);
  parts.push(table(facts));
  if (d.why && d.why.length) parts.push(`<div class="section-title">Why is it not running?</div><ul class="why">${d.why.map((w) => `<li>${escapeHtml(w)}</li>`).join("")}</ul>`);
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

$("var-filter").addEventListener("input", () => page.details && renderVariables(context()));
$("var-inherited").addEventListener("change", () => page.details && renderVariables(context()));
$("var-add").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("var-add-name").value.trim();
  if (!name || !page.selected) return;
  alter(context(), "add", name, $("var-add-value").value).then(() => { $("var-add-name").value = ""; $("var-add-value").value = ""; });
});

// --------------------------------------------------------------------------------------------- actions

async function confirmAction(server, action, paths) {
  const destructive = page.hello.destructive.includes(action);
  const title = `${action[0].toUpperCase() + action.slice(1)} on ${server}?`;
  if (!await askConfirm(title, paths, action, destructive)) return;
  try {
    await post("action", { server, action, paths });
    toast(`${action}: done on ${server}`);
  } catch (e) {
    toast(e.message, true);
  }
}

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
    document.body.classList.toggle("read-only", !!h.read_only);
    $("read-only").hidden = !h.read_only;
    applyRoute();  // a deep link: opened once its server's tree is here
  });
  on("status", showStatus);
  on("tree", (data) => {
    const t = tree(data.server);
    t.load(data);
    refreshRows();
    if (!(data.server in window.ecfWeb.painted)) window.ecfWeb.painted[data.server] = performance.now();
    if (pendingRoute && pendingRoute.server === data.server) applyRoute();
    else if (page.selected && page.selected.server === data.server) refreshDetailsSoon();
  });
  on("states", (data) => {
    const t = tree(data.server);
    t.serverState = data.server_state;
    watcher.states(t, data.nodes);  // before the tree takes them: it compares with what was
    for (const [path, state, susp, late] of data.nodes) {
      const node = t.byPath.get(path);
      if (node) { node.state = state; node.susp = !!susp; node.late = !!late; }
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

setupSearch(orderedTrees, (server, path) => navigate(server, path), colour);
setupSuiteFilter(() => page.hello ? page.hello.servers.map((s) => s.name) : []);
connect();
