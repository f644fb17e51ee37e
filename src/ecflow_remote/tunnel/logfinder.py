"""The log-server finder in a process of its own, beside the supervisor.

Parsing a large definition (10 000 tasks: a few hundred ms of pure Python) holds the GIL; in the supervisor it
would stall every connection its listeners relay meanwhile (measured: ecFlow pings right after `up` went from one
round trip to three). So the supervisor starts `python -m ecflow_remote.tunnel.logfinder PROFILE METHOD` once, asks
it for a round with a line on its stdin (with ssh's forward sockets its clients may connect to straight:
tunnel/clients.py), and reads each round's answer as one JSON line on its stdout: typed data
(found.Wanted) across the process boundary. The child dies with the supervisor and ends at EOF.
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
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from ecflow_remote.clients.ecflow.logservers import find_logservers
from ecflow_remote.endpoints import Wanted
from ecflow_remote.plan import Plan
from ecflow_remote.profile.model import Profile
from ecflow_remote.tunnel.clients import Clients
from ecflow_remote.tunnel.events import Events
from ecflow_remote.tunnel.found import Finder, logservers_wanted
from ecflow_remote.unix import die_with_parent

MAX_LINE = 4 * 1024 * 1024  # an answer bigger than this is not one


def wanted_to_json(wanted: list[Wanted]) -> str:
    return json.dumps([[w.kind, w.name, w.host, w.port, list(w.used_by)] for w in wanted])


def wanted_from_json(line: str) -> list[Wanted]:
    """One answer line back into Wanted services; ValueError (or KeyError, TypeError) when it is not one."""
    rows = json.loads(line)
    if not isinstance(rows, list):
        raise ValueError("an answer is a list")
    out = []
    for kind, name, host, port, used_by in rows:
        if kind not in ("logserver", "server") or not isinstance(port, int):
            raise ValueError(f"not a wanted service: {kind!r}")
        out.append(Wanted(kind, str(name), str(host), port, tuple(str(u) for u in used_by)))
    return out


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
        with contextlib.suppress(ValueError, KeyError, TypeError):
            self._answer = wanted_from_json(lines[-1].decode())

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
        )
        assert self._proc.stdout is not None
        os.set_blocking(self._proc.stdout.fileno(), False)
        self.events.watch(self._proc.stdout.fileno(), self._read)


def serve(profile: Profile, requests: IO[str], answers: IO[str]) -> None:
    """The child: a round per request line, its answer as one JSON line; ends at EOF."""
    from ecflow_remote.tunnel.handle import Tunnel

    finder = Finder()
    servers = [s.name for s in profile.servers]
    clients: Clients | None = None
    token, answer, seen = 0, "[]", None
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
                        answers.write("[]\n")
                        answers.flush()
                        continue
                token = plan
            # On the runner's loop itself: Runner.run would install and remove a SIGINT handler each round.
            round_ = finder.round(dataclasses.replace(clients, direct=direct), servers)
            trees = runner.get_loop().run_until_complete(round_)
            # The same trees unchanged (an idle Centre): the same answer, without walking them again.
            now = [(name, id(t), t.state_change_no, t.modify_change_no) for name, t in trees.items()]
            if now != seen:
                answer, seen = wanted_to_json(logservers_wanted(find_logservers(trees))), now
            answers.write(answer + "\n")
            answers.flush()


def main(argv: list[str] | None = None) -> None:
    from ecflow_remote.profile.load import load_profile

    args = sys.argv[1:] if argv is None else argv
    profile = load_profile(Path(args[0])).with_method(args[1])
    with contextlib.suppress(KeyboardInterrupt, BrokenPipeError):
        serve(profile, sys.stdin, sys.stdout)


if __name__ == "__main__":
    main()
