// Finding nodes: the search box over every server's node names, and the Table panel (the selected subtree as a
// sortable, filterable table), both from the trees the page already has (no request to the servers).
import { el } from "./tree.js";
import { $, api, post, toast } from "./ui.js";

const MAX_RESULTS = 200;
const MAX_TABLE_ROWS = 5000;

// `*` and `?` as in a shell pattern over the whole name; plain text anywhere in the name; a leading `/` in the path.
export function nameMatcher(text) {
  const q = text.trim();
  if (!q) return null;
  if (/[*?]/.test(q)) {
    const re = new RegExp("^" + q.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".") + "$", "i");
    return (node) => re.test(q.startsWith("/") ? node.path : node.name);
  }
  const needle = q.toLowerCase();
  return q.startsWith("/") ? (node) => node.path.toLowerCase().includes(needle) : (node) => node.name.toLowerCase().includes(needle);
}

export function setupSearch(trees, navigate, colour) {
  const input = $("search");
  const box = $("search-results");
  let found = [];
  let active = -1;
  const close = () => { box.hidden = true; active = -1; };
  const mark = () => {
    [...box.querySelectorAll("li[data-i]")].forEach((li) => li.classList.toggle("active", Number(li.dataset.i) === active));
    box.querySelector("li.active")?.scrollIntoView({ block: "nearest" });
  };
  const open = (i) => {
    const hit = found[i];
    if (!hit) return;
    close();
    navigate(hit.server, hit.node.path);
  };
  const run = () => {
    const match = nameMatcher(input.value);
    found = [];
    if (!match) { close(); return; }
    let total = 0;
    for (const t of trees()) {
      for (const node of t.nodes) {
        if (!match(node)) continue;
        total++;
        if (found.length < MAX_RESULTS) found.push({ server: t.name, node });
      }
    }
    const items = found.map((hit, i) => {
      const li = el("li", { dataset: { i, server: hit.server, path: hit.node.path } },
        el("span", { className: "swatch", style: { background: colour(hit.node) } }),
        el("span", { className: "hit-path" }, hit.node.path), el("span", { className: "muted" }, ` ${hit.server} · ${hit.node.state}`));
      li.addEventListener("mousedown", (e) => { e.preventDefault(); open(i); });
      return li;
    });
    const summary = total > found.length ? `${total} found, the first ${found.length} shown` : `${total} found`;
    box.replaceChildren(el("li", { className: "muted summary" }, summary), ...items);
    box.hidden = false;
    active = found.length ? 0 : -1;
    mark();
  };
  input.addEventListener("input", run);
  input.addEventListener("focus", () => { if (input.value.trim()) run(); });
  input.addEventListener("blur", close);
  input.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      if (!found.length) return;
      active = (active + (e.key === "ArrowDown" ? 1 : found.length - 1)) % found.length;
      mark();
    } else if (e.key === "Enter") {
      open(active);
    } else if (e.key === "Escape") {
      close();
    }
  });
}

// The Table panel: every node below the selection (the whole server for a server), sortable by each column.
export function tableView(ctx, holder, tree, colour) {
  const under = ctx.path === "/" ? "" : ctx.path;
  const nodes = tree.nodes.filter((n) => n.path === under || n.path.startsWith(under + "/"));
  const state = el("select", { title: "Only nodes in this state" }, el("option", { value: "" }, "all states"),
    ...["aborted", "active", "submitted", "queued", "complete", "unknown", "suspended"].map((s) => el("option", { value: s, selected: ctx.view.tableState === s }, s)));
  const tasksOnly = el("input", { type: "checkbox", checked: ctx.view.tableTasks !== false });
  const body = el("tbody");
  const note = el("span", { className: "muted" });
  let sortKey = ctx.view.tableSort || "path";
  const columns = [["path", "path"], ["name", "name"], ["kind", "kind"], ["state", "state"]];
  const draw = () => {
    ctx.view.tableState = state.value;
    ctx.view.tableTasks = tasksOnly.checked;
    ctx.view.tableSort = sortKey;
    let rows = nodes.filter((n) => (!tasksOnly.checked || n.kind === "task" || n.kind === "alias") &&
      (!state.value || (state.value === "suspended" ? n.susp : n.state === state.value)));
    if (sortKey !== "path") rows = [...rows].sort((a, b) => String(a[sortKey]).localeCompare(String(b[sortKey])) || a.path.localeCompare(b.path));
    note.textContent = rows.length > MAX_TABLE_ROWS ? `${rows.length} nodes, the first ${MAX_TABLE_ROWS} shown` : `${rows.length} nodes`;
    body.replaceChildren(...rows.slice(0, MAX_TABLE_ROWS).map((n) => {
      const link = el("a", { href: "#", className: "nodelink" }, n.path);
      link.addEventListener("click", (e) => { e.preventDefault(); ctx.navigate(ctx.server, n.path, "info"); });
      return el("tr", { dataset: { path: n.path, state: n.state } }, el("td", null, link), el("td", null, n.name), el("td", null, n.kind),
        el("td", null, el("span", { className: "state", style: { background: colour(n) } }, n.state + (n.susp ? " (suspended)" : ""))));
    }));
  };
  const heads = columns.map(([key, label]) => {
    const th = el("th", { className: "sortable", title: `Sort by ${label}` }, label);
    th.addEventListener("click", () => { sortKey = key; draw(); });
    return th;
  });
  state.addEventListener("change", draw);
  tasksOnly.addEventListener("change", draw);
  holder.replaceChildren(el("div", { className: "row-tools" }, state, el("label", null, tasksOnly, " tasks only"), note),
    el("table", { id: "node-table" }, el("thead", null, el("tr", null, ...heads)), body));
  draw();
  holder.dataset.loaded = "table";
}

