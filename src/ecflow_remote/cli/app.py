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

        from ecflow_remote.errors import EcflowRemoteError, PasswordWarning

        shown = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            if issubclass(category, PasswordWarning):
                click.echo(f"ecflow-remote: warning: {message}", err=True)
            else:
                shown(message, category, *args, **kwargs)

        with warnings.catch_warnings():
            warnings.showwarning = show
            warnings.simplefilter("always", PasswordWarning)
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


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ecflow-remote")
@click.option(
    "--profile",
    "profile_path",
    type=click.Path(path_type=Path, readable=False),  # the profile loader says what is wrong, in one line
    envvar="ECFLOW_REMOTE_PROFILE",
    help="Profile file (default: the platform's config dir, or $ECFLOW_REMOTE_PROFILE).",
)
@click.pass_context
def cli(ctx: click.Context, profile_path: Path | None) -> None:
    """Reach the Centre's ecFlow servers and log servers from home, through the SSH gateway."""
    ctx.obj = Context(profile_path)


pass_context = click.make_pass_decorator(Context)
