"""ecflow-remote: reach the Centre's ecFlow servers and log servers from home through the SSH gateway."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public API, gathered here but imported on first use, so that `ecflow-remote --help` stays fast.
_EXPORTS: dict[str, str] = {
    "EcflowRemoteError": "ecflow_remote.errors",
    "Profile": "ecflow_remote.profile.model",
    "ProfileError": "ecflow_remote.errors",
    "load_profile": "ecflow_remote.profile.load",
    "Tunnel": "ecflow_remote.tunnel.handle",
    "TunnelError": "ecflow_remote.errors",
    "open_tunnel": "ecflow_remote.tunnel.handle",
    "Endpoint": "ecflow_remote.plan",
    "Plan": "ecflow_remote.plan",
    "EcflowClient": "ecflow_remote.clients.ecflow",
    "AsyncEcflowClient": "ecflow_remote.clients.ecflow",
    "ServerError": "ecflow_remote.clients.ecflow",
    "LogServerClient": "ecflow_remote.clients.logserver",
    "AsyncLogServerClient": "ecflow_remote.clients.logserver",
    "TruncatedOutput": "ecflow_remote.clients.logserver",
}

if TYPE_CHECKING:
    from ecflow_remote.clients.ecflow import AsyncEcflowClient, EcflowClient
    from ecflow_remote.clients.logserver import AsyncLogServerClient, LogServerClient
    from ecflow_remote.errors import EcflowRemoteError, ProfileError, ServerError, TruncatedOutput, TunnelError
    from ecflow_remote.plan import Endpoint, Plan
    from ecflow_remote.profile.load import load_profile
    from ecflow_remote.profile.model import Profile
    from ecflow_remote.tunnel.handle import Tunnel, open_tunnel

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
