"""The page's panels in a real browser against the real servers through a real tunnel: deep links open the right
panel, each shows what the server (or ecflow_client) has, a variable edited in the page is on the server, an
edited script submitted runs, a real zombie is listed and handled, the back button walks the views, and
`web --read-only` refuses every write. Screenshots go to tests/artifacts/web/."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.integration.test_panels import SUITE, make_zombie, panels_suite, real, state, variable_by_python3_ecflow
from tests.integration.webpage import ARTIFACTS, Web, WebProcess, browser, page, web

from ecflow_remote.tunnel.rundir import wait_for

__all__ = ["browser", "page", "panels_suite", "web"]  # the shared fixtures

pytestmark = pytest.mark.integration

STATES = {"unknown", "queued", "submitted", "active", "complete", "aborted"}
EDITED, SLEEPS, WAITS = f"/{SUITE}/edited", f"/{SUITE}/sleeps", f"/{SUITE}/waits"


def go(page: Any, base: str, route: str) -> None:
    """Open the page at a deep link (signing in with the token first, as the printed address does)."""
    page.goto(f"{base}#{route}")
    page.wait_for_function("() => window.ecfWeb.ready")


def panel(page: Any, tab: str) -> Any:
    page.wait_for_selector(f"#tab-{tab}[data-loaded]:not([hidden])", timeout=20000)
    return page.locator(f"#tab-{tab}")


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def wait_tree_has(page: Any, server: str, path: str) -> None:
    page.wait_for_function(
        "([s, p]) => { const r = document.querySelector(`.node[data-server='${s}'][data-path='${p}']`); return !!r; }",
        arg=[server, path],
        timeout=20000,
    )


def test_deep_links_panels_and_writes(web: Web, centre: Any, page: Any, panels_suite: Any) -> None:
    spec = panels_suite
    home = centre.ecf_home(spec)

    # Script by deep link: the .ecf the server reads; the task is revealed and selected in the tree.
    go(page, web.url, f"/machine1/{SUITE}/edited/script")
    script = panel(page, "script")
    assert script.locator("pre").text_content() == (home / SUITE / "edited.ecf").read_text()
    wait_tree_has(page, "machine1", EDITED)
    assert page.locator(f'.node.selected[data-path="{EDITED}"]').count() == 1
    assert page.url.endswith(f"#/machine1/{SUITE}/edited/script")

    # Manual, then Triggers: the views are links, and the back button walks them.
    page.click('#tabs button[data-tab="manual"]')
    assert "What edited does" in panel(page, "manual").inner_text()
    page.click('#tabs button[data-tab="triggers"]')
    triggers = panel(page, "triggers")
    assert triggers.locator(f'tr[data-path="{WAITS}"]').count() == 1  # /panels/waits waits for edited
    page.go_back()
    page.wait_for_selector("#tab-manual:not([hidden])")
    assert page.url.endswith(f"#/machine1/{SUITE}/edited/manual")
    page.go_back()
    page.wait_for_selector("#tab-script:not([hidden])")
    # Following a trigger to the node it names.
    page.click('#tabs button[data-tab="triggers"]')
    panel(page, "triggers").locator(f'tr[data-path="{WAITS}"] a').click()
    page.wait_for_selector(f"#d-path:text-is('{WAITS}')")
    assert panel(page, "triggers").locator(f'tr[data-path="{EDITED}"]').count() == 1

    # Variables: override an inherited one on the task, add one, delete it; each read back by python3-ecflow.
    go(page, web.url, f"/machine1/{SUITE}/edited/variables")
    page.wait_for_selector('#vars tr[data-name="GREETING"] button[data-edit="GREETING"]')
    page.click('#vars tr[data-name="GREETING"] button[data-edit="GREETING"]')
    page.fill('#vars tr[data-name="GREETING"] input.var-value', "from the browser")
    page.click('#vars tr[data-name="GREETING"] button[data-save="GREETING"]')
    assert wait_for(lambda: variable_by_python3_ecflow(centre, spec, EDITED, "GREETING") == "from the browser", 15)
    page.wait_for_selector('#vars tr.own[data-name="GREETING"] button[data-delete="GREETING"]')
    page.fill("#var-add-name", "ADDED_IN_PAGE")
    page.fill("#var-add-value", "42")
    page.click('#var-add button[type="submit"]')
    assert wait_for(lambda: variable_by_python3_ecflow(centre, spec, EDITED, "ADDED_IN_PAGE") == "42", 15)
    page.wait_for_selector('#vars tr[data-name="ADDED_IN_PAGE"] button[data-delete="ADDED_IN_PAGE"]')
    shot(page, "panel_variables")
    page.click('#vars tr[data-name="ADDED_IN_PAGE"] button[data-delete="ADDED_IN_PAGE"]')
    assert "ADDED_IN_PAGE" in page.inner_text("#confirm-paths")  # asked first
    page.click("#confirm-ok")
    assert wait_for(lambda: variable_by_python3_ecflow(centre, spec, EDITED, "ADDED_IN_PAGE") is None, 15)

    # Node log: the page's own alters, as ecflow_client --edit_history lists them.
    page.click('#tabs button[data-tab="nodelog"]')
    nodelog = panel(page, "nodelog").locator("pre").inner_text()
    assert nodelog == real(centre, spec, f"--edit_history={EDITED}").rstrip("\n")
    assert f"--alter add variable GREETING from the browser {EDITED}" in nodelog

    # Edit: the script with its variables; change both, pre-process, submit; the job that runs is the edited one.
    page.click('#tabs button[data-tab="edit"]')
    panel(page, "edit")
    text = page.input_value("#edit-text")
    assert text.startswith("%comment - ecf user variables\n") and "GREETING = from the browser" in text
    text = text.replace("GREETING = from the browser", "GREETING = edited-in-page").replace("as written", "edited")
    page.fill("#edit-text", text)
    page.click('button[data-edit="preprocess"]')
    page.wait_for_selector("#edit-result:not([hidden])")
    assert "ecflow_client --init=$$" in page.inner_text("#edit-result")  # head.h included
    shot(page, "panel_edit")
    page.click('button[data-edit="submit"]')
    page.click("#confirm-ok")
    assert wait_for(lambda: state(centre, spec, EDITED) == "complete", 30)
    page.click('#tabs button[data-tab="job"]')
    job = panel(page, "job").locator("pre").text_content()
    assert "echo 'edited edited-in-page'" in job
    assert job == (home / SUITE / "edited.job1").read_text()

    # Job status: the server's own answer (these tasks have no ECF_STATUS_CMD), as ecflow_client gets it.
    page.click('#tabs button[data-tab="jobstatus"]')
    status = panel(page, "jobstatus").inner_text()
    assert "Failed to open the status output file" in status

    # Server log: the server's log file's last lines.
    go(page, web.url, "/machine1//serverlog")
    page.wait_for_function("() => document.querySelector('#serverlog-text')?.textContent.includes('--log=get')")
    shown = page.inner_text("#serverlog-text").splitlines()
    log_file = centre.server_log(spec).read_text().splitlines()
    assert shown[-2] in log_file and shown[0] in log_file
    shot(page, "panel_serverlog")

    real(centre, spec, f"--resume={SLEEPS}")
    assert wait_for(lambda: state(centre, spec, SLEEPS) == "active", 30)
    # Job status of the running job: the page has the server run its status command, then shows what it wrote.
    go(page, web.url, f"/machine1/{SUITE}/sleeps/jobstatus")
    panel(page, "jobstatus")
    page.click("#run-status")
    page.click("#confirm-ok")

    def status_shown() -> bool:
        page.click('#tab-jobstatus button:text-is("Reload")')
        page.wait_for_selector("#tab-jobstatus[data-loaded]")
        return "sleeps.job1" in page.inner_text("#tab-jobstatus")

    assert wait_for(status_shown, 15)

    # Zombies: a second --init of the running job, listed in the page and removed from it.
    make_zombie(centre, spec, SLEEPS, "77777")
    go(page, web.url, "/machine1//zombies")
    zombie = panel(page, "zombies").locator(f'tr[data-path="{SLEEPS}"]')
    assert zombie.locator("td").nth(4).inner_text() == "77777"
    shot(page, "panel_zombies")
    zombie.locator('button[data-zombie="remove"]').click()
    assert SLEEPS in page.inner_text("#confirm-paths")
    page.click("#confirm-ok")
    assert wait_for(lambda: SLEEPS not in real(centre, spec, "--zombie_get"), 15)
    page.wait_for_function("p => !document.querySelector(`#zombies tr[data-path='${p}']`)", arg=SLEEPS)


def test_read_only_refuses_every_write(web: Web, centre: Any, page: Any, panels_suite: Any) -> None:
    spec = panels_suite
    process = WebProcess(web.tunnel.profile.path, "--read-only")
    try:
        assert "(read-only)" in process.printed
        go(page, process.url, f"/machine1/{SUITE}/edited/variables")
        page.wait_for_selector("#read-only:not([hidden])")
        page.wait_for_selector('#vars tr[data-name="GREETING"]')
        assert page.locator("#vars button").count() == 0 and page.locator("#d-actions button").count() == 0
        assert page.locator("#var-add").is_hidden()
        # Sent anyway, with the page's own CSRF token: refused, and nothing changed on the server.
        writes = {
            "alter": {"server": "machine1", "path": EDITED, "how": "add", "name": "RO", "value": "x"},
            "action": {"server": "machine1", "action": "suspend", "paths": [EDITED]},
            "submit": {"server": "machine1", "path": EDITED, "text": "echo x\n"},
            "zombie": {"server": "machine1", "action": "remove", "paths": [SLEEPS]},
            "statuscmd": {"server": "machine1", "path": SLEEPS},
        }
        for name, body in writes.items():
            status, text = page.evaluate(
                """async ([name, body]) => {
                  const csrf = document.querySelector('meta[name="csrf-token"]').content;
                  const r = await fetch('/api/' + name, {method: 'POST', body: JSON.stringify(body),
                    headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}});
                  return [r.status, (await r.json()).error];
                }""",
                [name, body],
            )
            assert status == 403 and text.startswith("read-only"), (name, status, text)
        assert variable_by_python3_ecflow(centre, spec, EDITED, "RO") is None
        assert real(centre, spec, "--query", "dstate", EDITED).strip() == "suspended"  # its defstatus, untouched
        # Reading still works: the script panel.
        page.click('#tabs button[data-tab="script"]')
        assert "%include <head.h>" in panel(page, "script").inner_text()
        shot(page, "read_only")
    finally:
        process.stop()


def selected_path(page: Any) -> str:
    return str(page.eval_on_selector(".node.selected", "r => r.dataset.server + ' ' + r.dataset.path"))


def test_search_table_and_keyboard(web: Web, page: Any) -> None:
    go(page, web.url, "/machine1/lab/table")
    # Table: the suite's tasks, then only the aborted ones.
    table = panel(page, "table")
    paths = table.locator("tbody tr").evaluate_all("rs => rs.map(r => r.dataset.path)")
    assert paths == ["/lab/f1/hello", "/lab/f1/long", "/lab/f1/fails", "/lab/f2/later"]
    table.locator("select").select_option("aborted")
    assert table.locator("tbody tr").evaluate_all("rs => rs.map(r => r.dataset.path)") == ["/lab/f1/fails"]
    shot(page, "panel_table")

    # Search: every server's names; a pattern; Enter opens the highlighted one.
    page.fill("#search", "f*s")
    hits = page.eval_on_selector_all(
        "#search-results li[data-path]", "ls => ls.map(l => l.dataset.server + l.dataset.path)"
    )
    assert hits == ["machine1/lab/f1/fails", "machine2/ops/f1/fails"]
    page.fill("#search", "hel")
    page.press("#search", "ArrowDown")
    page.press("#search", "Enter")
    page.wait_for_selector("#d-path:text-is('/ops/f1/hello')")
    assert page.url.endswith("#/machine2/ops/f1/hello/info")

    # Keyboard in the tree: down, right (open, then into), left (up, then close); no history entry per key.
    go(page, web.url, "/machine1/lab/info")
    page.wait_for_selector("#d-path:text-is('/lab')")
    page.focus("#tree")
    page.keyboard.press("ArrowDown")
    page.wait_for_function("() => document.querySelector('#d-path').textContent === '/lab/f1'")
    page.keyboard.press("ArrowRight")
    page.wait_for_selector('.node[data-path="/lab/f1/hello"]')
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => document.querySelector('#d-path').textContent === '/lab/f1/hello'")
    assert selected_path(page) == "machine1 /lab/f1/hello"
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("() => document.querySelector('#d-path').textContent === '/lab/f1'")
    page.keyboard.press("ArrowLeft")
    page.wait_for_selector('.node[data-path="/lab/f1/hello"]', state="detached")
    page.go_back()  # back past the keyboard's moves: the view before them
    page.wait_for_function("() => location.hash === '#/machine2/ops/f1/hello/info'")


LOG_TIME = re.compile(r"^(?:LOG|MSG):\[(\d\d:\d\d:\d\d \d+\.\d+\.\d{4})\] +(\S+)(?: (\S+))?")


def canvas_fingerprint(page: Any, selector: str) -> tuple[int, int]:
    """(pixels drawn in a colour other than white or transparent, a checksum of the image)."""
    return tuple(
        page.eval_on_selector(
            selector,
            """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0, sum = 0;
                 for (let i = 0; i < d.length; i += 4) {
                   if (d[i + 3] && (d[i] < 250 || d[i + 1] < 250 || d[i + 2] < 250)) n++;
                   sum = (sum * 31 + d[i] + d[i + 1] * 7 + d[i + 2] * 13) % 1000000007;
                 }
                 return [n, sum]; }""",
        )
    )


def test_timeline_and_server_load_from_the_log(web: Web, centre: Any, page: Any) -> None:
    spec = centre.server("machine1")
    go(page, web.url, "/machine1/lab/timeline")
    panel(page, "timeline")
    data = page.evaluate("() => window.ecfWeb.timeline")
    # The log read here on its own (strptime, not the page's parser): each task's changes at the log's times.
    expected: dict[str, list[list[Any]]] = {}
    child = 0
    for line in centre.server_log(spec).read_text().splitlines():
        m = LOG_TIME.match(line)
        if not m:
            continue
        when = int(datetime.strptime(m[1], "%H:%M:%S %d.%m.%Y").replace(tzinfo=UTC).timestamp())
        if line.startswith("LOG:") and m[2].rstrip(":") in STATES and (m[3] or "").startswith("/lab/"):
            expected.setdefault(m[3], []).append([when, m[2].rstrip(":")])
        child += line.startswith("MSG:") and m[2].startswith("chd:")
    shown = dict(data["timeline"])
    for task in ("/lab/f1/hello", "/lab/f1/fails", "/lab/f1/long"):
        assert shown[task] == expected[task], task
    assert shown["/lab/f1/hello"][-1][1] == "complete" and shown["/lab/f1/fails"][-1][1] == "aborted"
    drawn, before = canvas_fingerprint(page, "#timeline-canvas")
    assert drawn > 500  # bars, labels and the axis
    shot(page, "panel_timeline")
    # The wheel zooms in (a different picture), a double click shows the whole log again.
    page.locator("#timeline-canvas").hover(position={"x": 500, "y": 40})
    page.mouse.wheel(0, -300)
    assert canvas_fingerprint(page, "#timeline-canvas")[1] != before
    page.locator("#timeline-canvas").dblclick(position={"x": 500, "y": 40})
    assert canvas_fingerprint(page, "#timeline-canvas")[1] == before

    # Server load: every child command of the log counted (no job sends any meanwhile: `long` only sleeps).
    go(page, web.url, "/machine1//serverload")
    panel(page, "serverload")
    load = page.evaluate("() => window.ecfWeb.load.load")
    assert sum(load["child"]) == child and child >= 5  # 3 inits, an abort, a complete
    assert sum(load["user"]) > 0 and "lab" in load["suites"]
    assert canvas_fingerprint(page, "#load-canvas")[0] > 100
    shot(page, "panel_serverload")
    # The server's own Info: where it is, its suites and how many tasks are in trouble.
    page.click('#tabs button[data-tab="info"]')
    info = page.inner_text("#tab-info")
    assert f"machine1:{spec.port}" in info and "lab" in info and "RUNNING" in info


def test_notifications_for_a_watched_suite(web: Web, centre: Any, page: Any, panels_suite: Any) -> None:
    spec = panels_suite
    page.context.grant_permissions(["notifications"], origin=web.url.split("/?")[0])
    go(page, web.url, f"/machine1/{SUITE}/info")
    page.click("#watch-suite")
    assert page.inner_text("#watch-suite") == "watching"
    page.reload()  # kept in this browser
    page.wait_for_selector("#watch-suite.on")

    def notified() -> list[tuple[str, str, str]]:
        return [(n["what"], n["path"], n["how"]) for n in page.evaluate("() => window.ecfWeb.notified")]

    real(centre, spec, "--force=aborted", EDITED)
    page.wait_for_function("() => window.ecfWeb.notified.length >= 1")
    real(centre, spec, "--alter", "set_flag", "late", EDITED)
    page.wait_for_function("() => window.ecfWeb.notified.length >= 2")
    real(centre, spec, f"--resume={SLEEPS}")
    assert wait_for(lambda: state(centre, spec, SLEEPS) == "active", 30)
    make_zombie(centre, spec, SLEEPS, "55555")
    page.wait_for_function("() => window.ecfWeb.notified.length >= 3", timeout=30000)
    assert notified() == [("aborted", EDITED, "browser"), ("late", EDITED, "browser"), ("zombie", SLEEPS, "browser")]
    shot(page, "notifications")
    real(centre, spec, f"--zombie_remove={SLEEPS}")

    # No longer watched: an abort is not announced.
    page.click("#watch-suite")
    page.wait_for_selector("#watch-suite:not(.on)")
    real(centre, spec, "--force=aborted", WAITS)
    page.wait_for_selector(f'.node[data-path="/{SUITE}"][data-state="aborted"]')
    time.sleep(1)
    assert len(notified()) == 3


def test_suite_filter(web: Web, centre: Any, page: Any) -> None:
    spec = centre.server("machine2")

    def handles() -> str:
        return str(real(centre, spec, "--ch_suites"))

    go(page, web.url, "/machine1/lab/info")
    page.wait_for_selector('.node[data-server="machine2"][data-path="/ops"]')
    page.click("#suite-filter")
    page.uncheck('#suites-list input[data-key="machine2 /ops"]')
    page.click("#suites-ok")
    try:
        # The page server now syncs machine2 through a client handle of no suite: /ops is gone from the tree.
        page.wait_for_selector('.node[data-server="machine2"][data-path="/ops"]', state="detached")
        assert page.locator("#suite-filter.on").count() == 1
        assert wait_for(lambda: re.search(r"^\s*(root\s+)?\d+\s*$", handles(), re.M) is not None, 10), handles()
        page.reload()  # the page server keeps following what was chosen
        page.wait_for_function("() => 'machine2' in window.ecfWeb.painted")
        assert page.locator('.node[data-server="machine2"][data-path="/ops"]').count() == 0
        assert page.locator('.node[data-server="machine1"][data-path="/lab"]').count() == 1
    finally:
        page.click("#suite-filter")
        page.check('#suites-list input[data-key="machine2 /ops"]')
        page.click("#suites-ok")
    page.wait_for_selector('.node[data-server="machine2"][data-path="/ops"]')
    assert wait_for(lambda: "User" not in handles(), 10), handles()  # every suite again: the handle dropped


def test_server_variables_edited_in_the_page(web: Web, centre: Any, page: Any) -> None:
    spec = centre.server("machine1")

    def on_server() -> str:
        return real(centre, spec, "--get_state")  # the server's own variables lead it

    go(page, web.url, "/machine1//variables")
    page.wait_for_selector('#vars tr[data-name="ECF_HOME"]')  # the server's generated ones
    page.fill("#var-add-name", "PAGE_SERVER_VAR")
    page.fill("#var-add-value", "set from the page")
    page.click('#var-add button[type="submit"]')
    assert wait_for(lambda: "edit PAGE_SERVER_VAR 'set from the page'" in on_server(), 15)
    try:
        page.wait_for_selector('#vars tr[data-name="PAGE_SERVER_VAR"] button[data-delete="PAGE_SERVER_VAR"]')
        assert page.locator('#vars tr[data-name="ECF_HOME"]').count() == 1  # still there after the sync
    finally:
        page.click('#vars tr[data-name="PAGE_SERVER_VAR"] button[data-delete="PAGE_SERVER_VAR"]')
        page.click("#confirm-ok")
    assert wait_for(lambda: "PAGE_SERVER_VAR" not in on_server(), 15)
    page.wait_for_selector('#vars tr[data-name="PAGE_SERVER_VAR"]', state="detached")
