"""The simulated Centre: network namespaces, a CA-only SSH gateway, ecFlow servers and log servers (Linux, root)."""

from centre.centre import Centre, CentreError, EcflowServerSpec, LogServerSpec, cleanup_stale
from centre.homelink import HomeLink

__all__ = ["Centre", "CentreError", "EcflowServerSpec", "HomeLink", "LogServerSpec", "cleanup_stale"]
