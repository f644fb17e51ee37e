"""The one exception family of ecflow-remote: every error a user can meet says what happened and what to do."""

from __future__ import annotations


class EcflowRemoteError(Exception):
    """Base of every error ecflow-remote raises on purpose; the CLI prints it as one line and exits 1."""

    exit_code = 1
