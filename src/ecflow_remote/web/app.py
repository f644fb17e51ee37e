"""The page server (aiohttp): the guard in front of every request, the page's files, its JSON and event streams."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import importlib.resources
import io
import json
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from ecflow_remote.errors import EcflowRemoteError
from ecflow_remote.web import adapter, model, panels
from ecflow_remote.web.live import Hub, sse
from ecflow_remote.web.security import COOKIE, CSRF_HEADER, TOKEN_PARAM, Guard, PeerCheckedSite

if TYPE_CHECKING:
    from ecflow_remote.tunnel.handle import Tunnel

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

STATIC = {
    "app.js": "text/javascript",
    "tree.js": "text/javascript",
    "panels.js": "text/javascript",
    "find.js": "text/javascript",
    "plots.js": "text/javascript",
    "notify.js": "text/javascript",
    "ui.js": "text/javascript",
    "style.css": "text/css",
    "index.html": "text/html",
}
# A job output is sent to the page in events of at most this much text.
OUTPUT_CHUNK = 256 * 1024
KEEPALIVE_EVERY = 15.0
GUARD: web.AppKey[Guard] = web.AppKey("guard", Guard)
HUB: web.AppKey[Hub] = web.AppKey("hub", Hub)
STREAMS: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("streams")

_SECURITY_HEADERS = {
    # Only our own files run: no inline script, no other origin, never framed.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # The token must never leave in a Referer, and nothing is cached (the page shows live data).
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def _static(name: str) -> bytes:
    return (importlib.resources.files("ecflow_remote.web") / "static" / name).read_bytes()


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


# ---------------------------------------------------------------------------------------------------- guard


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    guard = request.app[GUARD]
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    local = transport.get_extra_info("sockname") if transport is not None else None
    if transport is None or not guard.peer_ok(peer, local):
        # Another account's connection: dropped before anything is answered, as the relay does.
        if transport is not None:
            transport.abort()
        raise web.HTTPForbidden(text="this page belongs to another account\n")
    if not guard.host_ok(request.headers.get("Host")):
        return web.Response(status=403, text="wrong Host: open the address ecflow-remote web printed\n")
    writes = request.method not in ("GET", "HEAD")
    if not guard.origin_ok(request.headers.get("Origin"), required=writes):
        return web.Response(status=403, text="cross-origin requests are refused\n")
    token = request.query.get(TOKEN_PARAM)
    if token is not None and request.method == "GET":
        if not guard.token_ok(token):
            return web.Response(status=403, text="wrong token: open the address ecflow-remote web printed\n")
        # The token buys a session cookie once; the address without it replaces it in the bar and the history.
        query = {k: v for k, v in request.query.items() if k != TOKEN_PARAM}
        location = request.path + ("?" + urlencode(query) if query else "")
        response = web.HTTPSeeOther(location)
        response.set_cookie(COOKIE, guard.session, httponly=True, samesite="Strict", path="/")
        raise response
    if not guard.session_ok(request.cookies.get(COOKIE)):
        bearer = request.headers.get("Authorization", "")
        if not (bearer.startswith("Bearer ") and guard.token_ok(bearer[7:])):
            if request.path.startswith("/api/"):
                return _json_error(401, "not signed in: open the address ecflow-remote web printed")
            return web.Response(
                status=401,
                text="ecflow-remote web: open the address it printed (with its token) to sign in\n",
            )
    if writes and not guard.csrf_ok(request.headers.get(CSRF_HEADER)):
        return _json_error(403, "missing or wrong CSRF token: reload the page")
    if writes and request.app[HUB].read_only and request.path in panels.WRITES:
        return _json_error(403, "read-only: this page was started with --read-only and changes nothing")
    return await handler(request)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(_SECURITY_HEADERS)


# ------------------------------------------------------------------------------------------------- the page


async def index(request: web.Request) -> web.Response:
    html = _static("index.html").decode().replace("{{CSRF}}", request.app[GUARD].csrf)
    return web.Response(text=html, content_type="text/html")


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    return web.Response(body=_static(name), content_type=STATIC[name])


async def no_icon(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def _event_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    return response


async def events(request: web.Request) -> web.StreamResponse:
    """Everything live for one page: the servers, their trees, then each change as it happens."""
    hub = request.app[HUB]
    response = await _event_stream(request)
    queue = hub.subscribe()
    try:
        while True:
            try:
                async with asyncio.timeout(KEEPALIVE_EVERY):
                    message = await queue.get()
            except TimeoutError:
                message = b": keepalive\n\n"  # a comment line: notices a page that went away
            if message is None:
                break
            await response.write(message)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.unsubscribe(queue)
    return response


def _feed_node(request: web.Request) -> tuple[str, Any, Any]:
    hub = request.app[HUB]
    server = request.query.get("server", "")
    path = request.query.get("path", "")
    feed = hub.feed(server)
    if feed.defs is None:
        raise EcflowRemoteError(feed.error or f"{server}: the definition has not been read yet")
    node = feed.index.get(path)
    if node is None:
        raise EcflowRemoteError(f"{server}: no node {path!r}")
    return server, feed.defs, node


async def node(request: web.Request) -> web.Response:
    """One node's details, from the live definition (no extra request to the server)."""
    try:
        server, defs, found = _feed_node(request)
    except EcflowRemoteError as e:
        return _json_error(404, str(e))
    return web.json_response(model.node_json(server, defs, found))


async def tree(request: web.Request) -> web.Response:
    feed = request.app[HUB].feeds.get(request.query.get("server", ""))
    if feed is None or feed.defs is None:
        return _json_error(404, feed.error if feed and feed.error else "no such server, or not read yet")
    return web.json_response(model.tree_json(feed.name, feed.defs))


