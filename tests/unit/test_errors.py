"""The error tree: every class under one kind a caller can catch, every old name still there, and the command
line's exit code decided by the kind."""

from __future__ import annotations

import inspect

import pytest

from ecflow_remote import errors
from ecflow_remote.cli import problems

KINDS = {
    errors.ConfigError: {"ProfileError", "InitError", "UiConfigError", "UnknownServer"},
    errors.AccessError: {"PasswordError", "PasswordEncodingError", "CertificateError"},
    errors.NetworkError: {
        "ConnectError",
        "StreamTimeout",
        "AgentError",
        "AgentUnavailable",
        "AgentDied",
        "AgentOpenError",
    },
    errors.ProtocolError: {
        "NoReply",
        "ProtocolMismatch",
        "ServerCertificateError",
        "ReplyTooLarge",
        "LogReplyTooLarge",
    },
    errors.ServiceError: {
        "ServerError",
        "NodeActionError",
        "UnknownPath",
        "ActionRefused",
        "ServerDown",
        "LogServerError",
        "LogFileUnavailable",
        "TruncatedOutput",
        "LogReplyTooLarge",
        "OutputError",
    },
    errors.DataError: {"DefsParseError", "SubstitutionError", "UnknownNode", "ExpressionError"},
    errors.MachineError: {"PortInUse", "NoAddressLeft", "SystemHostsError", "SshMissing", "LaunchError", "UiError"},
    errors.TunnelError: {"RunDirError", "AlreadyRunning"},
}


def _ours() -> dict[str, type[errors.EcflowRemoteError]]:
    return {
        name: cls
        for name, cls in inspect.getmembers(errors, inspect.isclass)
        if issubclass(cls, errors.EcflowRemoteError) and cls.__module__ == errors.__name__
    }


def test_each_error_sits_under_its_kind_and_only_there() -> None:
    ours = _ours()
    for kind, names in KINDS.items():
        assert kind.__bases__ == (errors.EcflowRemoteError,), kind
        for name in names:
            assert issubclass(ours[name], kind), (name, kind)
    for name, cls in ours.items():
        if cls is errors.EcflowRemoteError or cls in KINDS:
            continue
        under = {kind for kind in KINDS if issubclass(cls, kind)}
        expected = {kind for kind, names in KINDS.items() if name in names}
        assert under == expected and under, f"{name} is under {under or 'no kind'}"


def test_no_error_directly_under_the_base() -> None:
    direct = {name for name, cls in _ours().items() if cls.__bases__ == (errors.EcflowRemoteError,)}
    assert direct == {kind.__name__ for kind in KINDS}


def test_every_old_name_is_still_importable() -> None:
    # The names callers used before the tree (ProtocolError and TunnelError are kinds now) keep working.
    old = set().union(*KINDS.values()) | {"ProtocolError", "TunnelError"}
    ours = _ours()
    assert old <= set(ours) and "EcflowRemoteError" in ours
    assert issubclass(errors.UnknownNode, KeyError)  # as before: a missing node is a KeyError too


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.RunDirError("the run directory is another account's"), problems.EXIT_ENVIRONMENT),
        (errors.AlreadyRunning("up already"), problems.EXIT_FAILURE),
        (errors.ProfileError("bad", key="gateway.host"), problems.EXIT_FAILURE),
        (errors.ConnectError("refused", host="h", port=1), problems.EXIT_FAILURE),
        (errors.PortInUse("taken"), problems.EXIT_FAILURE),
        (errors.EcflowRemoteError("any"), problems.EXIT_FAILURE),
    ],
)
def test_the_cli_decides_the_exit_code_by_kind(error: errors.EcflowRemoteError, code: int) -> None:
    assert problems.exit_code(error) == code
    assert not hasattr(error, "exit_code")  # the exception carries no exit code of its own


def test_the_command_exits_with_the_kinds_code() -> None:
    import click
    from click.testing import CliRunner

    from ecflow_remote.cli.app import Group

    @click.group(cls=Group)
    def root() -> None:
        pass

    @root.command()
    @click.argument("kind")
    def boom(kind: str) -> None:
        raise errors.RunDirError("unsafe run directory") if kind == "rundir" else errors.PortInUse("port 1 taken")

    rundir = CliRunner().invoke(root, ["boom", "rundir"])
    assert rundir.exit_code == problems.EXIT_ENVIRONMENT and "unsafe run directory" in rundir.output
    port = CliRunner().invoke(root, ["boom", "port"])
    assert port.exit_code == problems.EXIT_FAILURE and "port 1 taken" in port.output
