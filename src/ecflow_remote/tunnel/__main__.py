"""`python -m ecflow_remote.tunnel PROFILE METHOD`: the background supervisor process that `up` starts."""

from ecflow_remote.tunnel.supervisor import main

main()
