"""`python -m ecflow_remote.tunnel PROFILE METHOD [OWNER_FD]`: the background supervisor process that `up` starts."""

import contextlib
import os
import signal
import sys
import threading
from pathlib import Path

from ecflow_remote.profile.load import load_profile
from ecflow_remote.tunnel.prestart import prestart
from ecflow_remote.tunnel.rundir import RunDir


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    take_passwords()
    profile = load_profile(Path(argv[0])).with_method(argv[1])
    rundir = RunDir.for_profile(profile.path)
    head = prestart(profile, rundir)
    if head is None:
        return 3  # another supervisor holds the lock (`up` says so)
    try:
        # Loaded only now, while the jump host's login is under way: the supervisor's imports take about as long.
        from ecflow_remote.tunnel.supervisor import Supervisor
    except BaseException:
        head.release()
        raise
    supervisor = Supervisor(profile, rundir)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    if len(argv) > 2:
        stop_with_owner(int(argv[2]))
    return supervisor.run(head)


def take_passwords() -> None:
    """The profile's password variables, from `up`'s pipe on stdin (not from the environment: see passwords.py);
    then stdin is /dev/null, as before, for whatever reads it."""
    if os.isatty(0):
        return  # started by hand from a terminal: no `up` writes there
    from ecflow_remote.access.passwords import take_over

    with contextlib.suppress(OSError, ValueError):
        take_over(sys.stdin.buffer)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)


def stop_with_owner(fd: int) -> None:
    """A foreground `up` (or `open_tunnel`) owns this tunnel and holds the only write end of this pipe: when it
    ends, however (a hang-up, TERM, kill -9), the pipe reads its end and the supervisor stops as at `down`. A thread
    blocked in read() costs nothing while the owner lives; the stop goes through SIGTERM, `down`'s own way in, sent
    to the main thread so that a wait there ends at once."""
    os.set_inheritable(fd, False)  # not into ssh and the finder: only the owner's end matters, but keep it ours

    def wait() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 64):
                pass
        main_thread = threading.main_thread().ident
        if main_thread is not None:
            signal.pthread_kill(main_thread, signal.SIGTERM)

    threading.Thread(target=wait, name="owner", daemon=True).start()


sys.exit(main(sys.argv[1:]))
