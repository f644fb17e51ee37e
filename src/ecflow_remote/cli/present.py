"""What the command line draws with rich: the status table, the suite tree, progress bars."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from rich import box
from rich.live import Live
from rich.segment import Segment
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from ecflow_remote.suites import SERVER_STATE_COLOURS, STATE_COLOURS

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult

    from ecflow_remote.clients.ecflow import Defs, Node


class Trimmed:
    """A renderable without the padding rich ends its lines with: no trailing spaces (a copied or piped table
    carries none) and no blank lines at the end."""

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = [_rstrip(line) for line in console.render_lines(self.renderable, options, pad=False)]
        while lines and not lines[-1]:
            lines.pop()
        for line in lines:
            yield from line
            yield Segment.line()


def _rstrip(line: list[Segment]) -> list[Segment]:
    segments = list(line)
    while segments and not segments[-1].control and not segments[-1].text.rstrip():
        segments.pop()
    if segments and not segments[-1].control:
        last = segments[-1]
        segments[-1] = Segment(last.text.rstrip(), last.style)
    return segments


class StatusLive(Live):
    """rich's Live, ending its last line also when the output is not a terminal (rich's does only on a terminal,
    and the next message was glued to the table's last line)."""

    def stop(self) -> None:
        rendered = self.is_started
        super().stop()
        if rendered and not self.console.is_terminal:
            self.console.line()


def status_table(data: dict[str, Any]) -> Trimmed:
    """The tunnel's state and each endpoint's, as `status` and a foreground `up` show them."""
    return Trimmed(_status_table(data))


def _status_table(data: dict[str, Any]) -> Table:
    t = data["tunnel"]
    colour = {"up": "green", "reconnecting": "yellow", "starting": "yellow"}.get(t["state"], "red")
    title = f"[{colour}]{t['state']}[/] · {t['method']} method · ssh pid {t['pid'] or '-'}"
    if t.get("transport_text"):
        title += f" · {t['transport_text']}"
        if t["transport"] == "plain" and t.get("transport_note"):
            title += f"\n{t['transport_note']}"
    if t.get("message") and t["state"] != "up":
        title += f"\n{t['message']}"
    cert = t.get("certificate")
    if cert:
        title += f"\ncertificate: {'[yellow]' if cert.get('warning') else ''}{cert['summary']}"
        if cert.get("warning"):
            title += "[/]"
    notes = [f"note: {t['found_note']}"] if t.get("found_note") else []
    if data.get("web_proxy") and t["state"] != "down":
        notes.append(f"web: proxy {data['web_proxy']}, PAC {data.get('web_pac')}")  # 80 columns: no more
    # A tunnel that is down: the title says so once, not every row again.
    rows = [] if t["state"] == "down" else data["servers"] + data["logservers"]
    problems = (
        _origins(rows)
        + notes
        + [f"warning: {w}" for w in t.get("warnings", [])]
        + [f"{r.get('name') or r['host']}: {r.get('error')}" for r in rows if not r["reachable"] and r.get("error")]
    )
    table = Table(
        title=title,
        title_justify="left",
        # Plain text: a profile's problem names its table in brackets ("in [gateway]"), which is no markup.
        caption=Text("\n".join(problems)) if problems else None,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for header in ("name", "at the Centre", "here", "answers", "ms", "version"):
        # Addresses never wrap or shorten: a cut port number is worse than a wide table.
        table.add_column(header, justify="right" if header == "ms" else "left", no_wrap=header != "name")
    for rows in (data["servers"], data["logservers"]):
        for r in rows:
            local = f"{r['local_host']}:{r['local_port']}" if r.get("local_host") else "-"
            if r.get("via"):
                local = f"SOCKS {local}"
            name = r.get("name") or r["host"]
            if r.get("origin", "profile") != "profile":
                name += "[dim]*[/]"  # found or from a system list: which, and who uses it, in the caption
            table.add_row(
                name,
                f"{r['host']}:{r['port']}",
                local,
                "[green]yes[/]" if r["reachable"] else "[red]no[/]",
                f"{r['latency_ms']:.1f}" if r.get("latency_ms") is not None else "-",
                r.get("version") or "-",
            )
        table.add_section()
    return table


def _origins(rows: list[dict[str, Any]]) -> list[str]:
    """Rows not from the profile (found in the servers' suites, or from a system server list), with who uses them:
    caption lines (a second line in the name column wraps badly at 80 columns)."""
    out = []
    for r in rows:
        if r.get("origin", "profile") != "profile":
            users = list(r.get("used_by") or [])
            more = f" +{len(users) - 3}" if len(users) > 3 else ""
            out.append(f"*{r.get('name') or r['host']}: {r['origin']}: {', '.join(users[:3]) or '-'}{more}")
    return out


def _rich_label(node: Node) -> Text:
    text = Text(f"{node.name} ", style="bold" if node.kind != "task" else "")
    colour = STATE_COLOURS["suspended"] if node.suspended else STATE_COLOURS.get(node.state, STATE_COLOURS["unknown"])
    text.append(f" {node.state} ", style=f"black on {colour}")
    if node.suspended:
        text.append(" suspended", style=STATE_COLOURS["suspended"])
    if node.kind != "task":
        text.append(f"  {node.kind}", style="dim")
    return text


def suite_tree(server: str, tree: Defs | Node) -> Tree:
    from ecflow_remote.clients.ecflow import Defs

    if isinstance(tree, Defs):
        header = Text(f"{server} ", style="bold")
        header.append(tree.server_state, style=SERVER_STATE_COLOURS.get(tree.server_state, ""))
        top = Tree(header)
        roots = tree.suites
    else:
        top = Tree(Text(server, style="bold"))
        roots = [tree]

    def add(parent: Tree, node: Node) -> None:
        branch = parent.add(_rich_label(node))
        for child in node.children:
            if child.kind != "alias":
                add(branch, child)

    for root in roots:
        add(top, root)
    return top


class ProgressBar:
    """A rich progress bar on stderr for transfers over 1 MiB, only when stderr is a terminal."""

    THRESHOLD = 1024 * 1024

    def __init__(self, what: str = "job output") -> None:
        self.what = what
        # Asked once: update() runs for every chunk of a transfer.
        self._shown = sys.stderr.isatty()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        return self

    def update(self, received: int, total: int | None) -> None:
        if self._progress is None:
            if not self._shown or (total or received) < self.THRESHOLD:
                return
            from rich.console import Console
            from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

            self._progress = Progress(
                *Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(), console=Console(stderr=True)
            )
            self._progress.start()
            self._task = self._progress.add_task(self.what, total=total)
        self._progress.update(self._task, completed=received)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
