"""A pure-Python ecFlow client (ping, version, definition, node) over TCP or a SOCKS5 proxy, async and sync."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from ecflow_remote.clients.connect import Destination, DestinationOptions
from ecflow_remote.errors import (
    ConnectError,
    NoReply,
    ProtocolError,
    ServerDown,
    ServerError,
    StreamTimeout,
)
from ecflow_remote.unix import login_name

from . import actions, channel, commands, panels
from .defs import Defs, Node, parse_defs, parse_node
from .wire import decode_json, encode_frame, encode_json, sock_read_frame

if TYPE_CHECKING:
    from .watch import Watch

_T = TypeVar("_T")
# Encoded requests kept per client (ping, version, whole definition, recent node paths).
_FRAME_CACHE_SIZE = 64


class _Frames(dict[tuple[str, ...], bytes]):
    """Encoded requests; they carry the crypt()ed password, so their repr never shows them."""

    def __repr__(self) -> str:
        return f"<{len(self)} encoded requests>"


class AsyncEcflowClient(Destination):
    """Talks to one ecFlow 5.x server; every call is one request on its own TCP connection, as ecFlow expects."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        user: str | None = None,
        custom_user: bool = False,
        password: str | None = None,
        client_host: str | None = None,
        protocol: str = "plain",
        server: tuple[str, int] | None = None,
        fetch_certificate: channel.CertificateFetcher | None = None,
        **options: Unpack[DestinationOptions],
    ) -> None:
        """`user` defaults to the login name; `custom_user` marks it as ECF_USER/--user would (the server then
        checks `password` against its custom password file). `password` is the plain text from the password
        file; it is sent crypt()ed, exactly as ecflow_client 5.9.2 sends it. The options are Destination's: proxy,
        proxy_auth, connect_timeout (default 5 s) and read_timeout (default 30 s). `protocol`: "plain", "ssl" (TLS,
        the server's certificate from ~/.ecflowrc/ssl as ecflow_client finds it, named after `server`, the server's
        own host and port when host:port is a tunnel's), "http" or "https" (5.15+); `fetch_certificate`: gets one
        missing at home."""
        super().__init__(host, port, **options)
        self.channel = channel.EcflowChannel(protocol, server, fetch_certificate)
        the_user = user or login_name()
        self._identity = commands.Identity(
            client_host=client_host or commands.default_client_host(),
            user=the_user,
            password=commands.crypt_password(password, the_user) if password else "",
            custom_user=custom_user,
        )
        self._frames = _Frames()

    @property
    def user(self) -> str:
        return self._identity.user

    def __repr__(self) -> str:
        return f"AsyncEcflowClient({self.where}, user={self.user!r})"

    # --- shared by the async and the sync paths: framing, decoding, error words --------------------------------

    def _frame(self, key: tuple[str, ...], build: Callable[[], dict[str, Any]]) -> bytes:
        """The encoded request for `key`, built once: the identity never changes, so neither do the bytes."""
        frame = self._frames.get(key)
        if frame is None:
            frame = encode_frame(encode_json(build()))
            if len(self._frames) >= _FRAME_CACHE_SIZE:
                self._frames.clear()
            self._frames[key] = frame
        return frame

    def _ping_frame(self) -> bytes:
        return self._frame(("ping",), lambda: commands.ping_request(self._identity))

    def _version_frame(self) -> bytes:
        return self._frame(("version",), lambda: commands.server_version_request(self._identity))

    def _get_frame(self, path: str = "") -> bytes:
        return self._frame(("get", path), lambda: commands.get_request(self._identity, path))

    def _file_frame(self, path: str, kind: str, lines: int) -> bytes:
        return encode_frame(encode_json(commands.file_request(self._identity, path, kind, lines)))

    def _decode(self, body: bytes) -> commands.Reply:
        return commands.decode_reply(decode_json(body), self.where)

    def _timed_out(self) -> StreamTimeout:
        return StreamTimeout(
            f"ecFlow server {self.where} did not answer within {self.read_timeout:g}s; "
            "it may be overloaded or the tunnel may be stuck (try again, or raise read_timeout)"
        )

    def _dropped(self, e: ConnectionError) -> StreamTimeout:
        return StreamTimeout(
            f"ecFlow server {self.where} dropped the connection ({e.strerror or e}): the server is not running "
            "(through a tunnel, a dead server looks like this), or the tunnel broke; check `ecflow-remote status`"
        )

    @contextlib.contextmanager
    def _talking(self, sock: socket.socket) -> Iterator[None]:
        """One exchange on `sock`, for both APIs: its timeouts and drops in plain words, the socket closed after."""
        try:
            yield
        except TimeoutError:
            raise self._timed_out() from None
        except ConnectionError as e:
            raise self._dropped(e) from e
        finally:
            sock.close()

    def _exchange_sync(self, frame: bytes) -> commands.Reply:
        """One request over a blocking socket: no event loop, for EcflowClient."""
        return self._decode(self._exchange_body_sync(frame))

    def _exchange_body_sync(self, frame: bytes) -> bytes:
        sock = self.connect_socket()
        with self._talking(sock):
            deadline = time.monotonic() + self.read_timeout
            where = f"ecFlow server {self.where}"
            return channel.exchange(
                sock, frame, self.channel, where, deadline, (self.host, self.port), self.connect_socket
            )

    def _action_frame(self, action: str, paths: str | Sequence[str]) -> tuple[actions.NodeAction, list[str], bytes]:
        checked = actions.check_action(action)
        path_list = actions.check_paths(paths)
        return checked, path_list, encode_frame(encode_json(actions.action_request(self._identity, checked, path_list)))

    @contextlib.contextmanager
    def _action_errors(self, action: actions.NodeAction, paths: list[str]) -> Iterator[None]:
        """A node action's failures as NodeActionError, each naming this server and the paths."""
        try:
            yield
        except ServerError as e:
            raise actions.classify_server_error(self.where, action, paths, e.server_text) from e
        except (ConnectError, StreamTimeout, ProtocolError) as e:
            raise ServerDown(self.where, action, paths, str(e)) from e

    # --- the async API ----------------------------------------------------------------------------------------

    async def _exchange(self, frame: bytes) -> commands.Reply:
        return self._decode(await self._exchange_body(frame))

    async def _exchange_body(self, frame: bytes) -> bytes:
        if self.channel.protocol != "plain":
            # TLS and HTTP on a blocking socket in a thread: ssl sockets cannot use the loop's sock_* calls, and
            # these servers are few; the socket's own timeouts bound the exchange.
            return await asyncio.to_thread(self._exchange_body_sync, frame)
        # A non-blocking socket and the loop's sock_* calls: no transport, protocol or streams per request, and
        # one timeout for the whole send and reply.
        sock = await self.connect_socket_async()
        with self._talking(sock):
            try:
                async with asyncio.timeout(self.read_timeout):
                    await asyncio.get_running_loop().sock_sendall(sock, frame)
                    return await sock_read_frame(sock, f"ecFlow server {self.where}")
            except NoReply as e:
                # A TLS or HTTP server closes on a plain request without a word: ask it to tell.
                where = f"ecFlow server {self.where}"
                raise await asyncio.to_thread(channel.silent_server, where, self.connect_socket, frame) or e from None

    async def request(self, request: dict[str, Any]) -> commands.Reply:
        """Send one request and decode the reply; an ErrorCmd raises ServerError."""
        return await self._exchange(encode_frame(encode_json(request)))

    async def ping(self) -> float:
        """Round trip of one ping, in seconds, including the TCP connection (as `ecflow_client --ping`)."""
        frame = self._ping_frame()
        start = time.perf_counter()
        reply = await self._exchange(frame)
        elapsed = time.perf_counter() - start
        commands.expect_ok(reply, self.where)
        return elapsed

    async def server_version(self) -> str:
        """The server's ecFlow version, such as `5.9.2`."""
        return commands.expect_string(await self._exchange(self._version_frame()), self.where)

    async def get_defs_text(self) -> str:
        """The whole definition with state, as the NET-style text the server sends."""
        return commands.expect_defs_text(await self._exchange(self._get_frame()), self.where)

    async def get_defs(self) -> Defs:
        """The whole definition as a node tree."""
        return parse_defs(await self.get_defs_text())

    async def get_node(self, path: str) -> Node:
        """One node and its subtree, without its ancestors (their variables are not sent)."""
        _check_node_path(path)
        reply = await self._exchange(self._get_frame(path))
        return parse_node(commands.expect_node_text(reply, self.where), path)

    async def file(self, path: str, kind: str = "jobout", max_lines: int | None = None) -> tuple[str, bool]:
        """(text, cut) of a task's file as the server reads it (`ecflow_client --file`).

        The server keeps only the last `max_lines` lines and then says so; `cut` tells, and the marker is
        removed. Without max_lines the whole file is asked for.
        """
        _check_node_path(path)
        lines = _file_lines(max_lines)
        reply = await self._exchange(self._file_frame(path, kind, lines))
        return commands.split_file_truncation(commands.expect_string(reply, self.where), lines)

    async def node_action(self, action: actions.NodeAction, paths: str | Sequence[str]) -> None:
        """Suspend, resume, requeue, execute, complete, abort or kill nodes, as ecflow_ui's menu does, in one
        request. Returns when the server accepted it; NodeActionError (UnknownPath, ActionRefused, ServerDown)
        otherwise, naming this server and the paths."""
        checked, path_list, frame = self._action_frame(action, paths)
        with self._action_errors(checked, path_list):
            commands.expect_ok(await self._exchange(frame), self.where)

    async def why(self, path: str) -> list[str]:
        """Why the node at `path` is not running, from the whole definition (see ecflow.why)."""
        from .why import why

        return why(await self.get_defs(), path)

    async def _ask(self, build: Callable[[commands.Identity], dict[str, Any]], expect: Callable[..., _T]) -> _T:
        """One panel request: built with this client's identity, its reply checked by `expect`."""
        return expect(await self._exchange(encode_frame(encode_json(build(self._identity)))), self.where)

    async def server_log(self, lines: int = panels.DEFAULT_LOG_LINES) -> str:
        """The last `lines` lines of the server's log (`ecflow_client --log=get N`)."""
        return await self._ask(lambda i: panels.log_request(i, lines), commands.expect_string)

    async def edit_history(self, path: str) -> list[str]:
        """The user commands that changed the node, newest last (ecflow_ui's node log)."""
        _check_node_path(path)
        return await self._ask(lambda i: panels.edit_history_request(i, path), panels.expect_string_list)

    async def zombies(self) -> list[panels.Zombie]:
        """The server's zombies (`ecflow_client --zombie_get`)."""
        return await self._ask(panels.zombies_request, panels.expect_zombies)

    async def status_command(self, paths: str | Sequence[str]) -> None:
        """Have the server run each task's ECF_STATUS_CMD (`ecflow_client --status`); its output is the task's
        `stat` file once the command wrote it."""
        path_list = actions.check_paths(paths)
        await self._ask(lambda i: panels.status_request(i, path_list), commands.expect_ok)

    async def zombie_action(self, action: str, paths: str | Sequence[str]) -> None:
        """fob, fail, adopt, remove or kill the zombie of each task path."""
        path_list = actions.check_paths(paths)
        await self._ask(lambda i: panels.zombie_action_request(i, action, path_list), commands.expect_ok)

    async def alter_variable(self, how: str, paths: str | Sequence[str], name: str, value: str = "") -> None:
        """change, add or delete a variable on each node (`/`: the server's own variables)."""
        path_list = _variable_paths(paths)
        await self._ask(lambda i: panels.alter_variable_request(i, how, path_list, name, value), commands.expect_ok)

    async def edit_script(self, path: str) -> str:
        """The task's script as the server finds it, its used variables in a %comment block in front."""
        return await self._ask(lambda i: panels.edit_script_request(i, path, panels.EDIT), commands.expect_string)

    async def preprocess(self, path: str, text: str | None = None) -> str:
        """The script (or `text`, an edited one) with includes expanded and variables substituted."""
        kind = panels.PREPROCESS if text is None else panels.PREPROCESS_USER_FILE
        return await self._ask(lambda i: panels.edit_script_request(i, path, kind, text), commands.expect_string)

    async def submit(self, path: str, text: str, *, alias: bool = False, run: bool = True) -> None:
        """Submit `text` (an edited script, its %comment variables applied) as the task's job."""
        kind = panels.SUBMIT_USER_FILE
        await self._ask(
            lambda i: panels.edit_script_request(i, path, kind, text, alias=alias, run=run), commands.expect_ok
        )

    def watch(self, interval: float = 1.0, suites: Sequence[str] | None = None) -> Watch:
        """Follow the server with incremental sync: `async with client.watch() as w: ... async for update in w`;
        with `suites`, only those (a client handle, dropped at the end)."""
        from .watch import Watch

        return Watch(self, interval, suites)

    async def suites(self) -> list[str]:
        """Every suite's name (`ecflow_client --suites`)."""
        return await self._ask(panels.suites_request, panels.expect_suites)


