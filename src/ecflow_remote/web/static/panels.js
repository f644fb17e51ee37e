// The details panels besides Info and Output: each fills its tab from one request through the tunnel when shown.
import { serverLoad, timeline } from "./plots.js";
import { el } from "./tree.js";
import { $, api, askConfirm, post, toast } from "./ui.js";

// Which tabs a node of each kind has, in ecflow_ui's order (server-wide ones at the end of every list).
const SERVER_WIDE = ["serverlog", "zombies", "timeline", "serverload"];
const TABS = {
  server: ["info", "table", "variables", "nodelog", ...SERVER_WIDE],
  suite: ["info", "table", "why", "triggers", "variables", "nodelog", ...SERVER_WIDE],
  task: ["info", "output", "script", "job", "manual", "jobstatus", "why", "triggers", "variables", "edit", "nodelog",
    ...SERVER_WIDE],
};
export function tabsFor(kind) {
  if (kind === "server") return TABS.server;
  return kind === "task" || kind === "alias" ? TABS.task : TABS.suite;
}

const ZOMBIE_ACTIONS = ["fob", "fail", "adopt", "remove", "kill"];

function message(holder, text, cls = "muted") {
  holder.replaceChildren(el("p", { className: cls }, text));
}

// A read-only text panel: a line of tools, then the text.
function textPanel(holder, note, text, extra = null) {
  holder.replaceChildren(
    el("div", { className: "row-tools" }, el("span", { className: "muted note" }, note), extra),
    el("pre", { className: "text" }, text),
  );
}

async function file(ctx, holder, kind) {
  message(holder, "reading…");
  try {
    const data = await api("file", { server: ctx.server, path: ctx.path, kind });
    const note = `${kind} of ${ctx.path}` + (data.cut ? ` (the last ${data.lines} lines)` : "");
    textPanel(holder, note, data.text);
    holder.dataset.loaded = kind;
  } catch (e) {
    message(holder, e.message, "error-text");
  }
}

async function jobStatus(ctx, holder) {
  delete holder.dataset.loaded;
  holder.replaceChildren();
  const reload = el("button", { type: "button" }, "Reload");
  reload.addEventListener("click", () => jobStatus(ctx, holder));
  const tools = el("div", { className: "row-tools" }, reload);
  if (!ctx.readOnly) {
    // As ecflow_ui's Job status: the server runs the task's ECF_STATUS_CMD, which writes the status file below.
    const run = el("button", { type: "button", id: "run-status", title: "The server runs this task's ECF_STATUS_CMD" }, "Run the status command");
    run.addEventListener("click", async () => {
      if (!await askConfirm(`Run the status command of ${ctx.path} on ${ctx.server}?`, [ctx.path], "run", false)) return;
      try {
        await post("statuscmd", { server: ctx.server, path: ctx.path });
        toast(`status command started for ${ctx.path}: Reload shows its output`);
      } catch (e) {
        toast(e.message, true);
      }
    });
    tools.append(run);
  }
  holder.append(tools);
  for (const [kind, title] of [["stat", "Status (the output of ECF_STATUS_CMD)"], ["kill", "Kill (the output of ECF_KILL_CMD)"]]) {
    const box = el("div", { className: "part" });
    holder.append(el("div", { className: "section-title" }, title), box);
    try {
      const data = await api("file", { server: ctx.server, path: ctx.path, kind });
      box.append(el("pre", { className: "text" }, data.text));
    } catch (e) {
      box.append(el("p", { className: "muted" }, e.message));
    }
  }
  holder.dataset.loaded = "jobstatus";
}

async function serverLog(ctx, holder) {
  const lines = el("select", { title: "How many of the log's last lines" },
    ...[100, 1000, 10000].map((n) => el("option", { value: n, selected: n === (ctx.view.logLines || 1000) }, `last ${n} lines`)));
  const filter = el("input", { type: "search", placeholder: "Filter lines", value: ctx.view.logFilter || "" });
  const pre = el("pre", { className: "text", id: "serverlog-text" }, "reading…");
  holder.replaceChildren(el("div", { className: "row-tools" }, lines, filter, el("span", { className: "muted note" })), pre);
  let text = "";
  const show = () => {
    const needle = filter.value.trim().toLowerCase();
    pre.textContent = needle ? text.split("\n").filter((l) => l.toLowerCase().includes(needle)).join("\n") : text;
    pre.scrollTop = pre.scrollHeight;
  };
  const load = async () => {
    ctx.view.logLines = Number(lines.value);
    try {
      const data = await api("serverlog", { server: ctx.server, lines: lines.value });
      text = data.text;
      holder.querySelector(".note").textContent = `${ctx.server}: the server's log, newest last`;
      show();
      holder.dataset.loaded = "serverlog";
    } catch (e) {
      pre.textContent = e.message;
    }
  };
  lines.addEventListener("change", load);
  filter.addEventListener("input", () => { ctx.view.logFilter = filter.value; show(); });
  await load();
}

