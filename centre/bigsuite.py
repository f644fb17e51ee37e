"""A large suite (10 000 tasks by default) for a Centre server: what a user's `sync_local` of a busy server fetches."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from centre.centre import Centre


def big_suite_def(name: str, tasks: int = 10_000, per_family: int = 100) -> str:
    """Families of `per_family` chained tasks, each with a variable, a label and a trigger, as operational suites."""
    lines = [f"suite {name}", "  edit ECF_TRIES '1'", "  defstatus suspended"]
    for f in range(-(-tasks // per_family)):
        lines += [f"  family f{f:03d}", f"    edit FAMILY_ID '{f:03d}'"]
        for t in range(min(per_family, tasks - f * per_family)):
            lines += [f"    task t{t:03d}", f"      edit STEP '{t * 6:04d}'", '      label info ""']
            if t:
                lines.append(f"      trigger t{t - 1:03d} == complete")
        lines.append("  endfamily")
    lines.append("endsuite")
    return "\n".join(lines) + "\n"


def load_big_suite(centre: Centre, host: str, name: str = "big", tasks: int = 10_000) -> Path:
    """Load (not begin: nothing runs) a `tasks`-task suite on `host`'s ecFlow server; the definition file."""
    spec = centre.server(host)
    path = centre.ecf_home(spec) / f"{name}.def"
    path.write_text(big_suite_def(name, tasks))
    path.chmod(0o644)
    centre.ecflow_client(host, spec.port, [f"--load={path}"])
    return path