def _check_node_path(path: str) -> None:
    if not path.startswith("/"):
        raise ValueError(f"node paths are absolute, like /suite/family/task, not {path!r}")


def _variable_paths(paths: str | Sequence[str]) -> list[str]:
    # Like a node action's paths, and `/` too: alter there changes the server's own variables.
    path_list = [paths] if isinstance(paths, str) else list(paths)
    return ["/"] if path_list == ["/"] else actions.check_paths(path_list)


def _file_lines(max_lines: int | None) -> int:
    # max_lines_ is a size_t on the server: this is "no limit" in practice, and what it asks is what it checks.
    return max_lines if max_lines is not None else commands.UNLIMITED_LINES


class EcflowClient:
    """The same client for synchronous code, over plain blocking sockets (no event loop per call)."""

    def __init__(self, host: str, port: int, **kwargs: Any) -> None:
        self._async = AsyncEcflowClient(host, port, **kwargs)

    @property
    def host(self) -> str:
        return self._async.host

    @property
    def port(self) -> int:
        return self._async.port

    @property
    def user(self) -> str:
        return self._async.user

    def __repr__(self) -> str:
        return f"EcflowClient({self._async.where}, user={self.user!r})"

    def ping(self) -> float:
        """Round trip of one ping, in seconds, including the TCP connection (as `ecflow_client --ping`)."""
        c = self._async
        frame = c._ping_frame()
        start = time.perf_counter()
        reply = c._exchange_sync(frame)
        elapsed = time.perf_counter() - start
        commands.expect_ok(reply, c.where)
        return elapsed

    def server_version(self) -> str:
        c = self._async
        return commands.expect_string(c._exchange_sync(c._version_frame()), c.where)

    def get_defs_text(self) -> str:
        c = self._async
        return commands.expect_defs_text(c._exchange_sync(c._get_frame()), c.where)

    def get_defs(self) -> Defs:
        return parse_defs(self.get_defs_text())

    def get_node(self, path: str) -> Node:
        _check_node_path(path)
        c = self._async
        return parse_node(commands.expect_node_text(c._exchange_sync(c._get_frame(path)), c.where), path)

    def file(self, path: str, kind: str = "jobout", max_lines: int | None = None) -> tuple[str, bool]:
        _check_node_path(path)
        c = self._async
        lines = _file_lines(max_lines)
        reply = c._exchange_sync(c._file_frame(path, kind, lines))
        return commands.split_file_truncation(commands.expect_string(reply, c.where), lines)

    def node_action(self, action: actions.NodeAction, paths: str | Sequence[str]) -> None:
        """AsyncEcflowClient.node_action over a blocking socket."""
        c = self._async
        checked, path_list, frame = c._action_frame(action, paths)
        with c._action_errors(checked, path_list):
            commands.expect_ok(c._exchange_sync(frame), c.where)

    def why(self, path: str) -> list[str]:
        """Why the node at `path` is not running, from the whole definition (see ecflow.why)."""
        from .why import why

        return why(self.get_defs(), path)

    def _ask(self, build: Callable[[commands.Identity], dict[str, Any]], expect: Callable[..., _T]) -> _T:
        c = self._async
        return expect(c._exchange_sync(encode_frame(encode_json(build(c._identity)))), c.where)

    # The panels' requests (see AsyncEcflowClient for what each returns).
    def server_log(self, lines: int = panels.DEFAULT_LOG_LINES) -> str:
        return self._ask(lambda i: panels.log_request(i, lines), commands.expect_string)

    def edit_history(self, path: str) -> list[str]:
        _check_node_path(path)
        return self._ask(lambda i: panels.edit_history_request(i, path), panels.expect_string_list)

    def zombies(self) -> list[panels.Zombie]:
        return self._ask(panels.zombies_request, panels.expect_zombies)

    def status_command(self, paths: str | Sequence[str]) -> None:
        path_list = actions.check_paths(paths)
        self._ask(lambda i: panels.status_request(i, path_list), commands.expect_ok)

    def zombie_action(self, action: str, paths: str | Sequence[str]) -> None:
        path_list = actions.check_paths(paths)
        self._ask(lambda i: panels.zombie_action_request(i, action, path_list), commands.expect_ok)

    def alter_variable(self, how: str, paths: str | Sequence[str], name: str, value: str = "") -> None:
        path_list = _variable_paths(paths)
        self._ask(lambda i: panels.alter_variable_request(i, how, path_list, name, value), commands.expect_ok)

    def edit_script(self, path: str) -> str:
        return self._ask(lambda i: panels.edit_script_request(i, path, panels.EDIT), commands.expect_string)

    def preprocess(self, path: str, text: str | None = None) -> str:
        kind = panels.PREPROCESS if text is None else panels.PREPROCESS_USER_FILE
        return self._ask(lambda i: panels.edit_script_request(i, path, kind, text), commands.expect_string)

    def submit(self, path: str, text: str, *, alias: bool = False, run: bool = True) -> None:
        kind = panels.SUBMIT_USER_FILE
        self._ask(lambda i: panels.edit_script_request(i, path, kind, text, alias=alias, run=run), commands.expect_ok)