async function nodeLog(ctx, holder) {
  message(holder, "reading…");
  try {
    const data = await api("history", { server: ctx.server, path: ctx.path });
    const note = `Changes made to ${ctx.path === "/" ? ctx.server : ctx.path} by users, oldest first`;
    textPanel(holder, note, data.lines.length ? data.lines.join("\n") : "(no change recorded since the server started)");
    holder.dataset.loaded = "nodelog";
  } catch (e) {
    message(holder, e.message, "error-text");
  }
}

async function zombies(ctx, holder) {
  message(holder, "reading…");
  let data;
  try {
    data = await api("zombies", { server: ctx.server });
  } catch (e) {
    message(holder, e.message, "error-text");
    return;
  }
  const head = ["task", "type", "action", "child", "pid", "try", "calls", "age (s)", "host", ""];
  const rows = data.zombies.map((z) => {
    const buttons = ctx.readOnly ? [] : ZOMBIE_ACTIONS.map((a) => {
      const b = el("button", { type: "button", className: "small", dataset: { zombie: a } }, a);
      b.addEventListener("click", () => zombieAction(ctx, a, z.path, () => zombies(ctx, holder)));
      return b;
    });
    const mine = ctx.path !== "/" && (z.path === ctx.path || z.path.startsWith(ctx.path + "/"));
    return el("tr", { className: mine ? "mine" : "", dataset: { path: z.path } },
      ...[z.path, z.type, z.user_action, z.child_cmd, z.pid, z.try_no, z.calls, z.duration, z.host].map((v) => el("td", null, String(v))),
      el("td", { className: "buttons" }, ...buttons));
  });
  const reload = el("button", { type: "button" }, "Reload");
  reload.addEventListener("click", () => zombies(ctx, holder));
  holder.replaceChildren(
    el("div", { className: "row-tools" }, el("span", { className: "muted" }, `${data.zombies.length} zombie(s) on ${ctx.server}`), reload),
    el("table", { id: "zombies" }, el("thead", null, el("tr", null, ...head.map((h) => el("th", null, h)))), el("tbody", null, ...rows)),
  );
  holder.dataset.loaded = "zombies";
}

async function zombieAction(ctx, action, path, after) {
  if (!await askConfirm(`Zombie ${action} on ${ctx.server}?`, [path], action, action !== "adopt")) return;
  try {
    await post("zombie", { server: ctx.server, action, paths: [path] });
    toast(`zombie ${action}: done for ${path}`);
  } catch (e) {
    toast(e.message, true);
  }
  after();
}

function nodeLink(ctx, path, text) {
  const a = el("a", { href: "#", className: "nodelink" }, text || path);
  a.addEventListener("click", (event) => { event.preventDefault(); ctx.navigate(ctx.server, path, "triggers"); });
  return a;
}

async function triggers(ctx, holder) {
  let data;
  try {
    data = await api("triggers", { server: ctx.server, path: ctx.path });
  } catch (e) {
    message(holder, e.message, "error-text");
    return;
  }
  const list = (items, empty) => items.length
    ? el("table", null, el("tbody", null, ...items.map((t) => el("tr", { dataset: { path: t.path || "" } },
      el("td", null, t.path ? nodeLink(ctx, t.path) : t.ref), el("td", null, t.state || "not found"), el("td", { className: "muted" }, `${t.kind}: ${t.ref}`)))))
    : el("p", { className: "muted" }, empty);
  holder.replaceChildren(
    el("div", { className: "section-title" }, "Trigger"), el("pre", { className: "expr" }, data.trigger || "(none)"),
    data.complete ? el("div", { className: "section-title" }, "Complete") : null,
    data.complete ? el("pre", { className: "expr" }, data.complete) : null,
    el("div", { className: "section-title" }, "Waits for"), list(data.needs, "Nothing: no trigger or complete names another node."),
    el("div", { className: "section-title" }, "Triggers"), list(data.needed_by, "No node's trigger or complete names this one."),
  );
  holder.dataset.loaded = "triggers";
}

function why(ctx, holder) {
  const d = ctx.details;
  if (!d) { message(holder, "…"); return; }
  if (d.why === null || d.why === undefined) message(holder, d.why_error || "not available");
  else if (!d.why.length) message(holder, "Nothing holds it.");
  else holder.replaceChildren(el("ul", { className: "why" }, ...d.why.map((w) => el("li", null, w))));
  holder.dataset.loaded = "why";
}

