"""The command line's shared parts: the root group, the profile context, one-line errors."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from ecflow_remote import __version__
from ecflow_remote.cli import problems

if TYPE_CHECKING:
    from ecflow_remote.profile.model import Profile
    from ecflow_remote.tunnel.handle import Tunnel

METHOD_CHOICE = click.Choice(["local", "socks", "hosts"])
# Timeouts and intervals: 0 or less would give up before anything was tried (or spin), so click refuses them.
POSITIVE_SECONDS = click.FloatRange(min=0, min_open=True)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"ecflow-remote: {message}", err=True)
    sys.exit(code)


class Context:
    def __init__(self, profile_path: Path | None) -> None:
        self.profile_path = profile_path

    def profile(self, method: str | None = None) -> Profile:
        from ecflow_remote.profile.load import load_profile

        profile = load_profile(self.profile_path)
        return profile.with_method(method) if method else profile

    def tunnel(self, method: str | None = None) -> Tunnel:
        from ecflow_remote.tunnel.handle import Tunnel

        return Tunnel(self.profile(method))


class Group(click.Group):
    """Every deliberate error becomes one line on stderr and exit 1, never a traceback; the machine's set-up (an
    OSError: a path, a permission) one line naming the path and what to do, exit 2; a bug one line, exit 70, with
    the traceback only under ECFLOW_REMOTE_DEBUG=1. The library's warnings to the user (a password it could not
    read) one line each."""

    def invoke(self, ctx: click.Context) -> Any:
        import warnings

        from ecflow_remote.errors import CertificateFetched, EcflowRemoteError, PasswordWarning

        shown = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, (PasswordWarning, CertificateFetched)):
                click.echo(f"ecflow-remote: warning: {message}", err=True)
            else:
                shown(message, category, *args, **kwargs)

        with warnings.catch_warnings():
            warnings.showwarning = show
            warnings.simplefilter("always", PasswordWarning)
            warnings.simplefilter("always", CertificateFetched)
            try:
                return super().invoke(ctx)
            except EcflowRemoteError as e:
                fail(str(e), e.exit_code)
            except (click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit, EOFError):
                raise  # click's own: it prints them (usage errors exit 2, Ctrl-C says "Aborted!")
            except BrokenPipeError:
                _quiet_exit()  # `ecflow-remote status | head -1`: the reader left, nothing to say
            except OSError as e:
                if problems.debugging():
                    raise
                fail(problems.os_error_line(e), problems.EXIT_ENVIRONMENT)
            except Exception as e:
                if problems.debugging():
                    raise
                fail(problems.internal_error_line(e), problems.EXIT_INTERNAL)


def _quiet_exit() -> NoReturn:
    # Python would complain again when it flushes stdout at exit: point it at /dev/null first.
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    sys.exit(1)


PROFILE_HELP = "Profile file (default: the platform's config dir, or $ECFLOW_REMOTE_PROFILE)."
# The profile loader says what is wrong with a path, in one line.
PROFILE_TYPE = click.Path(path_type=Path, readable=False)


class RootGroup(Group):
    """The root group: each command added also takes --profile after its name (`init --profile x`), as the
    root's own option (`--profile x init`) does; users type it on either side."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        _take_profile_option(cmd)
        super().add_command(cmd, name)


def _take_profile_option(cmd: click.Command) -> None:
    if not any(isinstance(p, click.Option) and "--profile" in p.opts for p in cmd.params):
        cmd.params.append(
            click.Option(
                ["--profile"],
                type=PROFILE_TYPE,
                expose_value=False,
                callback=_profile_after_command,
                help=PROFILE_HELP,
            )
        )
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            _take_profile_option(sub)


def _profile_after_command(ctx: click.Context, param: click.Parameter, value: Path | None) -> None:
    """--profile given after the command's name: it is the profile, unless the root's differs (ambiguous)."""
    if value is None:
        return
    root = ctx.find_root()
    before = root.params.get("profile_path")
    # $ECFLOW_REMOTE_PROFILE is a default: a --profile on the command line wins over it, on either side.
    typed = root.get_parameter_source("profile_path") == click.core.ParameterSource.COMMANDLINE
    if typed and before is not None and Path(before) != value:
        raise click.BadParameter(f"given twice, as {before} and {value}: give one profile", ctx, param)
    obj = ctx.find_object(Context)
    if obj is None:
        ctx.obj = Context(value)  # the command invoked on its own (tests), without the root
    else:
        obj.profile_path = value


@click.group(cls=RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ecflow-remote")
@click.option("--profile", "profile_path", type=PROFILE_TYPE, envvar="ECFLOW_REMOTE_PROFILE", help=PROFILE_HELP)
@click.pass_context
def cli(ctx: click.Context, profile_path: Path | None) -> None:
    """Reach the Centre's ecFlow servers and log servers from home, through the SSH gateway."""
    ctx.obj = Context(profile_path)


pass_context = click.make_pass_decorator(Context)