// The keyboard, as in ecflow_ui's tree: up/down move, right opens (then goes to the first child), left closes
// (then goes to the parent), Enter or space opens or closes, Home/End the first/last row.
export function setupKeys(treeEl, list, selected, filtered, refreshRows, navigate) {
  treeEl.addEventListener("keydown", (event) => {
    const rows = list.rows;
    if (!rows.length) return;
    const sel = selected();
    const at = sel ? rows.findIndex((r) => r.tree.name === sel.server && (r.node ? r.node.path : "/") === sel.path) : -1;
    const go = (i) => {
      const r = rows[Math.max(0, Math.min(rows.length - 1, i))];
      navigate(r.tree.name, r.node ? r.node.path : "/", undefined, true);
    };
    const entry = rows[at];
    const key = entry ? (entry.node ? entry.node.path : "/") : null;
    const hasChildren = entry && (entry.node ? entry.node.children.length > 0 : entry.tree.nodes.length > 0);
    const toggle = (open) => {
      if (open) entry.tree.expanded.add(key); else entry.tree.expanded.delete(key);
      refreshRows();
    };
    switch (event.key) {
      case "ArrowDown": go(at + 1); break;
      case "ArrowUp": go(at < 0 ? 0 : at - 1); break;
      case "Home": go(0); break;
      case "End": go(rows.length - 1); break;
      case "ArrowRight":
        if (!entry) { go(0); break; }
        if (hasChildren && !filtered() && !entry.tree.expanded.has(key)) toggle(true);
        else if (hasChildren) go(at + 1);
        break;
      case "ArrowLeft":
        if (!entry) break;
        if (hasChildren && !filtered() && entry.tree.expanded.has(key)) { toggle(false); break; }
        if (entry.node) {
          const parent = entry.node.parent >= 0 ? entry.tree.nodes[entry.node.parent].path : "/";
          navigate(entry.tree.name, parent, undefined, true);
        }
        break;
      case "Enter":
      case " ":
        if (entry && hasChildren && !filtered()) toggle(!entry.tree.expanded.has(key));
        break;
      default:
        return;
    }
    event.preventDefault();
  });
}

// ecflow_ui's suite filter: the suites each server's tree follows. The page server then syncs only those (a client
// handle on the ecFlow server, dropped when it stops or the choice changes); all again once every box is ticked.
export function setupSuiteFilter(servers) {
  const list = el("div", { id: "suites-list" });
  const cancel = el("button", { type: "button", id: "suites-cancel" }, "Cancel");
  const ok = el("button", { type: "button", id: "suites-ok" }, "OK");
  const dialog = el("dialog", { id: "suites" }, el("p", null, "The suites the tree shows:"), list,
    el("div", { className: "dialog-buttons" }, cancel, ok));
  document.body.append(dialog);
  const button = $("suite-filter");
  const filtered = new Set();
  button.addEventListener("click", async () => {
    const sets = await Promise.all(servers().map((server) => api("suites", { server }).catch((e) => ({ server, error: e.message }))));
    list.replaceChildren(...sets.map((s) => el("fieldset", { dataset: { server: s.server } }, el("legend", null, s.server),
      ...(s.error ? [el("span", { className: "muted" }, s.error)] : s.all.map((name) => el("label", { className: "suite-choice" },
        el("input", { type: "checkbox", checked: !s.shown || s.shown.includes(name), dataset: { key: `${s.server} /${name}`, suite: name } }),
        ` ${name}`))))));
    dialog.showModal();
  });
  cancel.addEventListener("click", () => dialog.close());
  ok.addEventListener("click", async () => {
    dialog.close();
    for (const set of list.querySelectorAll("fieldset[data-server]")) {
      const boxes = [...set.querySelectorAll("input[data-suite]")];
      if (!boxes.length) continue;
      const chosen = boxes.filter((b) => b.checked).map((b) => b.dataset.suite);
      const all = chosen.length === boxes.length;
      try {
        await post("suites", { server: set.dataset.server, suites: all ? null : chosen });
        if (all) filtered.delete(set.dataset.server); else filtered.add(set.dataset.server);
      } catch (e) {
        toast(e.message, true);
      }
    }
    button.classList.toggle("on", filtered.size > 0);
  });
}
