"""The log-server finder: which log servers the profile servers' definitions name (ECF_LOGHOST, ECF_LOGPORT), in a
process of its own beside the supervisor.

Parsing a large definition (10 000 tasks: a few hundred ms of pure Python) holds the GIL; in the supervisor it
would stall every connection its listeners relay meanwhile (measured: ecFlow pings right after `up` went from one
round trip to three). So the supervisor starts `python -m ecflow_remote.tunnel.logfinder PROFILE METHOD` once, asks
it for a round with a line on its stdin (with ssh's forward sockets its clients may connect to straight:
tunnel/clients.py), and reads each round's answer as one line on its stdout: the Wanted services in the one
document every process boundary uses (servicerequests.py). The child dies with the supervisor and ends at EOF.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import subprocess
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Final

from ecflow_remote.access.passwords import hand_over, take_over
from ecflow_remote.clients.ecflow.logservers import LogServerUse, find_logservers
from ecflow_remote.endpoints import Wanted
from ecflow_remote.plan import Plan
from ecflow_remote.profile.model import Profile
from ecflow_remote.transport.ssh import ssh_environ
from ecflow_remote.tunnel import servicerequests
from ecflow_remote.tunnel.clients import Clients
from ecflow_remote.tunnel.events import Events
from ecflow_remote.unix import die_with_parent

if TYPE_CHECKING:
    from ecflow_remote.clients.ecflow import Defs
    from ecflow_remote.clients.ecflow.watch import Watch

MAX_LINE: Final = 4 * 1024 * 1024  # an answer bigger than this is not one
FIND_TIMEOUT: Final = 30.0


def logservers_wanted(uses: Sequence[LogServerUse]) -> list[Wanted]:
    """find_logservers' answer as wanted endpoints, each used by "server /suite" pairs. A host no forward could
    take (an ECF_LOGHOST of spaces, say) is left out: the answer's reader would refuse the whole answer for it."""
    wanted = [
        Wanted("logserver", f"{u.host}:{u.port}", u.host, u.port, tuple(f"{srv} /{suite}" for srv, suite in u.suites))
        for u in uses
    ]
    return [w for w in wanted if w.valid()]


def answer_line(wanted: Sequence[Wanted]) -> str:
    return servicerequests.encode(wanted).decode()


def read_answer(line: bytes) -> list[Wanted]:
    """One answer line back into Wanted services; ValueError when it is not one."""
    return servicerequests.decode(line, max_bytes=MAX_LINE, max_servers=None)


class Finder:
    """The rounds in the child: the first fetches each whole definition, later rounds only what changed (ecflow_ui's
    news/sync: a NEWS request when nothing did). The last tree of a server that does not answer is kept: a found log
    server is not forgotten for a restart."""

    def __init__(self) -> None:
        self.watches: dict[str, Watch] = {}
        self.trees: dict[str, Defs] = {}

    async def round(self, clients: Clients, servers: Sequence[str]) -> dict[str, Defs]:
        await asyncio.gather(*(self._poll(clients, name) for name in servers))
        return {name: self.trees[name] for name in servers if name in self.trees}

    async def _poll(self, clients: Clients, name: str) -> None:
        watch = self.watches.get(name)
        try:
            async with asyncio.timeout(FIND_TIMEOUT):
                if watch is None:
                    client = clients.ecflow(name, read_timeout=FIND_TIMEOUT)
                    watch = await client.watch().__aenter__()
                    self.watches[name] = watch
                else:
                    await watch.poll()
        except Exception:  # a server down, refusing or in maintenance: its last tree stands, a new watch next time
            self.watches.pop(name, None)
            return
        self.trees[name] = watch.defs


def request_line(plan: Plan | None, direct: Mapping[tuple[str, int], Path]) -> str:
    """A round's request: a token that changes with the plan's endpoints (the child reads the state, passwords and
    all, only then: not every round) and ssh's forward sockets by Centre host and port."""
    token = hash(tuple(plan.endpoints)) if plan is not None else 0
    return json.dumps({"plan": token, "direct": [[host, port, str(path)] for (host, port), path in direct.items()]})


def read_request(line: str) -> tuple[int, dict[tuple[str, int], Path]]:
    """A round's request line back (a token of 0 and no sockets from an unreadable one: the plan read anew)."""
    with contextlib.suppress(ValueError, TypeError, KeyError, AttributeError):
        asked = json.loads(line)
        return int(asked["plan"]), {(str(h), int(p)): Path(path) for h, p, path in asked["direct"]}
    return 0, {}