async def status(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    return web.json_response(hub.status or await asyncio.to_thread(hub._read_status))


async def action(request: web.Request) -> web.Response:
    """POST {server, action, paths}: one node command through the tunnel; the feed then polls at once."""
    hub = request.app[HUB]
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _json_error(400, "the request body is not JSON")
    server, what, paths = body.get("server"), body.get("action"), body.get("paths")
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p.startswith("/") for p in paths):
        return _json_error(400, "paths: a list of absolute node paths, like /suite/family/task")
    if what not in adapter.node_actions():
        return _json_error(400, f"unknown action {what!r}; one of {', '.join(adapter.node_actions())}")
    try:
        feed = hub.feed(str(server))
        await adapter.node_action(hub.client_for(feed.name), what, paths)
    except EcflowRemoteError as e:
        return _json_error(502, str(e))
    feed.poke()
    return web.json_response({"ok": True, "server": feed.name, "action": what, "paths": paths})


class _Sink(io.BytesIO):
    """What output.follow and read_output write to: each write becomes text events for the page."""

    def __init__(self, queue: asyncio.Queue[tuple[str, dict[str, str]] | None]) -> None:
        super().__init__()
        self.queue = queue
        # A UTF-8 character may straddle two reads.
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def write(self, data: Any) -> int:
        text = self.decoder.decode(bytes(data))
        for start in range(0, len(text), OUTPUT_CHUNK):
            self.queue.put_nowait(("data", {"text": text[start : start + OUTPUT_CHUNK]}))
        return len(data)

    def flush(self) -> None:
        return None


async def job_output(request: web.Request) -> web.StreamResponse:
    """A task's job output as events (`source`, `data`…, `note`, then `end` or `error`); with follow=1 it goes
    on with what the job adds, through the same library calls as `ecflow-remote output --follow`."""
    from ecflow_remote import output

    hub = request.app[HUB]
    server, path = request.query.get("server", ""), request.query.get("path", "")
    follow = request.query.get("follow") == "1"
    response = await _event_stream(request)
    queue: asyncio.Queue[tuple[str, dict[str, str]] | None] = asyncio.Queue()
    stopping = False

    def note(text: str) -> None:
        queue.put_nowait(("note", {"text": text}))

    async def produce() -> None:
        try:
            hub.feed(server)
            source = await output.locate(hub.tunnel, server, path)
            queue.put_nowait(("source", {"from": source.describe(), "jobout": source.jobout}))
            sink = _Sink(queue)
            if follow:
                await output.follow(source, sink, should_stop=lambda: stopping, note=note)
            else:
                await output.read_output(source, sink, note=note)
            queue.put_nowait(("end", {}))
        except (EcflowRemoteError, OSError, ValueError) as e:
            queue.put_nowait(("error", {"text": str(e) or type(e).__name__}))
        finally:
            queue.put_nowait(None)

    task = asyncio.create_task(produce())
    request.app[STREAMS].add(task)
    try:
        while (item := await queue.get()) is not None:
            await response.write(sse(*item))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        stopping = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        request.app[STREAMS].discard(task)
    return response


# ----------------------------------------------------------------------------------------------- the server


def make_app(hub: Hub, guard: Guard) -> web.Application:
    app = web.Application(middlewares=[guard_middleware], client_max_size=64 * 1024)
    app[GUARD] = guard
    app[HUB] = hub
    app[STREAMS] = set()
    app.on_response_prepare.append(_security_headers)
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/favicon.ico", no_icon)
    app.router.add_get("/api/events", events)
    app.router.add_get("/api/node", node)
    app.router.add_get("/api/tree", tree)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/output", job_output)
    app.router.add_post("/api/action", action)
    panels.add_routes(app, hub)

    async def on_shutdown(app: web.Application) -> None:
        streams: set[asyncio.Task[None]] = app[STREAMS]
        for task in list(streams):
            task.cancel()
        await hub.stop()

    app.on_shutdown.append(on_shutdown)
    return app


def listen_socket(port: int, host: str = "127.0.0.1") -> socket.socket:
    """Our listening socket, bound before the app starts so the URL (with its port) is known."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise EcflowRemoteError(f"cannot listen on {host}:{port} ({e.strerror}): choose another --port") from e
    sock.listen(128)
    sock.setblocking(False)
    return sock


class PageServer:
    """A running page server: start() binds and serves, stop() ends every stream and closes the port."""

    def __init__(
        self, tunnel: Tunnel, port: int = 0, *, interval: float | None = None, read_only: bool = False
    ) -> None:
        self.tunnel = tunnel
        self.sock = listen_socket(port)
        self.guard = Guard(port=self.sock.getsockname()[1])
        self.hub = Hub(tunnel, interval=interval, read_only=read_only)
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return self.guard.url

    async def start(self) -> None:
        self.runner = web.AppRunner(make_app(self.hub, self.guard), access_log=None, shutdown_timeout=2.0)
        await self.runner.setup()
        await PeerCheckedSite(self.runner, self.sock, self.guard).start()
        self.hub.start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        self.sock.close()


async def serve(
    tunnel: Tunnel, port: int, ready: Callable[[str], None], stop: asyncio.Event, *, read_only: bool = False
) -> None:
    """Serve until `stop` is set; `ready(url)` once the page can be opened."""
    server = PageServer(tunnel, port, read_only=read_only)
    await server.start()
    try:
        ready(server.url)
        await stop.wait()
    finally:
        await server.stop()