async function edit(ctx, holder) {
  const area = el("textarea", { id: "edit-text", spellcheck: false, rows: 24 });
  const out = el("pre", { className: "text", id: "edit-result", hidden: true });
  const button = (label, fn, title) => {
    const b = el("button", { type: "button", title, dataset: { edit: label.toLowerCase().replace(/\W/g, "") } }, label);
    b.addEventListener("click", fn);
    return b;
  };
  const load = async () => {
    try {
      area.value = (await api("edit", { server: ctx.server, path: ctx.path })).text;
      out.hidden = true;
      holder.dataset.loaded = "edit";
    } catch (e) {
      toast(e.message, true);
    }
  };
  const preprocess = async () => {
    try {
      out.textContent = (await post("preprocess", { server: ctx.server, path: ctx.path, text: area.value })).text;
      out.hidden = false;
    } catch (e) {
      toast(e.message, true);
    }
  };
  const submit = async () => {
    if (!await askConfirm(`Submit the edited script of ${ctx.path} on ${ctx.server} as its job?`, [ctx.path], "submit", true)) return;
    try {
      await post("submit", { server: ctx.server, path: ctx.path, text: area.value });
      toast(`submitted: ${ctx.path}`);
    } catch (e) {
      toast(e.message, true);
    }
  };
  const tools = [button("Reload", load, "The script as the server finds it, its variables in the %comment block"),
    button("Pre-process", preprocess, "Includes expanded, as the job would be made (nothing is changed)")];
  if (!ctx.readOnly) tools.push(button("Submit", submit, "Run this text (and the %comment variables) as the task's job"));
  holder.replaceChildren(el("div", { className: "row-tools" }, ...tools,
    el("span", { className: "muted" }, "Edit the variables in the %comment block or the script, then submit.")), area, out);
  await load();
}

// Variables: the winning value, where it comes from and what it hides; own ones editable, others overridable.
export function renderVariables(ctx) {
  const d = ctx.details;
  if (!d) return;
  const text = $("var-filter").value.trim().toLowerCase();
  const inherited = $("var-inherited").checked;
  $("var-add").hidden = ctx.readOnly;
  const rows = [];
  for (const v of d.variables) {
    if (!inherited && !v.own) continue;
    if (text && !v.name.toLowerCase().includes(text) && !v.value.toLowerCase().includes(text)) continue;
    const from = v.own ? (v.kind === "generated" ? "generated" : "this node") : `${v.origin}${v.kind === "generated" ? " (generated)" : ""}`;
    const tools = el("td", { className: "buttons" });
    if (!ctx.readOnly && !v.hidden) {
      const editable = v.own && v.kind !== "generated";
      const b = el("button", { type: "button", className: "small", dataset: { edit: v.name } }, editable ? "edit" : "override");
      b.addEventListener("click", () => editVariable(ctx, v, editable ? "change" : "add", b.closest("tr")));
      tools.append(b);
      if (editable) {
        const del = el("button", { type: "button", className: "small destructive", dataset: { delete: v.name } }, "delete");
        del.addEventListener("click", () => alter(ctx, "delete", v.name, ""));
        tools.append(del);
      }
    }
    rows.push(el("tr", { className: v.own ? "own" : "inherited", dataset: { name: v.name } },
      el("td", null, v.name), el("td", { className: "value" }, v.hidden ? "(hidden)" : v.value), el("td", null, from), tools));
    for (const o of v.overrides) {
      rows.push(el("tr", { className: "overridden" }, el("td"), el("td", { className: "value" }, o.value), el("td", null, `${o.origin} (overridden)`), el("td")));
    }
  }
  $("vars").tBodies[0].replaceChildren(...rows);
}

function editVariable(ctx, v, how, row) {
  const input = el("input", { type: "text", value: v.value, className: "var-value", spellcheck: false });
  const save = el("button", { type: "button", className: "small", dataset: { save: v.name } }, how === "add" ? "add here" : "save");
  const cancel = el("button", { type: "button", className: "small" }, "cancel");
  row.cells[1].replaceChildren(input);
  row.cells[3].replaceChildren(save, cancel);
  input.focus();
  const done = () => alter(ctx, how, v.name, input.value);
  save.addEventListener("click", done);
  input.addEventListener("keydown", (e) => { if (e.key === "Enter") done(); if (e.key === "Escape") renderVariables(ctx); });
  cancel.addEventListener("click", () => renderVariables(ctx));
}

export async function alter(ctx, how, name, value) {
  const where = ctx.path === "/" ? `server ${ctx.server}` : `${ctx.path} on ${ctx.server}`;
  if (how === "delete" && !await askConfirm(`Delete variable ${name} of ${where}?`, [name], "delete", true)) return;
  try {
    await post("alter", { server: ctx.server, path: ctx.path, how, name, value });
    toast(`${name}: ${how === "delete" ? "deleted" : "set"} on ${where}`);
    ctx.reload();
  } catch (e) {
    toast(e.message, true);
  }
}

export const LOADERS = {
  script: (ctx, h) => file(ctx, h, "script"),
  job: (ctx, h) => file(ctx, h, "job"),
  manual: (ctx, h) => file(ctx, h, "manual"),
  jobstatus: jobStatus,
  serverlog: serverLog,
  nodelog: nodeLog,
  zombies,
  triggers,
  why,
  edit,
  timeline,
  serverload: serverLoad,
};
