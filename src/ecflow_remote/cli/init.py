"""`init`: a new profile from flags or a few questions."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ecflow_remote.cli.app import METHOD_CHOICE, Context, fail, pass_context

if TYPE_CHECKING:
    from ecflow_remote.profile.new import Answers

# --------------------------------------------------------------------------------------------------- init


def _interactive() -> bool:
    """Questions only for a person at a terminal: scripts and pipes get the flags' values or an error."""
    return sys.stdin.isatty()


@click.command()
@click.option("--jump", help="Jump host(s) as ssh -J takes them: [user@]host[:port], comma-separated.")
@click.option("--host", "host", help="Your workstation at the Centre, the tunnel's far end: [user@]host.")
@click.option(
    "--server",
    "servers",
    multiple=True,
    metavar="[NAME=]HOST:PORT",
    help="An ecFlow server (repeatable); without NAME= it is named after its host.",
)
@click.option("--logserver", "logservers", multiple=True, metavar="HOST[:PORT]", help="A log server (repeatable).")
@click.option("--method", type=METHOD_CHOICE, help="local, socks or hosts (default: hosts on Linux, else local).")
@click.option("--ssh-config", help="The ssh_config file to use (ssh -F).")
@click.option("--ecflow-user", help="Your Centre user name, for servers that admit only listed users.")
@click.option(
    "--import-ui-servers",
    "import_ui",
    is_flag=False,
    flag_value="-",
    default=None,
    metavar="[FILE]",
    help="Take the servers from ecflow_ui's servers.txt (default: your own).",
)
@pass_context
def init(
    c: Context,
    jump: str | None,
    host: str | None,
    servers: tuple[str, ...],
    logservers: tuple[str, ...],
    method: str | None,
    ssh_config: str | None,
    ecflow_user: str | None,
    import_ui: str | None,
) -> None:
    """Write a new profile from flags (or, on a terminal, a few questions); never overwrites one."""
    import os

    from ecflow_remote.profile import new as newprofile
    from ecflow_remote.profile.load import default_profile_path
    from ecflow_remote.profile.render import write_new_profile

    path = c.profile_path or default_profile_path()
    if os.path.lexists(path):
        fail(f"{path}: a profile already exists here; it was left as it is. Edit it, or use --profile PATH.")
    ask = _interactive()
    given = [newprofile.parse_server(s) for s in servers]
    logs = [newprofile.parse_logserver(s) for s in logservers]
    imported = newprofile.Imported()
    if import_ui is not None:
        imported = newprofile.import_ui_servers(None if import_ui == "-" else Path(import_ui))
        for why in imported.skipped:
            click.echo(f"Not imported: {why}", err=True)
    answers = newprofile.Answers(
        host=host or "",
        jump=jump,
        ssh_config=newprofile.as_written_path(ssh_config),
        ecflow_user=ecflow_user,
        servers=tuple(newprofile.NewServer(*s) for s in newprofile.combine_servers(given, imported.servers)),
        logservers=tuple(logs),
        method=method or newprofile.default_method(),
    )
    # The flags first: a wrong one ends here, before any question is answered in vain.
    if problem := answers.problem():
        fail(problem)
    if ask:
        answers = _questions(
            answers,
            jump=jump is None,
            ssh_config=ssh_config is None,
            ecflow_user=ecflow_user is None,
            logservers=not logs,
            method=method is None,
        )
    elif host is None:
        fail("--host is required (your workstation at the Centre, e.g. --host user1@machine1)")
    write_new_profile(path, answers.text())
    click.echo(f"Wrote {path}.")
    where = f" --profile {path}" if c.profile_path is not None else ""
    click.echo(f"Next: ecflow-remote{where} up   (then: ecflow-remote{where} ui)")


# ---------------------------------------------------------------------------------------------- questions


def _ask(
    text: str, apply: Callable[[str], Answers | None], default: str | None = "", show_default: bool = False
) -> Answers | None:
    """Ask until the answer makes a profile that loads: a wrong answer gets its reason in one line and the question
    again, so no earlier answer is lost. `apply` turns the answer into the new answers (None: nothing to add;
    InitError: refused, with why)."""
    from ecflow_remote.errors import InitError

    def check(reply: str) -> Answers | None:
        try:
            answers = apply(reply.strip())
        except InitError as e:
            raise click.BadParameter(str(e)) from None
        if answers is not None and (problem := answers.problem()):
            raise click.BadParameter(problem)
        return answers

    result: Answers | None = click.prompt(text, default=default, show_default=show_default, value_proc=check)
    return result