class FinderProcess:
    """The supervisor's side: start() asks for a round (the child starts at the first), answer() takes the last
    finished round's answer, once. Its stdout is one of the supervisor's events: read as it comes, never polled."""

    def __init__(self, profile: Profile, events: Events) -> None:
        self.profile = profile
        self.events = events
        self._proc: subprocess.Popen[bytes] | None = None
        self._buf = b""
        self._pending = False
        self._answer: list[Wanted] | None = None

    def start(self, plan: Plan | None = None, direct: Mapping[tuple[str, int], Path] | None = None) -> None:
        """A round over `plan`'s endpoints, its clients connecting straight to `direct`'s sockets (Clients.direct)
        where they can."""
        if self._pending:
            return
        if self._proc is None or self._proc.poll() is not None:
            self.stop()
            self._spawn()
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(request_line(plan, direct or {}).encode() + b"\n")
            self._proc.stdin.flush()
        except OSError:
            self.stop()  # gone: a new one next time
            return
        self._pending = True

    def answer(self) -> list[Wanted] | None:
        answer, self._answer = self._answer, None
        return answer

    def _read(self) -> None:
        """Its stdout is readable: take what came (a whole line is an answer)."""
        assert self._proc is not None and self._proc.stdout is not None
        try:
            data = os.read(self._proc.stdout.fileno(), 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # ended (killed, or a bug): no answer this round; the next start() makes a new one
            self.stop()
            return
        self._buf += data
        if len(self._buf) > MAX_LINE:
            self._buf = b""
        *lines, self._buf = self._buf.split(b"\n")
        if not lines:
            return
        self._pending = False
        with contextlib.suppress(ValueError):
            self._answer = read_answer(lines[-1])

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        self._pending = False
        self._buf = b""
        if proc is None:
            return
        if proc.stdout is not None:
            self.events.forget(proc.stdout.fileno())
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(2)
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    def _spawn(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", __name__, str(self.profile.path), self.profile.gateway.method],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
            env=ssh_environ(self.profile),  # the password variables: the first line of its requests instead
        )
        assert self._proc.stdout is not None and self._proc.stdin is not None
        with contextlib.suppress(OSError):
            hand_over(self.profile, self._proc.stdin)
        os.set_blocking(self._proc.stdout.fileno(), False)
        self.events.watch(self._proc.stdout.fileno(), self._read)


def serve(profile: Profile, requests: IO[str], answers: IO[str]) -> None:
    """The child: a round per request line, its answer as one JSON line; ends at EOF."""
    from ecflow_remote.tunnel.handle import Tunnel

    finder = Finder()
    servers = [s.name for s in profile.servers]
    clients: Clients | None = None
    token, answer, seen = 0, answer_line([]), None
    with asyncio.Runner() as runner:  # one event loop for every round, not one each
        for line in requests:
            plan, direct = read_request(line)
            if clients is None or plan != token or plan == 0:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # an unreadable password is the supervisor's to report
                    try:
                        clients = Tunnel(profile).clients()  # the plan grows as endpoints join
                    except Exception:  # (no tunnel state yet, or a broken one: an empty answer, the next retries)
                        clients = None
                        answers.write(answer_line([]) + "\n")
                        answers.flush()
                        continue
                token = plan
            # On the runner's loop itself: Runner.run would install and remove a SIGINT handler each round.
            round_ = finder.round(dataclasses.replace(clients, direct=direct), servers)
            trees = runner.get_loop().run_until_complete(round_)
            # The same trees unchanged (an idle Centre): the same answer, without walking them again.
            now = [(name, id(t), t.state_change_no, t.modify_change_no) for name, t in trees.items()]
            if now != seen:
                answer, seen = answer_line(logservers_wanted(find_logservers(trees))), now
            answers.write(answer + "\n")
            answers.flush()


def main(argv: list[str] | None = None) -> None:
    from ecflow_remote.profile.load import load_profile

    args = sys.argv[1:] if argv is None else argv
    profile = load_profile(Path(args[0])).with_method(args[1])
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        take_over(sys.stdin.buffer)  # the password variables, before the first request
        serve(profile, sys.stdin, sys.stdout)


if __name__ == "__main__":
    main()
