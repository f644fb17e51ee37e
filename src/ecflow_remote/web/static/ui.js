// Small helpers every part of the page shares: the API calls (with the CSRF header on writes), the toast and the
// confirmation dialog.
import { escapeHtml } from "./tree.js";

export const $ = (id) => document.getElementById(id);
const csrf = document.querySelector('meta[name="csrf-token"]').content;

// GET /api/NAME?query as JSON; a refusal throws an Error with the server's one-line text.
export async function api(name, query) {
  const response = await fetch(`/api/${name}?${new URLSearchParams(query)}`);
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

// POST /api/NAME with a JSON body and the CSRF token (the only way the page changes anything).
export async function post(name, body) {
  const response = await fetch(`/api/${name}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

let toastTimer = 0;
export function toast(text, error = false) {
  const box = $("toast");
  box.textContent = text;
  box.className = error ? "error" : "";
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, error ? 10000 : 4000);
}

// Ask before a change: resolves true on OK. `items` are the paths (or lines) the change touches.
let answer = null;
export function askConfirm(text, items, ok, destructive) {
  if (answer) answer(false);
  $("confirm-text").textContent = text;
  $("confirm-paths").innerHTML = items.map((p) => `<li>${escapeHtml(p)}</li>`).join("");
  $("confirm-ok").textContent = ok;
  $("confirm-ok").classList.toggle("destructive", !!destructive);
  $("confirm").showModal();
  return new Promise((resolve) => { answer = resolve; });
}
function settle(value) {
  $("confirm").close();
  const resolve = answer;
  answer = null;
  if (resolve) resolve(value);
}
$("confirm-cancel").addEventListener("click", () => settle(false));
$("confirm-ok").addEventListener("click", () => settle(true));
$("confirm").addEventListener("cancel", () => settle(false));
