"""The page's panels beyond the tree: the server's files of a task, server and node logs, zombies, triggers, the
editable variables and the edit/pre-process/submit of a script (each one ecFlow request through the tunnel)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ecflow_remote.clients.ecflow import VARIABLE_CHANGES, ZOMBIE_ACTIONS, serverlog
from ecflow_remote.errors import EcflowRemoteError
from ecflow_remote.web import adapter, model

if TYPE_CHECKING:
    from ecflow_remote.clients.ecflow import AsyncEcflowClient
    from ecflow_remote.web.live import Feed, Hub

FILE_KINDS = ("script", "job", "jobout", "manual", "kill", "stat")
# What a panel shows of a file or the server log at most (ecflow_ui's default is 10 000 lines too).
MAX_LINES = 10000
LOG_LINES = 1000
# The plots read this many of the log's last lines by default, and up to PLOT_MAX (a day of a busy server).
PLOT_LINES = 100_000
PLOT_MAX = 2_000_000
# What `web --read-only` refuses (pre-process is a POST for its body, but changes nothing).
WRITES = frozenset({"/api/action", "/api/alter", "/api/submit", "/api/zombie", "/api/statuscmd"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequest(Exception):
    """A request the page should never send: answered 400 with this text."""


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _path(value: Any, *, server_node: bool = False) -> str:
    if not isinstance(value, str) or not value.startswith("/") or (value == "/" and not server_node):
        raise BadRequest(f"path: an absolute node path like /suite/family/task, not {value!r}")
    return value


def _lines(value: str | None, default: int, limit: int) -> int:
    try:
        n = int(value) if value else default
    except ValueError:
        raise BadRequest(f"lines: a number, not {value!r}") from None
    if not 0 < n <= limit:
        raise BadRequest(f"lines: 1 to {limit}, not {n}")
    return n


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequest("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body is not a JSON object")
    return body


def add_routes(app: web.Application, hub: Hub) -> None:
    """The panels' endpoints; each answers JSON, an error as {"error": text} naming the server."""

    def client(server: Any) -> tuple[Feed, AsyncEcflowClient]:
        feed = hub.feed(str(server))
        return feed, hub.client_for(feed.name)

    def handler(fn: Callable[[web.Request], Awaitable[dict[str, Any]]]) -> Handler:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return web.json_response(await fn(request))
            except BadRequest as e:
                return _error(400, str(e))
            except (ValueError, EcflowRemoteError) as e:
                return _error(502, str(e))

        return run

    async def file(request: web.Request) -> dict[str, Any]:
        q = request.query
        kind = q.get("kind", "")
        if kind not in FILE_KINDS:
            raise BadRequest(f"kind: one of {', '.join(FILE_KINDS)}")
        path = _path(q.get("path"))
        lines = _lines(q.get("lines"), MAX_LINES, 10 * MAX_LINES)
        feed, c = client(q.get("server"))
        text, cut = await c.file(path, kind, lines)
        return {"server": feed.name, "path": path, "kind": kind, "text": text, "cut": cut, "lines": lines}

    async def server_log(request: web.Request) -> dict[str, Any]:
        lines = _lines(request.query.get("lines"), LOG_LINES, 100 * LOG_LINES)
        feed, c = client(request.query.get("server"))
        return {"server": feed.name, "text": await c.server_log(lines), "lines": lines}

    async def log_plot(request: web.Request) -> dict[str, Any]:
        """Timeline and Server load: the log read once, digested off the event loop."""
        under = _path(request.query.get("path") or "/", server_node=True)
        lines = _lines(request.query.get("lines"), PLOT_LINES, PLOT_MAX)
        feed, c = client(request.query.get("server"))
        text = await c.server_log(lines)
        d = await asyncio.to_thread(serverlog.digest, text)
        return {
            "server": feed.name,
            "path": under,
            "lines": lines,
            "first": d.first,
            "last": d.last,
            "timeline": serverlog.timeline(d, under),
            "load": serverlog.load_series(d),
        }

    async def history(request: web.Request) -> dict[str, Any]:
        path = _path(request.query.get("path"), server_node=True)
        feed, c = client(request.query.get("server"))
        return {"server": feed.name, "path": path, "lines": await c.edit_history(path)}

    async def zombies(request: web.Request) -> dict[str, Any]:
        feed, c = client(request.query.get("server"))
        return {"server": feed.name, "zombies": [asdict(z) for z in await c.zombies()]}

    async def edit(request: web.Request) -> dict[str, Any]:
        path = _path(request.query.get("path"))
        feed, c = client(request.query.get("server"))
        return {"server": feed.name, "path": path, "text": await c.edit_script(path)}

    async def triggers(request: web.Request) -> dict[str, Any]:
        feed = hub.feed(request.query.get("server", ""))
        node = feed.index.get(request.query.get("path", ""))
        if feed.defs is None or node is None:
            raise BadRequest(feed.error or f"{feed.name}: no node {request.query.get('path')!r}")
        return {"server": feed.name, "path": node.path, **adapter.triggers(feed.defs, node)}

    async def server_node(request: web.Request) -> dict[str, Any]:
        feed = hub.feed(request.query.get("server", ""))
        if feed.defs is None:
            raise EcflowRemoteError(feed.error or f"{feed.name}: the definition has not been read yet")
        return model.server_json(feed.name, feed.defs)

    async def suites(request: web.Request) -> dict[str, Any]:
        """The suite filter: every suite of the server, and those the page follows (null: all)."""
        feed, c = client(request.query.get("server"))
        return {"server": feed.name, "all": await c.suites(), "shown": feed.suites}

    async def follow(request: web.Request) -> dict[str, Any]:
        """POST {server, suites: [names] or null}: the feed follows only those suites (a client handle on the
        server, as ecflow_ui's suite filter registers), or all again. Changes no suite: allowed read-only too."""
        body = await _body(request)
        chosen = body.get("suites")
        if chosen is not None and not (isinstance(chosen, list) and all(isinstance(s, str) and s for s in chosen)):
            raise BadRequest("suites: a list of suite names, or null for all")
        feed = hub.feed(str(body.get("server")))
        feed.follow(None if chosen is None else list(chosen))
        return {"ok": True, "server": feed.name, "shown": feed.suites}

    async def preprocess(request: web.Request) -> dict[str, Any]:
        body = await _body(request)
        path, text = _path(body.get("path")), body.get("text")
        if text is not None and not isinstance(text, str):
            raise BadRequest("text: the script's text")
        feed, c = client(body.get("server"))
        return {"server": feed.name, "path": path, "text": await c.preprocess(path, text)}

    async def submit(request: web.Request) -> dict[str, Any]:
        body = await _body(request)
        path, text = _path(body.get("path")), body.get("text")
        if not isinstance(text, str) or not text.strip():
            raise BadRequest("text: the edited script to submit")
        feed, c = client(body.get("server"))
        await c.submit(path, text)
        feed.poke()
        return {"ok": True, "server": feed.name, "path": path}

    async def status_command(request: web.Request) -> dict[str, Any]:
        body = await _body(request)
        path = _path(body.get("path"))
        feed, c = client(body.get("server"))
        await c.status_command([path])
        return {"ok": True, "server": feed.name, "path": path}

    async def alter(request: web.Request) -> dict[str, Any]:
        body = await _body(request)
        path = _path(body.get("path"), server_node=True)
        how, name, value = body.get("how"), body.get("name"), body.get("value", "")
        if how not in VARIABLE_CHANGES:
            raise BadRequest(f"how: one of {', '.join(VARIABLE_CHANGES)}")
        if not isinstance(name, str) or not isinstance(value, str):
            raise BadRequest("name and value: text")
        feed, c = client(body.get("server"))
        await c.alter_variable(how, path, name, value)
        feed.poke()
        return {"ok": True, "server": feed.name, "path": path, "how": how, "name": name}

    async def zombie(request: web.Request) -> dict[str, Any]:
        body = await _body(request)
        what, paths = body.get("action"), body.get("paths")
        if what not in ZOMBIE_ACTIONS:
            raise BadRequest(f"action: one of {', '.join(ZOMBIE_ACTIONS)}")
        if not isinstance(paths, list) or not paths:
            raise BadRequest("paths: a list of task paths")
        feed, c = client(body.get("server"))
        await c.zombie_action(what, [_path(p) for p in paths])
        feed.poke()
        return {"ok": True, "server": feed.name, "action": what, "paths": paths}

    for route, fn in (
        ("/api/file", file),
        ("/api/serverlog", server_log),
        ("/api/logplot", log_plot),
        ("/api/history", history),
        ("/api/zombies", zombies),
        ("/api/edit", edit),
        ("/api/triggers", triggers),
        ("/api/server", server_node),
        ("/api/suites", suites),
    ):
        app.router.add_get(route, handler(fn))
    for route, fn in (
        ("/api/preprocess", preprocess),
        ("/api/submit", submit),
        ("/api/alter", alter),
        ("/api/zombie", zombie),
        ("/api/statuscmd", status_command),
        ("/api/suites", follow),
    ):
        app.router.add_post(route, handler(fn))
