"""`ecflow-remote web`: the command that starts the page server (its imports stay lazy: `--help` must be quick)."""

from __future__ import annotations

from typing import Any

import click


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="Port on 127.0.0.1 (default: a free one).")
@click.option("--no-open", is_flag=True, help="Do not open a browser; just print the address.")
@click.option(
    "--read-only", is_flag=True, help="Look only: node actions, variable edits, submits and zombie actions are refused."
)
@click.pass_obj
def web(c: Any, port: int, no_open: bool, read_only: bool) -> None:
    """Every profile server's suites in your browser, live, with job output and node actions (Ctrl-C stops)."""
    import asyncio
    import os
    import signal
    import threading
    import webbrowser

    from ecflow_remote.safefile import write_private
    from ecflow_remote.tunnel.rundir import runtime_root
    from ecflow_remote.web.app import serve
    from ecflow_remote.web.security import redirect_page

    tunnel = c.tunnel()
    if not tunnel.is_running():
        click.echo("ecflow-remote: no tunnel is running; the page says so until `ecflow-remote up`.", err=True)
    openers = [] if no_open else [runtime_root() / f"web-{os.getpid()}-open.html"]

    def ready(url: str) -> None:
        mode = " (read-only)" if read_only else ""
        click.echo(f"Serving on 127.0.0.1 for your account only{mode}. Open:\n    {url}\nCtrl-C stops.", err=False)
        if not no_open:
            # The browser gets a 0600 page that leads on to the URL: the token never sits in its command line,
            # which every local account can read. webbrowser may wait for the browser: never on the event loop.
            write_private(openers[0], redirect_page(url))
            threading.Thread(target=webbrowser.open, args=(openers[0].as_uri(),), daemon=True).start()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(tunnel, port, ready, stop, read_only=read_only)

    try:
        asyncio.run(main())
    finally:
        for opener in openers:
            opener.unlink(missing_ok=True)
    click.echo("Stopped.")


@click.command("open")
@click.option("--print", "print_only", is_flag=True, help="Print the proxy and PAC to set; start no browser.")
@click.argument("url")
@click.pass_obj
def open_page(c: Any, print_only: bool, url: str) -> None:
    """Open a Centre web page (JupyterHub, ...) in a private browser profile that uses the tunnel's web proxy."""
    from ecflow_remote import browse

    access = browse.web_access(c.tunnel())
    note = browse.outside_note(url, access)
    if note:
        click.echo(f"ecflow-remote: note: {note}", err=True)
    sign_in = f"proxy sign-in: user ecflow-remote, password in {access.auth_file}" if access.auth_file else None
    if print_only:
        click.echo(f"proxy: {access.proxy}   (the Centre's names only: {', '.join(access.domains)})")
        click.echo(f"PAC:   {access.pac}   (the Centre's names to the proxy, everything else direct)")
        if sign_in:
            click.echo(sign_in)
        click.echo(f"then open {url}")
        return
    browser = browse.find_browser()
    if browser is None:
        from ecflow_remote.errors import LaunchError

        raise LaunchError(
            f"no Chromium, Chrome or Firefox found and $BROWSER is not set: set your browser's proxy PAC to "
            f"{access.pac} and open {url}."
        )
    browse.launch(browse.browser_argv(browser, access, url))
    if browser.kind == "other":
        click.echo(f"Opened {url} with $BROWSER: set its proxy PAC to {access.pac} for the Centre's pages.")
    else:
        click.echo(f"Opened {url} in a private {browser.kind} profile using {access.pac}.")
    if sign_in:
        copied = browse.copy_password(access)
        click.echo(f"The browser asks once for the {sign_in}{' (on your clipboard now)' if copied else ''}.")
