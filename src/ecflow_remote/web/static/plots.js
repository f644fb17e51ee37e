// Timeline and Server load, drawn on a canvas from the server's log (as ecflow_ui draws them): the wheel zooms on
// the time axis, a drag pans, a double click shows the whole log again. No library: the page loads nothing else.
import { el } from "./tree.js";
import { api } from "./ui.js";

const ROW = 14;         // timeline row height
const LABEL = 280;      // timeline: the paths' column
const AXIS = 22;        // the time axis' height
const MAX_ROWS = 3000;  // timeline rows drawn (a canvas has a height limit)
const STEPS = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 7200, 21600, 43200, 86400];

// The visible stretch of time, zoomed and panned within the log's.
class TimeView {
  constructor(first, last) {
    this.first = first;
    this.last = Math.max(last, first + 60);
    this.reset();
  }
  reset() { this.t0 = this.first; this.t1 = this.last; }
  zoom(factor, at) {
    const span = Math.max(10, (this.t1 - this.t0) * factor);
    const pivot = this.t0 + (this.t1 - this.t0) * at;
    this.t0 = pivot - span * at;
    this.t1 = this.t0 + span;
  }
  pan(fraction) {
    const shift = (this.t1 - this.t0) * fraction;
    this.t0 += shift;
    this.t1 += shift;
  }
  x(t, left, width) { return left + (t - this.t0) / (this.t1 - this.t0) * (width - left); }
  t(x, left, width) { return this.t0 + (x - left) / (width - left) * (this.t1 - this.t0); }
}

export function clock(t, seconds = true) {
  return new Date(t * 1000).toISOString().slice(11, seconds ? 19 : 16);
}

function drawAxis(g, view, left, width) {
  const span = view.t1 - view.t0;
  const step = STEPS.find((s) => (width - left) / (span / s) >= 90) || 86400;
  g.fillStyle = "#f6f8fa";
  g.fillRect(left, 0, width - left, AXIS);
  g.strokeStyle = "#d0d4da";
  g.fillStyle = "#333";
  g.font = "11px ui-monospace, monospace";
  for (let t = Math.ceil(view.t0 / step) * step; t <= view.t1; t += step) {
    const x = Math.round(view.x(t, left, width)) + 0.5;
    g.beginPath();
    g.moveTo(x, AXIS - 6);
    g.lineTo(x, g.canvas.height);
    g.stroke();
    g.fillText(clock(t, step < 60), x + 3, 14);
  }
}

function attachZoom(canvas, view, left, redraw) {
  canvas.addEventListener("wheel", (e) => {
    if (e.offsetX < left) return;
    e.preventDefault();
    view.zoom(e.deltaY < 0 ? 0.8 : 1.25, (e.offsetX - left) / (canvas.width - left));
    redraw();
  }, { passive: false });
  let dragging = null;
  canvas.addEventListener("mousedown", (e) => { dragging = e.offsetX; });
  window.addEventListener("mouseup", () => { dragging = null; });
  canvas.addEventListener("mousemove", (e) => {
    if (dragging === null) return;
    view.pan((dragging - e.offsetX) / (canvas.width - left));
    dragging = e.offsetX;
    redraw();
  });
  canvas.addEventListener("dblclick", () => { view.reset(); redraw(); });
}

function linesPicker(ctx, reload) {
  const pick = el("select", { title: "How much of the log to read (its last lines)" },
    ...[10000, 100000, 1000000].map((n) => el("option", { value: n, selected: n === (ctx.view.plotLines || 100000) }, `last ${n.toLocaleString("en")} lines`)));
  pick.addEventListener("change", () => { ctx.view.plotLines = Number(pick.value); reload(); });
  return pick;
}

async function readLog(ctx, holder, what) {
  holder.replaceChildren(el("p", { className: "muted" }, "reading the server's log…"));
  try {
    const data = await api("logplot", { server: ctx.server, path: ctx.path, lines: ctx.view.plotLines || 100000 });
    window.ecfWeb[what] = data;  // what the tests compare with the log
    return data;
  } catch (e) {
    holder.replaceChildren(el("p", { className: "error-text" }, e.message));
    return null;
  }
}

