"""The simulated Centre: network namespaces, a CA-only SSH gateway, ecFlow servers and log servers (Linux, root)."""

from ecflow_remote.centre.centre import Centre, CentreError, EcflowServerSpec, LogServerSpec, cleanup_stale

__all__ = ["Centre", "CentreError", "EcflowServerSpec", "LogServerSpec", "cleanup_stale"]
