"""`python -m centre up|down ID|cleanup`: drive a simulated Centre by hand (Linux, root)."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from centre.centre import Centre, cleanup_stale, destroy


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m centre", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start a Centre that stays up until `down ID`")
    up.add_argument("--validity", default="+12h", help="user certificate validity, as ssh-keygen -V (+12h)")
    down = sub.add_parser("down", help="remove one Centre")
    down.add_argument("run_id")
    clean = sub.add_parser("cleanup", help="remove Centres left by interrupted runs")
    clean.add_argument("--all", action="store_true", help="also remove running ones")
    args = parser.parse_args()
    if args.cmd == "up":
        centre = Centre(detached=True, certificate_validity=args.validity).up()
        profile = Path(tempfile.gettempdir()) / f"ecfr-{centre.run_id}" / "profile.toml"
        centre.write_profile(profile)
        print(
            f"Centre {centre.run_id} is up.\n  ssh -F {centre.ssh_config} -J {centre.jump} {centre.workstation}\n"
            f"  ecflow-remote --profile {profile} up\n  python -m centre down {centre.run_id}"
        )
    elif args.cmd == "down":
        destroy(args.run_id)
    else:
        removed = cleanup_stale(everything=args.all)
        print("removed: " + (", ".join(removed) or "nothing"), file=sys.stderr)


if __name__ == "__main__":
    main()