def _questions(
    a: Answers, *, jump: bool, ssh_config: bool, ecflow_user: bool, logservers: bool, method: bool
) -> Answers:
    """Ask for what the flags left out, each answer checked as it comes; Enter takes the default or skips."""
    from dataclasses import replace

    from ecflow_remote.errors import InitError
    from ecflow_remote.profile import new as newprofile
    from ecflow_remote.unix import login_name

    if not a.host:
        question = "Your workstation at the Centre, the tunnel's far end ([user@]host)"
        a = _ask(question, lambda r: replace(a, host=r), None) or a
    if jump:
        a = _ask("Jump host(s), as ssh -J takes them (empty: none)", lambda r: replace(a, jump=r or None)) or a
    if ssh_config:
        question = "ssh config file, for ssh -F (empty: ssh's own: ~/.ssh/config, then the system's)"
        a = _ask(question, lambda r: replace(a, ssh_config=newprofile.as_written_path(r))) or a
    if ecflow_user:
        me = login_name()
        what = "Your Centre user name, for servers that admit only listed users (ecflow_user)"
        suggested = newprofile.suggested_ecflow_user(a.host, me)

        def user(reply: str) -> Answers:
            return replace(a, ecflow_user=None if reply in ("", "-") else reply)

        if suggested:
            a = _ask(f"{what}; -: none, send {me}", user, suggested, True) or a
        else:
            a = _ask(f"{what} (empty: none, send {me})", user) or a

    def server(reply: str) -> Answers | None:
        if not reply:
            if not a.servers:
                raise InitError("give at least one ecFlow server, e.g. machine1=machine1:4141 (or machine1:4141)")
            return None
        name, host, port = newprofile.parse_server(reply, flag="")
        if name in a.server_names():
            raise InitError(f"there is already a server named {name!r}: give this one another NAME=")
        return a.with_server(newprofile.NewServer(name, host, port))

    if not a.servers:
        a = _ask("ecFlow server NAME=HOST:PORT (or HOST:PORT)", server) or a
        while more := _ask("Another ecFlow server (empty: done)", server):
            a = more
    a = _custom_users(a)
    if logservers:

        def logserver(reply: str) -> Answers | None:
            return replace(a, logservers=(*a.logservers, newprofile.parse_logserver(reply, flag=""))) if reply else None

        question = "Log server HOST[:PORT] (empty: done; those your suites name are found by themselves)"
        while more := _ask(question, logserver):
            a = more
    if method:
        chosen = click.prompt("Method (the README's 'Which method')", type=METHOD_CHOICE, default=a.method)
        a = replace(a, method=chosen)
    return a


def _custom_users(a: Answers) -> Answers:
    """Servers that want a custom user and its password (ECF_USER + ECF_CUSTOM_PASSWD): which, who, and where the
    password comes from: never the password itself."""

    def which(reply: str) -> str:
        reply = reply.strip()
        if reply and reply not in a.server_names():
            raise click.BadParameter(f"no server is named {reply!r}: give one of {', '.join(a.server_names())}")
        return reply

    another = ""
    while name := click.prompt(
        f"A{another} server that wants a custom user and password: its name (empty: none)",
        default="",
        show_default=False,
        value_proc=which,
    ):
        a = _custom_user(a, name)
        another = "nother"
    return a


def _custom_user(a: Answers, name: str) -> Answers:
    """The custom user of server `name`, and where its password comes from."""
    from dataclasses import replace

    from ecflow_remote.profile import new as newprofile

    def server() -> newprofile.NewServer:
        return next(s for s in a.servers if s.name == name)

    def user(reply: str) -> Answers:
        return a.with_server(replace(server(), custom_user=reply))

    def source(reply: str) -> Answers:
        return a.with_server(replace(server(), password=newprofile.as_written_password(reply) or None))

    a = _ask(f"Custom user on {name}", user, None) or a
    question = (
        f"Where {name}'s password comes from: env:VAR, file:~/path (chmod 600) or keyring:SERVICE, never the "
        "password itself (empty: none)"
    )
    a = _ask(question, source) or a
    password = server().password
    if password and (note := newprofile.password_file_note(password)):
        click.echo(f"Note: {note}.")
    return a
