"""centre/namespaces.py's pure parts: a namespace link's inode, and whether a process's mounts name a Centre's."""

from __future__ import annotations

import os
import sys

import pytest
from centre import namespaces

MOUNTINFO = """\
22 1 0:21 / / rw,relatime - ext4 /dev/vda1 rw
101 22 0:4 net:[4026532285] /run/netns/ecr1a2b3-jump rw shared:400 - nsfs nsfs rw
102 22 0:4 net:[4026532290] /run/netns/ecr1a2b3-machine1 rw shared:400 - nsfs nsfs rw
103 22 0:4 net:[4026532301] /run/netns/other-ns rw shared:400 - nsfs nsfs rw
"""


@pytest.mark.parametrize(
    ("link", "kind", "inode"),
    [
        ("net:[4026532285]", "net", 4026532285),
        ("mnt:[4026531841]", "mnt", 4026531841),
        ("mnt:[4026531841]", "net", None),
        ("net:[]", "net", None),
        ("net:[12x]", "net", None),
        ("/run/netns/x", "net", None),
    ],
)
def test_parse_link(link: str, kind: str, inode: int | None) -> None:
    assert namespaces.parse_link(link, kind) == inode


@pytest.mark.parametrize(("run_id", "seen"), [("ecr1a2b3", True), ("ecr1a2b", False), ("ecr9", False)])
def test_sees_names_only_this_centres_mounts(run_id: str, seen: bool) -> None:
    assert namespaces.sees_names(MOUNTINFO, run_id) is seen
    assert not namespaces.sees_names("", run_id)


@pytest.mark.skipif(sys.platform != "linux", reason="/proc is Linux's")
def test_own_namespaces_are_read_and_the_caller_is_never_a_leftover() -> None:
    assert namespaces.ns_inode("self", "net") == os.stat("/proc/self/ns/net").st_ino
    assert namespaces.ns_inode(2**22 + 12345, "net") is None  # no such process
    # This process's own network namespace recorded as a Centre's: everything else in it may go, never the caller.
    own = {"x": {"inode": namespaces.ns_inode("self", "net"), "cookie": None}}
    assert os.getpid() not in namespaces.leftovers("ecrnone", own, None)
