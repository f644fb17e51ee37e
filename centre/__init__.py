"""The simulated Centre: network namespaces, a CA-only SSH gateway, ecFlow servers and log servers (Linux, root)."""

from centre.centre import Centre, CentreError, EcflowServerSpec, LogServerSpec, cleanup_stale

__all__ = ["Centre", "CentreError", "EcflowServerSpec", "LogServerSpec", "cleanup_stale"]
