"""ecflow-remote: reach the Centre's ecFlow servers and log servers from home through the SSH gateway."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public API, gathered here but imported on first use, so that `ecflow-remote --help` stays fast.
_EXPORTS: dict[str, str] = {
    "EcflowRemoteError": "ecflow_remote.errors",
}

if TYPE_CHECKING:
    from ecflow_remote.errors import EcflowRemoteError

__all__ = ["EcflowRemoteError", "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ecflow_remote' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
