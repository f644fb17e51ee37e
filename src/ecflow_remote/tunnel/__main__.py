"""`python -m ecflow_remote.tunnel PROFILE METHOD`: the background supervisor process that `up` starts."""

import signal
import sys
from pathlib import Path

from ecflow_remote.profile.load import load_profile
from ecflow_remote.tunnel.headstart import head_start
from ecflow_remote.tunnel.rundir import RunDir


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    profile = load_profile(Path(argv[0])).with_method(argv[1])
    rundir = RunDir.for_profile(profile.path)
    head = head_start(profile, rundir)
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
    return supervisor.run(head)


sys.exit(main(sys.argv[1:]))
