"""ecflow-remote: reach the Centre's ecFlow servers and log servers from home through the SSH gateway."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public API, gathered here but imported on first use, so that `ecflow-remote --help` stays fast.
_EXPORTS: dict[str, str] = {
    "EcflowRemoteError": "ecflow_remote.errors",
    "Profile": "ecflow_remote.profile",
    "ProfileError": "ecflow_remote.profile",
    "load_profile": "ecflow_remote.profile",
    "Tunnel": "ecflow_remote.tunnel",
    "TunnelError": "ecflow_remote.tunnel",
    "open_tunnel": "ecflow_remote.tunnel",
    "Endpoint": "ecflow_remote.methods",
    "Plan": "ecflow_remote.methods",
    "EcflowClient": "ecflow_remote.ecflow",
    "AsyncEcflowClient": "ecflow_remote.ecflow",
    "ServerError": "ecflow_remote.ecflow",
    "LogServerClient": "ecflow_remote.logserver",
    "AsyncLogServerClient": "ecflow_remote.logserver",
    "TruncatedOutput": "ecflow_remote.logserver",
}

if TYPE_CHECKING:
    from ecflow_remote.ecflow import AsyncEcflowClient, EcflowClient, ServerError
    from ecflow_remote.errors import EcflowRemoteError
    from ecflow_remote.logserver import AsyncLogServerClient, LogServerClient, TruncatedOutput
    from ecflow_remote.methods import Endpoint, Plan
    from ecflow_remote.profile import Profile, ProfileError, load_profile
    from ecflow_remote.tunnel import Tunnel, TunnelError, open_tunnel

__all__ = [
    "AsyncEcflowClient",
    "AsyncLogServerClient",
    "EcflowClient",
    "EcflowRemoteError",
    "Endpoint",
    "LogServerClient",
    "Plan",
    "Profile",
    "ProfileError",
    "ServerError",
    "TruncatedOutput",
    "Tunnel",
    "TunnelError",
    "__version__",
    "load_profile",
    "open_tunnel",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ecflow_remote' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
