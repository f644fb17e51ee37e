// The suites of every server as one virtual list: only the rows on screen are in the DOM, so a 10 000-task
// family opens as fast as a small one.

const KINDS = { s: "suite", f: "family", t: "task", a: "alias" };

export class ServerTree {
  constructor(name) {
    this.name = name;
    this.serverState = "";
    this.error = null;
    this.nodes = [];          // {parent, name, kind, state, susp, depth, path, children}
    this.byPath = new Map();
    this.expanded = new Set(["/"]);  // paths; "/" is the server row itself
    this.loaded = false;
  }

  // From the server's compact form: [parent index, name, kind code, state, suspended, late], depth first.
  load(data) {
    const nodes = new Array(data.nodes.length);
    const byPath = new Map();
    for (let i = 0; i < data.nodes.length; i++) {
      const [parent, name, kind, state, susp, late] = data.nodes[i];
      const up = parent >= 0 ? nodes[parent] : null;
      const path = (up ? up.path : "") + "/" + name;
      const node = { parent, name, kind: KINDS[kind] || "task", state, susp: !!susp, late: !!late, depth: up ? up.depth + 1 : 1,
        path, children: [] };
      nodes[i] = node;
      byPath.set(path, node);
      if (up) up.children.push(node);
    }
    if (!this.loaded) {
      for (const node of nodes) if (node.parent < 0) this.expanded.add(node.path);  // suites open at first
    }
    this.nodes = nodes;
    this.byPath = byPath;
    this.serverState = data.server_state;
    this.error = null;
    this.loaded = true;
  }

  roots() {
    return this.nodes.filter((n) => n.parent < 0);
  }
}

export function matcher(text, state) {
  const needle = text.trim().toLowerCase();
  if (!needle && !state) return null;
  return (node) => {
    if (needle && !node.name.toLowerCase().includes(needle)) return false;
    if (!state) return true;
    return state === "suspended" ? node.susp : node.state === state;
  };
}

// The rows to show, in order: {tree, node} (node null for a server's own row).
export function visibleRows(trees, match) {
  const rows = [];
  for (const tree of trees) {
    rows.push({ tree, node: null });
    if (!tree.expanded.has("/") && !match) continue;
    if (match) {
      // Every match and its ancestors; ancestors are shown open whatever their own expand state.
      const keep = new Set();
      for (const node of tree.nodes) {
        if (!match(node)) continue;
        for (let n = node; n && !keep.has(n); n = n.parent >= 0 ? tree.nodes[n.parent] : null) keep.add(n);
      }
      const walk = (node) => {
        if (!keep.has(node)) return;
        rows.push({ tree, node });
        for (const child of node.children) walk(child);
      };
      for (const root of tree.roots()) walk(root);
      continue;
    }
    const stack = tree.roots().reverse();
    while (stack.length) {
      const node = stack.pop();
      rows.push({ tree, node });
      if (node.children.length && tree.expanded.has(node.path)) {
        for (let i = node.children.length - 1; i >= 0; i--) stack.push(node.children[i]);
      }
    }
  }
  return rows;
}

export class VirtualList {
  constructor(scroller, spacer, holder, rowHeight, renderRow) {
    this.scroller = scroller;
    this.spacer = spacer;
    this.holder = holder;
    this.rowHeight = rowHeight;
    this.renderRow = renderRow;
    this.rows = [];
    this.frame = 0;
    scroller.addEventListener("scroll", () => this.schedule());
    new ResizeObserver(() => this.schedule()).observe(scroller);
  }

  setRows(rows) {
    this.rows = rows;
    this.spacer.style.height = `${rows.length * this.rowHeight}px`;
    this.draw();
  }

  schedule() {
    if (!this.frame) this.frame = requestAnimationFrame(() => { this.frame = 0; this.draw(); });
  }

  // Only the rows in view (and a few either side) exist as elements. Built with the DOM, not HTML text: the
  // page's Content-Security-Policy refuses inline style attributes.
  draw() {
    const top = this.scroller.scrollTop;
    const height = this.scroller.clientHeight || 800;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - 10);
    const last = Math.min(this.rows.length, Math.ceil((top + height) / this.rowHeight) + 10);
    const elements = [];
    for (let i = first; i < last; i++) {
      const el = this.renderRow(this.rows[i], i);
      el.style.top = `${i * this.rowHeight}px`;
      elements.push(el);
    }
    this.holder.replaceChildren(...elements);
  }

  scrollTo(index) {
    const y = index * this.rowHeight;
    if (y < this.scroller.scrollTop || y > this.scroller.scrollTop + this.scroller.clientHeight - this.rowHeight) {
      this.scroller.scrollTop = Math.max(0, y - this.scroller.clientHeight / 2);
    }
    this.draw();
  }
}

// A small element builder: el("span", {className: "x", dataset: {a: 1}}, "text", child).
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "style") Object.assign(node.style, value);
      else node[key] = value;
    }
  }
  for (const child of children) if (child !== null && child !== undefined && child !== "") node.append(child);
  return node;
}

export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