export async function timeline(ctx, holder) {
  const data = await readLog(ctx, holder, "timeline");
  if (!data) return;
  const tasksOnly = el("input", { type: "checkbox", checked: ctx.view.timelineTasks !== false });
  const all = data.timeline;
  const canvas = el("canvas", { id: "timeline-canvas" });
  const note = el("span", { className: "muted" });
  const view = new TimeView(data.first, data.last);
  let rows = [];
  const redraw = () => {
    const width = canvas.width;
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, width, canvas.height);
    drawAxis(g, view, LABEL, width);
    g.font = "11px ui-monospace, monospace";
    rows.forEach(([path, changes], i) => {
      const y = AXIS + i * ROW;
      for (let j = 0; j < changes.length; j++) {
        const from = changes[j][0];
        const to = j + 1 < changes.length ? changes[j + 1][0] : data.last;
        if (to < view.t0 || from > view.t1) continue;
        const x0 = Math.max(LABEL, view.x(from, LABEL, width));
        const x1 = Math.min(width, view.x(to, LABEL, width));
        g.fillStyle = ctx.colours[changes[j][1]] || "#ccc";
        g.fillRect(x0, y + 2, Math.max(1, x1 - x0), ROW - 4);
      }
      g.fillStyle = "#fff";
      g.fillRect(0, y, LABEL - 4, ROW);
      g.fillStyle = "#222";
      const label = path.length > 40 ? "…" + path.slice(-39) : path;
      g.fillText(label, 4, y + ROW - 3);
    });
  };
  const layout = () => {
    ctx.view.timelineTasks = tasksOnly.checked;
    const shown = tasksOnly.checked ? all.filter(([path]) => ctx.isTask(path)) : all;
    rows = shown.slice(0, MAX_ROWS);
    note.textContent = `${shown.length} nodes${shown.length > MAX_ROWS ? `, the first ${MAX_ROWS} drawn` : ""}; log ${clock(data.first)} to ${clock(data.last)} — wheel: zoom, drag: pan, double click: all`;
    canvas.width = Math.max(600, holder.clientWidth - 4);
    canvas.height = AXIS + Math.max(1, rows.length) * ROW;
    redraw();
  };
  canvas.addEventListener("mousemove", (e) => {
    const row = rows[Math.floor((e.offsetY - AXIS) / ROW)];
    if (!row) { canvas.title = ""; return; }
    const t = view.t(e.offsetX, LABEL, canvas.width);
    const change = [...row[1]].reverse().find(([at]) => at <= t);
    canvas.title = `${row[0]}: ${change ? `${change[1]} since ${clock(change[0])}` : "before the log"}`;
  });
  attachZoom(canvas, view, LABEL, redraw);
  tasksOnly.addEventListener("change", layout);
  holder.replaceChildren(el("div", { className: "row-tools" }, linesPicker(ctx, () => timeline(ctx, holder)),
    el("label", null, tasksOnly, " tasks only"), note), el("div", { className: "plot" }, canvas));
  layout();
  holder.dataset.loaded = "timeline";
}

const LOAD_LEFT = 50;
const COLOURS = { child: "#4b8bd4", user: "#e8a33d", suite: "#2da44e" };

export async function serverLoad(ctx, holder) {
  const data = await readLog(ctx, holder, "load");
  if (!data) return;
  const load = data.load;
  const minutes = load.child.length;
  const suite = el("select", { title: "All requests (child and user), or one suite's" }, el("option", { value: "" }, "child and user requests"),
    ...Object.keys(load.suites).map((s) => el("option", { value: s, selected: ctx.view.loadSuite === s }, `suite ${s}`)));
  const canvas = el("canvas", { id: "load-canvas", height: 280 });
  const note = el("span", { className: "muted" });
  const view = new TimeView(load.start, load.start + minutes * 60);
  const redraw = () => {
    ctx.view.loadSuite = suite.value;
    const width = canvas.width;
    const height = canvas.height;
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, width, height);
    drawAxis(g, view, LOAD_LEFT, width);
    const series = suite.value ? [[load.suites[suite.value], COLOURS.suite]] : [[load.child, COLOURS.child], [load.user, COLOURS.user]];
    const i0 = Math.max(0, Math.floor((view.t0 - load.start) / 60));
    const i1 = Math.min(minutes, Math.ceil((view.t1 - load.start) / 60));
    let top = 1;
    for (let i = i0; i < i1; i++) top = Math.max(top, series.reduce((sum, [values]) => sum + values[i], 0));
    const bottom = height - 4;
    const scale = (bottom - AXIS - 10) / top;
    const w = Math.max(1, view.x(load.start + 60, LOAD_LEFT, width) - view.x(load.start, LOAD_LEFT, width) - 1);
    for (let i = i0; i < i1; i++) {
      const x = view.x(load.start + i * 60, LOAD_LEFT, width);
      let y = bottom;
      for (const [values, colour] of series) {
        const h = values[i] * scale;
        g.fillStyle = colour;
        g.fillRect(x, y - h, w, h);
        y -= h;
      }
    }
    g.fillStyle = "#fff";
    g.fillRect(0, AXIS, LOAD_LEFT - 2, height);
    g.fillStyle = "#333";
    g.fillText(`${top}/min`, 2, AXIS + 12);
    g.fillText("0", 2, bottom);
    const total = (values) => values.slice(i0, i1).reduce((a, b) => a + b, 0);
    note.textContent = suite.value
      ? `suite ${suite.value}: ${total(load.suites[suite.value])} requests shown`
      : `child commands (blue) ${total(load.child)}, user commands (orange) ${total(load.user)} shown — wheel: zoom, drag: pan, double click: all`;
  };
  canvas.addEventListener("mousemove", (e) => {
    const i = Math.floor((view.t(e.offsetX, LOAD_LEFT, canvas.width) - load.start) / 60);
    if (i < 0 || i >= minutes) { canvas.title = ""; return; }
    const at = clock(load.start + i * 60, false);
    canvas.title = suite.value ? `${at}: ${load.suites[suite.value][i]} requests` : `${at}: ${load.child[i]} child, ${load.user[i]} user`;
  });
  attachZoom(canvas, view, LOAD_LEFT, redraw);
  suite.addEventListener("change", redraw);
  holder.replaceChildren(el("div", { className: "row-tools" }, linesPicker(ctx, () => serverLoad(ctx, holder)), suite, note),
    el("div", { className: "plot" }, canvas));
  canvas.width = Math.max(600, holder.clientWidth - 4);
  redraw();
  holder.dataset.loaded = "serverload";
}
