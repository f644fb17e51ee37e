"""`ecflow-remote output`: a task's job output, from its log server through the tunnel or from its ecFlow server."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, BinaryIO

from ecflow_remote.errors import EcflowRemoteError, OutputError
from ecflow_remote.plan import Endpoint

if TYPE_CHECKING:
    from ecflow_remote.clients.ecflow import AsyncEcflowClient
    from ecflow_remote.clients.logserver import AsyncLogServerClient, Progress
    from ecflow_remote.tunnel.clients import Clients
    from ecflow_remote.tunnel.handle import Tunnel

FOLLOW_EVERY = 1.0
# A task in one of these states has ended: its output will not grow until it runs again.
FINISHED_STATES = ("complete", "aborted")
# Outputs up to this size stay in memory until verified; bigger ones are spooled to a temporary file.
SPOOL_IN_MEMORY = 16 * 1024 * 1024


@dataclass
class Source:
    """Where a task's output is read from: a log server through the tunnel, or the ecFlow server itself."""

    server: str
    node: str
    jobout: str
    logserver: tuple[str, int] | None  # ECF_LOGHOST/ECF_LOGPORT of the node
    endpoint: Endpoint | None  # that log server in the tunnel (named in the profile, or found by the supervisor)
    ecflow: AsyncEcflowClient
    clients: Clients | None = None  # the tunnel's client factory (reaches that log server now)
    state: str | None = None  # the task's state when it was located

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES

    @property
    def via_logserver(self) -> bool:
        return self.endpoint is not None

    def describe(self) -> str:
        if self.endpoint is not None:
            return f"log server {self.endpoint.host}:{self.endpoint.port}"
        return f"ecFlow server {self.server}"

    def logserver_client(self, read_timeout: float = 30.0) -> AsyncLogServerClient:
        if self.endpoint is None or self.clients is None:
            raise OutputError(f"{self.node}: no log server of the tunnel serves it")
        return self.clients.logserver(self.endpoint.host, self.endpoint.port, read_timeout=read_timeout)


async def locate(tunnel: Tunnel, server: str, node_path: str) -> Source:
    """Find the task, its job output path and the log server that serves it (if the tunnel reaches it)."""
    client = tunnel.ecflow_client(server)
    if not node_path.startswith("/"):
        raise OutputError(f"node paths are absolute, like /suite/family/task, not {node_path!r}")
    # The whole tree, not just the node: ECF_OUT, ECF_LOGHOST and ECF_LOGPORT are usually set on a suite.
    defs = await client.get_defs()
    node = defs.find(node_path)
    if not node.is_submittable:
        raise OutputError(f"{node.path} is a {node.kind}: only tasks have job output")
    jobout = node.jobout_path()
    logserver = node.logserver()
    source = Source(server, node.path, jobout, logserver, None, client, state=node.state)
    if logserver is not None:
        source.clients = tunnel.clients_reaching(*logserver)
        source.endpoint = source.clients.logserver_endpoint(*logserver)
        if source.endpoint is None:
            # A suite changed since the supervisor last looked: it adds that log server now (the agent), or cannot.
            from ecflow_remote.endpoints import Wanted

            host, port = logserver
            want = Wanted("logserver", f"{host}:{port}", host, port, (f"{server} /{node.path.split('/')[1]}",))
            await asyncio.to_thread(tunnel.carry, [want], 5.0)
            source.clients = tunnel.clients_reaching(*logserver)
            source.endpoint = source.clients.logserver_endpoint(*logserver)
    return source


def last_lines(data: bytes, n: int) -> bytes:
    """The last n lines, a final line without its newline counting as one (as tail -n)."""
    if n <= 0:
        return b""
    end = len(data) - 1 if data.endswith(b"\n") else len(data)
    pos = end
    for _ in range(n):
        pos = data.rfind(b"\n", 0, pos)
        if pos < 0:
            return data
    return data[pos + 1 :]


async def read_via_server(source: Source, tail: int | None = None) -> bytes:
    """The output as `ecflow_client --file NODE jobout` gets it; a file the server cut down is an error."""
    # The server cuts one line short of max_lines when the file ends with a newline: ask one more, cut here.
    max_lines = tail + 1 if tail is not None else None
    text, cut = await source.ecflow.file(source.node, "jobout", max_lines)
    data = text.encode("utf-8", errors="surrogateescape")
    if tail is not None:
        return last_lines(data, tail)
    if cut:
        raise OutputError(
            f"ecFlow server {source.server} cut {source.node}'s output ({source.jobout}) down to its last lines; "
            "nothing was printed. Add its log server to the profile to read it whole."
        )
    return data


