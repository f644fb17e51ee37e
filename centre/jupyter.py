"""A real Jupyter server (jupyter_server + ipykernel, token auth) on a Centre host that only the tunnel reaches: the
Centre's web services as `ecflow-remote open` and the web proxy meet them."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from centre import services

if TYPE_CHECKING:
    from centre.centre import Centre

PORT = 8888
STARTUP = 90.0  # jupyter_server imports a lot: on a loaded 2-CPU machine it can take a while


@dataclass(frozen=True)
class Jupyter:
    """One running Jupyter server: its URL by the Centre's name, its token, its process, and with https the
    base64 SHA-256 of its certificate's public key (what Chromium's --ignore-certificate-errors-spki-list takes)."""

    host: str
    port: int
    token: str
    proc: subprocess.Popen[bytes]
    spki: str | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.spki else 'http'}://{self.host}:{self.port}"


def start(centre: Centre, host: str, port: int = PORT, tls: bool = False) -> Jupyter:
    """jupyter_server on `host` (a Centre web host, by its full name), run as the Centre account with this
    interpreter (the project's venv, which has jupyter_server and ipykernel), token auth on, with tls over https
    (a self-signed certificate for `host`); returns once it listens. Stopped by centre.down() with everything in
    the Centre's namespaces, or by stop()."""
    from centre.centre import CENTRE_UID

    name = host.split(".")[0]
    home = services.ensure_dir(centre.base / "jupyter" / f"{name}-{port}", 0o700)
    os.chown(home, CENTRE_UID, CENTRE_UID)
    token = secrets.token_hex(16)
    argv = [
        "setpriv",
        f"--reuid={CENTRE_UID}",
        f"--regid={CENTRE_UID}",
        "--clear-groups",
        sys.executable,
        "-m",
        "jupyter_server",
        "--ServerApp.ip=0.0.0.0",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.open_browser=False",
        "--ServerApp.allow_remote_access=True",
        f"--ServerApp.root_dir={home}",
        f"--IdentityProvider.token={token}",
    ]
    spki = None
    if tls:
        key, cert, spki = certificate(home, host)
        argv += [f"--ServerApp.certfile={cert}", f"--ServerApp.keyfile={key}"]
    env = {
        "HOME": str(home),
        "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        "JUPYTER_DATA_DIR": str(home / ".local"),
        "JUPYTER_RUNTIME_DIR": str(home / ".runtime"),
        "IPYTHONDIR": str(home / ".ipython"),
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    log = centre.base / "jupyter" / f"{name}-{port}.log"
    proc = services.spawn(centre.host(name), argv, log, env=env, cwd=home)
    try:
        services.wait_port(centre.host(name), port, timeout=STARTUP)
    except BaseException:
        services.stop(proc)
        raise
    return Jupyter(host, port, token, proc, spki)


def certificate(directory: Path, host: str) -> tuple[Path, Path, str]:
    """A self-signed certificate for `host` (openssl, in `directory`, readable by its owner only): the key, the
    certificate and the base64 SHA-256 of its public key."""
    key, cert = directory / "key.pem", directory / "cert.pem"
    request = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]
    files = ["-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}", "-addext", f"subjectAltName=DNS:{host}"]
    subprocess.run(["openssl", *request, *files], check=True, capture_output=True)
    public = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], check=True, capture_output=True)
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-outform", "der"], input=public.stdout, check=True, capture_output=True
    ).stdout
    stat = directory.stat()
    for path in (key, cert):
        os.chown(path, stat.st_uid, stat.st_gid)
    return key, cert, base64.b64encode(hashlib.sha256(der).digest()).decode()


def stop(jupyter: Jupyter) -> None:
    services.stop(jupyter.proc)


# In the browser: a kernel started over the REST API, then one cell run over the kernel's websocket (Jupyter's
# JSON message protocol, as JupyterLab speaks it), its output returned. `base` is the server's URL.
RUN_CELL_JS = """
async ([base, token, code]) => {
  const auth = {Authorization: `token ${token}`};
  const kernel = await (await fetch(`${base}/api/kernels`, {method: "POST", headers: auth, body: "{}"})).json();
  const ws = new WebSocket(`${base.replace("http", "ws")}/api/kernels/${kernel.id}/channels?token=${token}`);
  // (crypto.randomUUID needs a secure context: this page is plain http, as many of a Centre's are)
  const hex = (b) => b.toString(16).padStart(2, "0");
  const id = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), hex).join("");
  const msgId = id();
  const out = await new Promise((resolve, reject) => {
    let text = "";
    setTimeout(() => reject(new Error("no reply from the kernel in 60 s: " + text)), 60000);
    ws.onerror = () => reject(new Error("websocket error"));
    ws.onopen = () => ws.send(JSON.stringify({
      channel: "shell",
      header: {msg_id: msgId, msg_type: "execute_request", username: "", session: id(),
               version: "5.3", date: new Date().toISOString()},
      parent_header: {}, metadata: {}, buffers: [],
      content: {code, silent: false, store_history: false, user_expressions: {}, allow_stdin: false},
    }));
    ws.onmessage = (event) => {
      const msg = JSON.parse(event.data);
      if (msg.parent_header.msg_id !== msgId) return;
      if (msg.msg_type === "stream") text += msg.content.text;
      if (msg.msg_type === "error") text += msg.content.ename + ": " + msg.content.evalue;
      if (msg.msg_type === "status" && msg.content.execution_state === "idle") resolve(text);
    };
  });
  ws.close();
  await fetch(`${base}/api/kernels/${kernel.id}`, {method: "DELETE", headers: auth});
  return out;
}
"""


def run_cell(page: object, jupyter: Jupyter, code: str) -> str:
    """Run `code` in a new kernel of `jupyter` from a playwright page that shows one of its pages; its output."""
    result = page.evaluate(RUN_CELL_JS, [jupyter.url, jupyter.token, code])  # type: ignore[attr-defined]
    return str(result)


def show(jupyter: Jupyter, pac: str, code: str) -> str:
    """`make demo`'s step: headless Chromium at home, its only proxy setting the tunnel's PAC, opens the Jupyter
    server by its Centre name and runs `code` in a new kernel; what happened, in words."""
    from centre.webshot import CHROMIUM, browser

    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (the dev extra): no browser"
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is missing (sh scripts/install-deps): no browser"
    with browser(1200, 700, args=(f"--proxy-pac-url={pac}",)) as context:
        page = context.new_page()
        page.goto(f"{jupyter.url}/login", timeout=30000)
        title = page.title()
        out = run_cell(page, jupyter, code)
    return f"chromium opened {jupyter.url} ({title!r}); the cell {code!r} printed: {out.strip()}"
