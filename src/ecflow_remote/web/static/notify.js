// Notifications for watched suites (ecflow_ui's "aborted", "late", "zombie" notifications): the browser's own,
// once the user allowed them, else a message in the page. Watched suites are kept in this browser.
import { el } from "./tree.js";
import { api, toast } from "./ui.js";

const KEY = "ecflow-remote.watched";
const ZOMBIE_POLL = 10000;  // ms between zombie lists of servers with a watched suite (one small request each)

export class Watcher {
  constructor(redraw, navigate) {
    this.redraw = redraw;
    this.navigate = navigate;
    let saved = [];
    try { saved = JSON.parse(localStorage.getItem(KEY) || "[]"); } catch { saved = []; }
    this.watched = new Set(Array.isArray(saved) ? saved : []);  // "SERVER /suite"
    this.zombies = new Map();  // server -> the zombies of its last list ("path pid type")
    window.ecfWeb.notified = [];
    this.pollZombies();  // what is there when the page opens is known, not announced
    setInterval(() => this.pollZombies(), ZOMBIE_POLL);
  }

  key(server, path) { return `${server} /${path.split("/")[1]}`; }
  isWatched(server, path) { return this.watched.has(this.key(server, path)); }

  // The suite's watch toggle, shown with its node commands.
  button(server, suite) {
    const b = el("button", { type: "button", id: "watch-suite" });
    const show = () => {
      const on = this.isWatched(server, suite);
      b.textContent = on ? "watching" : "watch";
      b.title = on ? "Notifications on for this suite (aborted, late, zombie): click to stop"
        : "Notify me when a task of this suite aborts, becomes late, or a zombie of it appears";
      b.classList.toggle("on", on);
    };
    b.addEventListener("click", async () => {
      const key = this.key(server, suite);
      if (this.watched.has(key)) {
        this.watched.delete(key);
      } else {
        this.watched.add(key);
        if ("Notification" in window && Notification.permission === "default") {
          try { await Notification.requestPermission(); } catch { /* refused or unsupported: messages in the page */ }
        }
        this.pollZombies(server);
      }
      localStorage.setItem(KEY, JSON.stringify([...this.watched]));
      show();
      this.redraw();
    });
    show();
    return b;
  }

  notify(server, path, what, detail = "") {
    const title = `${what}: ${path}`;
    const body = server + (detail ? ` — ${detail}` : "");
    let how = "page";
    if ("Notification" in window && Notification.permission === "granted") {
      try {
        const n = new Notification(title, { body, tag: `${server} ${path} ${what}` });
        n.onclick = () => { window.focus(); this.navigate(server, path, "info"); };
        how = "browser";
      } catch { how = "page"; }
    }
    if (how === "page") toast(`${title} (${body})`, true);
    window.ecfWeb.notified.push({ server, path, what, how });
  }

  // A `states` event, before the tree takes it: a task of a watched suite that aborts or becomes late.
  states(tree, changes) {
    if (!this.watched.size) return;
    for (const [path, state, , late] of changes) {
      if (!this.isWatched(tree.name, path)) continue;
      const node = tree.byPath.get(path);
      if (!node || (node.kind !== "task" && node.kind !== "alias")) continue;
      if (state === "aborted" && node.state !== "aborted") this.notify(tree.name, path, "aborted");
      if (late && !node.late) this.notify(tree.name, path, "late");
    }
  }

  // Zombies are not in the tree: each server with a watched suite is asked for its list. The first list of a
  // server is what already was; a zombie not in the previous list is new.
  async pollZombies(only = null) {
    const servers = new Set([...this.watched].map((k) => k.slice(0, k.lastIndexOf(" "))));
    for (const server of servers) {
      if (only && server !== only) continue;
      let data;
      try { data = await api("zombies", { server }); } catch { continue; }
      const before = this.zombies.get(server);
      const now = new Set();
      for (const z of data.zombies) {
        const id = `${z.path} ${z.pid} ${z.type}`;
        now.add(id);
        if (before && !before.has(id) && this.isWatched(server, z.path)) this.notify(server, z.path, "zombie", `${z.type}, pid ${z.pid}`);
      }
      this.zombies.set(server, now);
    }
  }
}