async def read_via_logserver(source: Source, out: BinaryIO, progress: Progress | None = None) -> None:
    """Stream the whole file into `out`; raises TruncatedOutput (out then holds a partial copy)."""
    await source.logserver_client().copy_to(source.jobout, out, progress=progress)


async def read_output(
    source: Source,
    out: IO[bytes],
    *,
    tail: int | None = None,
    progress: Progress | None = None,
    note: Callable[[str], None] | None = None,
) -> None:
    """Write the whole verified output (or its last `tail` lines) to `out`; nothing at all if it is incomplete."""
    from ecflow_remote.errors import ConnectError, LogFileUnavailable

    if source.via_logserver:
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 (closed below)
        try:
            try:
                await read_via_logserver(source, spool, progress)  # type: ignore[arg-type]
            except (ConnectError, LogFileUnavailable) as e:
                # The server can still read the file itself: say why the log server was skipped, then carry on.
                if note:
                    note(f"{source.describe()}: {e}; reading from the ecFlow server {source.server} instead")
            else:
                spool.seek(0)
                if tail is not None:
                    out.write(last_lines(spool.read(), tail))
                else:
                    shutil.copyfileobj(spool, out, 1024 * 1024)
                return
        finally:
            spool.close()
    out.write(await read_via_server(source, tail))


async def follow(
    source: Source,
    out: IO[bytes],
    *,
    tail: int | None = None,
    every: float = FOLLOW_EVERY,
    should_stop: Callable[[], bool] = lambda: False,
    note: Callable[[str], None] | None = None,
) -> None:
    """Print the output, then what is added to it, every `every` seconds until should_stop() (or Ctrl-C), or until
    the task has finished (complete or aborted: nothing more comes; `note` says so). A task that has finished
    already gets its output printed once."""
    if source.finished:
        await read_output(source, out, tail=tail, note=note)
        out.flush()
        if note:
            note(f"{source.node} has finished ({source.state}): that is all of its output, nothing to follow")
        return
    if source.via_logserver:
        await _follow_logserver(source, out, tail, every, should_stop, note)
    else:
        await _follow_server(source, out, tail, every, should_stop, note)


async def _ended(source: Source) -> bool:
    """Whether the task has finished since it was located (asked before a read: that read then has its end)."""
    try:
        source.state = (await source.ecflow.get_node(source.node)).state
    except EcflowRemoteError:
        return False  # the ecFlow server not answering for a moment: the output (a log server's) goes on
    return source.finished


def _ended_note(source: Source, note: Callable[[str], None] | None) -> None:
    if note:
        note(f"{source.node} has finished ({source.state}): its output ends here")


async def _follow_logserver(
    source: Source,
    out: IO[bytes],
    tail: int | None,
    every: float,
    should_stop: Callable[[], bool],
    note: Callable[[str], None] | None,
) -> None:
    from ecflow_remote.clients.logprotocol import checksum_of

    client = source.logserver_client()
    first = await client.read(source.jobout)
    data = first.data
    out.write(last_lines(data, tail) if tail is not None else data)
    out.flush()
    pos, mtime, checksum = len(data), first.mtime or 0, first.checksum or checksum_of(data)
    while not should_stop():
        await asyncio.sleep(every)
        ended = await _ended(source)
        delta = await client.delta(pos, mtime, checksum if len(checksum) == 40 else "x", source.jobout)
        if not delta.unchanged:
            if delta.append:
                pos += len(delta.data)
            else:
                # A new try, or the file was rewritten: start again from its beginning.
                if note:
                    note(f"{source.jobout} was replaced; showing it from the start")
                pos = len(delta.data)
            mtime = delta.mtime or mtime
            checksum = delta.checksum or checksum
            out.write(delta.data)
            out.flush()
        if ended:
            _ended_note(source, note)
            return


async def _follow_server(
    source: Source,
    out: IO[bytes],
    tail: int | None,
    every: float,
    should_stop: Callable[[], bool],
    note: Callable[[str], None] | None,
) -> None:
    data = await read_via_server(source, tail)
    out.write(data)
    out.flush()
    previous = await read_via_server(source) if tail is not None else data
    while not should_stop():
        await asyncio.sleep(every)
        ended = await _ended(source)
        current = await read_via_server(source)
        if current != previous:
            if current.startswith(previous):
                out.write(current[len(previous) :])
            else:
                if note:
                    note(f"{source.jobout} was replaced; showing it from the start")
                out.write(current)
            out.flush()
            previous = current
        if ended:
            _ended_note(source, note)
            return
