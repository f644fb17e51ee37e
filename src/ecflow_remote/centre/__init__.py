"""The simulated Centre: network namespaces, a CA-only SSH gateway, ecFlow servers and log servers (Linux, root)."""

from ecflow_remote.centre.centre import Centre, CentreError, EcflowServerSpec, LogServerSpec, cleanup_stale
from ecflow_remote.centre.homelink import HomeLink

__all__ = ["Centre", "CentreError", "EcflowServerSpec", "HomeLink", "LogServerSpec", "cleanup_stale"]
