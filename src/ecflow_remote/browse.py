"""`open`: a Centre web page in a browser of its own that uses the tunnel's web proxy through its PAC file.

A private profile (in the tunnel's run directory: gone at `down`) of Chromium, Chrome or Firefox, started with the
PAC, so the user's own browser and its settings are never touched; else $BROWSER with the URL (its proxy set by
hand). What to set by hand instead is data too (`open --print`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ecflow_remote.errors import LaunchError, TunnelError
from ecflow_remote.profile.webtable import domains, is_centre_name
from ecflow_remote.tunnel.handle import Tunnel

# Looked for in this order on PATH, then (macOS) in /Applications.
CHROMIUMS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FIREFOXES = ("firefox", "firefox-esr")
MAC_APPS = {
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome": "chromium",
    "/Applications/Chromium.app/Contents/MacOS/Chromium": "chromium",
    "/Applications/Firefox.app/Contents/MacOS/firefox": "firefox",
}
PROFILE_DIR = "browser"  # in the run directory, one sub-directory per browser kind


@dataclass(frozen=True)
class WebAccess:
    """What a browser needs to reach the Centre's pages: the proxy, its PAC file, the Centre's names, and where the
    proxy's password is (macOS and other systems without the peer check; None on Linux)."""

    proxy: str
    pac: str
    domains: tuple[str, ...]
    auth_file: str | None
    rundir: Path


@dataclass(frozen=True)
class Browser:
    """A browser found on this machine: its kind (chromium | firefox | other) and executable."""

    kind: str
    path: str


def web_access(tunnel: Tunnel) -> WebAccess:
    """The running tunnel's web proxy; TunnelError (one line) when the tunnel is not up."""
    state = tunnel.state()
    if state is None:
        raise TunnelError(
            "no tunnel is running, so the Centre's web pages cannot be reached: start it with `ecflow-remote up`."
        )
    if state.web_proxy is None or state.web_pac is None:
        raise TunnelError("this tunnel was started without a web proxy (an older ecflow-remote): `down`, then `up`.")
    if state.state != "up":
        raise TunnelError(f"the tunnel is {state.state} ({state.message}): the Centre's web pages load once it is up.")
    return WebAccess(state.web_proxy, state.web_pac, domains(tunnel.profile), state.files.web_auth, tunnel.rundir.path)


def check_url(url: str) -> str:
    """The URL's host; LaunchError when it is not an http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LaunchError(f"{url!r} is not an http:// or https:// URL: give the page's full address.")
    return parts.hostname


def outside_note(url: str, access: WebAccess) -> str | None:
    """A note when the URL's host is not one of the Centre's names (the browser then goes there directly)."""
    host = check_url(url)
    if is_centre_name(host, access.domains):
        return None
    return (
        f"{host} is not one of the Centre's names ({', '.join(access.domains)}): the browser goes there directly, "
        "not through the tunnel (add its domain to [web] domains in the profile if it is the Centre's)."
    )


def find_browser(env: dict[str, str] | None = None) -> Browser | None:
    """Chromium or Chrome, else Firefox, else $BROWSER; None when there is none."""
    env = dict(os.environ) if env is None else env
    path = env.get("PATH", os.defpath)
    for kind, names in (("chromium", CHROMIUMS), ("firefox", FIREFOXES)):
        for name in names:
            found = shutil.which(name, path=path)
            if found:
                return Browser(kind, found)
    if sys.platform == "darwin":
        for app, kind in MAC_APPS.items():
            if os.access(app, os.X_OK):
                return Browser(kind, app)
    if env.get("BROWSER"):
        return Browser("other", env["BROWSER"])
    return None


def browser_argv(browser: Browser, access: WebAccess, url: str) -> list[str]:
    """The command line that opens `url` in a private profile using the PAC (for $BROWSER: the URL only); the
    profile directory is made here."""
    if browser.kind == "other":
        return [*browser.path.split(), url]
    profile = access.rundir / PROFILE_DIR / browser.kind
    profile.mkdir(parents=True, exist_ok=True, mode=0o700)
    if browser.kind == "firefox":
        (profile / "user.js").write_text(firefox_prefs(access.pac))
        return [browser.path, "--profile", str(profile), "--no-remote", "--new-instance", url]
    return [
        browser.path,
        f"--user-data-dir={profile}",
        f"--proxy-pac-url={access.pac}",
        "--no-first-run",
        "--no-default-browser-check",
        url,
    ]


def firefox_prefs(pac: str) -> str:
    """A private Firefox profile's user.js: the PAC, and no first-run pages or default-browser question."""
    prefs = {
        "network.proxy.type": 2,
        "network.proxy.autoconfig_url": pac,
        "browser.shell.checkDefaultBrowser": False,
        "browser.aboutwelcome.enabled": False,
        "datareporting.policy.dataSubmissionEnabled": False,
    }
    return "".join(f"user_pref({_js(k)}, {_js(v)});\n" for k, v in prefs.items())


def _js(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def launch(argv: list[str]) -> subprocess.Popen[bytes]:
    """Start the browser on its own (it outlives this command), its output discarded."""
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as e:
        raise LaunchError(f"{argv[0]} could not be started: {e.strerror or e}.") from None


def copy_password(access: WebAccess) -> bool:
    """Put the proxy's password on the macOS clipboard for the browser's sign-in (never printed); False where
    there is no pbcopy or no password."""
    from ecflow_remote.access.socks import Credentials

    pbcopy = shutil.which("pbcopy")
    credentials = Credentials.read(access.auth_file) if access.auth_file else None
    if pbcopy is None or credentials is None:
        return False
    return subprocess.run([pbcopy], input=credentials.password.encode(), check=False).returncode == 0
