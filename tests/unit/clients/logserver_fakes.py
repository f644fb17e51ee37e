"""What the fake log servers of the log-server tests answer, shared by the async and the sync client tests."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from ecflow_remote.errors import LogServerError, TruncatedOutput

CONTENT = bytes(range(256)) * 40  # 10240 bytes, more than one checksum span
SHA1 = hashlib.sha1(CONTENT[:1024]).hexdigest()
PATH = "/out/lab/t1.1"
GETF_HEADER = f"0:1700000001:{SHA1}:".encode()


def list_line(size: int, path: str = PATH) -> bytes:
    return f"33188 0 0 {size} 1700000000 1700000001 1700000002 {path}\n".encode()


def honest(line: str) -> bytes:
    cmd, _, arg = line.partition(" ")
    if cmd == "version":
        return b"2"
    if cmd == "list":
        return list_line(len(CONTENT)) + list_line(5, "/out/lab/t1.job1") if arg == PATH else b""
    if arg != PATH:
        return b""  # the real server dies silently: no bytes at all
    if cmd == "getf":
        return GETF_HEADER + CONTENT
    if cmd == "get":
        return CONTENT
    return b""


def with_dir(line: str) -> bytes:
    """honest, and `list /out/lab/` answers with "." and ".." as when the directory exists and is served."""
    if line == "list /out/lab/":
        return list_line(4096, "/out/lab/.") + list_line(4096, "/out/lab/..")
    return honest(line)


def delta(line: str) -> bytes:
    """`delta POS …`: unchanged at 10240, appended after 100, the whole file again otherwise."""
    pos = line.split()[1]
    if pos == "10240":
        return b"1"
    if pos == "100":
        return b"1:1700000009:x:" + CONTENT[100:]
    return b"0:1700000009:x:" + CONTENT


# getf replies that must fail, and what the error says (the list is fine: the size comes from it).
BROKEN_GETF = [
    pytest.param(
        GETF_HEADER + CONTENT[:-100], TruncatedOutput, f"got {len(CONTENT) - 100} of {len(CONTENT)} bytes", id="short"
    ),
    pytest.param(b"0:1700000001:", TruncatedOutput, "inside the reply header", id="cut-header"),
    pytest.param(GETF_HEADER + b"\0" * len(CONTENT), TruncatedOutput, "checksum", id="checksum-mismatch"),
    pytest.param(
        b"HTTP/1.0 400 Bad Request\r\n" * 30, LogServerError, "not an ecFlow log server", id="not-a-log-server"
    ),
]


def answering_getf(reply: bytes) -> Callable[[str], bytes]:
    """honest, but `getf` answers with `reply`."""
    return lambda line: reply if line.startswith("getf") else honest(line)
