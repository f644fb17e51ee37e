"""ecFlow requests as cereal JSON (the exact key order cereal reads) and decoding of the server's replies."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import socket
from dataclasses import dataclass, field
from typing import Any

from ecflow_remote.errors import PasswordEncodingError, ProtocolError, ServerError

# cereal marks the first instance of a polymorphic type (and of a shared pointer) in an archive with the high bit;
# each request is its own archive, so the command is always the first and these ids are constant.
_FIRST_POLYMORPHIC_ID = 2147483649

# CtsCmd::Api and CtsNodeCmd::Api values of ecFlow 5.x.
CTS_PING = 8
CTS_NODE_GET = 3

STC_OK = 0

# CFileCmd::File_t of ecFlow 5.x, in the order `ecflow_client --file` names them.
FILE_KINDS = ("script", "job", "jobout", "manual", "kill", "stat")
# ecflow_client's default max_lines (File::MAX_LINES()); the server keeps the *last* max_lines lines.
DEFAULT_MAX_LINES = 10000
# The marker CFileCmd appends after cutting a file down to max_lines (Str::truncate_at_start).
UNLIMITED_LINES = 2**31 - 1
FILE_TRUNCATED_MARKER = "\n# >>>>>>>> File truncated down to "


@dataclass(frozen=True)
class Identity:
    """Who a request claims to be; `password` is already crypt()ed as ecFlow sends it, and never shown."""

    client_host: str
    user: str
    password: str = field(default="", repr=False)
    custom_user: bool = False


@functools.cache
def _libcrypt() -> Any:
    name = ctypes.util.find_library("crypt") or "libcrypt.so.1"
    lib = ctypes.CDLL(name)
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    lib.crypt.restype = ctypes.c_char_p
    return lib


def crypt_password(password: str, user: str) -> str:
    """The password as ecFlow 5.9.2 sends it: crypt(3) of the plain text with the user name as salt.

    Both sides read their password files with `crypt(password, user)` (ACore/src/PasswdFile.cpp) and compare the
    results, so the client must send the same traditional-DES string, not the plain text.
    """
    if not password:
        return ""
    try:
        lib = _libcrypt()
    except OSError as e:
        raise PasswordEncodingError(
            f"cannot load libcrypt to encode the ecFlow password ({e}); install libcrypt1"
        ) from e
    result = lib.crypt(password.encode("utf-8"), user.encode("utf-8"))
    # libxcrypt reports a bad salt (a user name with characters outside [./0-9A-Za-z]) as "*0"/"*1" or NULL.
    if result is None or result.startswith(b"*"):
        raise PasswordEncodingError(
            f"cannot encode a password for user {user!r}: crypt(3) rejects this user name as a salt, "
            "so the ecFlow server cannot match it either"
        )
    return str(result.decode("ascii"))


def default_client_host() -> str:
    """The host name ecflow_client puts in `cl_host_` (gethostname)."""
    return socket.gethostname()


def user_base(identity: Identity) -> dict[str, Any]:
    # UserCmd: base ClientToServerCmd as value0, then user_, then the two optional fields (key order matters).
    user: dict[str, Any] = {
        "cereal_class_version": 0,
        "value0": {"cereal_class_version": 0, "cl_host_": identity.client_host},
        "user_": identity.user,
    }
    if identity.password:
        user["pswd_"] = identity.password
    if identity.custom_user:
        user["cu_"] = True
    return user


def request(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "21ClientToServerRequest": {
            "cmd_": {
                "polymorphic_id": _FIRST_POLYMORPHIC_ID,
                "polymorphic_name": name,
                "ptr_wrapper": {"id": _FIRST_POLYMORPHIC_ID, "data": data},
            }
        }
    }


def ping_request(identity: Identity) -> dict[str, Any]:
    """`ecflow_client --ping`: CtsCmd with api_ PING."""
    return request("CtsCmd", {"cereal_class_version": 0, "value0": user_base(identity), "api_": CTS_PING})


def server_version_request(identity: Identity) -> dict[str, Any]:
    """`ecflow_client --server_version`: ServerVersionCmd, the user base only."""
    return request("ServerVersionCmd", {"cereal_class_version": 0, "value0": user_base(identity)})


def get_request(identity: Identity, path: str = "") -> dict[str, Any]:
    """`ecflow_client --get[=path]`: CtsNodeCmd GET; an empty path asks for the whole definition."""
    return request(
        "CtsNodeCmd",
        {"cereal_class_version": 0, "value0": user_base(identity), "api_": CTS_NODE_GET, "absNodePath_": path},
    )


def file_request(
    identity: Identity, path: str, kind: str = "jobout", max_lines: int = DEFAULT_MAX_LINES
) -> dict[str, Any]:
    """`ecflow_client --file=PATH KIND MAX_LINES`: CFileCmd; the reply is SStringCmd with the file's text."""
    if kind not in FILE_KINDS:
        raise ValueError(f"file kind must be one of {', '.join(FILE_KINDS)}, not {kind!r}")
    if max_lines <= 0:
        raise ValueError(f"max_lines must be positive, not {max_lines}")
    return request(
        "CFileCmd",
        {
            "cereal_class_version": 0,
            "value0": user_base(identity),
            "file_": FILE_KINDS.index(kind),
            "pathToNode_": path,
            "max_lines_": max_lines,
        },
    )


def split_file_truncation(text: str, max_lines: int) -> tuple[str, bool]:
    """(text without the server's truncation marker, whether the server cut the file down to max_lines)."""
    marker = f"{FILE_TRUNCATED_MARKER}{max_lines}. Truncated from the end of the file <<<<<<<<<\n"
    if text.endswith(marker):
        return text[: -len(marker)], True
    return text, False


@dataclass(frozen=True)
class Reply:
    """A decoded ServerToClientResponse: the command class name and its data members."""

    kind: str
    data: dict[str, Any]


def decode_reply(obj: dict[str, Any], where: str = "") -> Reply:
    """Unwrap `22ServerToClientResponse`; an ErrorCmd becomes ServerError carrying the server's text."""
    try:
        cmd = obj["22ServerToClientResponse"]["stc_cmd_"]
        kind = cmd["polymorphic_name"]
        data = cmd["ptr_wrapper"]["data"]
    except (KeyError, TypeError) as e:
        raise ProtocolError(f"unexpected reply from ecFlow server {where}: missing {e}") from e
    if not isinstance(kind, str) or not isinstance(data, dict):
        raise ProtocolError(f"unexpected reply from ecFlow server {where}: {str(obj)[:200]}")
    if kind == "ErrorCmd":
        raise ServerError(str(data.get("error_msg_", "")), where)
    return Reply(kind, data)


def _expect(reply: Reply, kind: str, where: str) -> None:
    if reply.kind != kind:
        raise ProtocolError(f"ecFlow server {where} answered {reply.kind}, expected {kind}")


def expect_ok(reply: Reply, where: str = "") -> None:
    """StcCmd OK: the answer to ping and other simple commands."""
    _expect(reply, "StcCmd", where)
    api = reply.data.get("api_")
    if api != STC_OK:
        raise ProtocolError(f"ecFlow server {where} answered StcCmd api_={api!r}, expected OK (0)")


def expect_string(reply: Reply, where: str = "") -> str:
    """SStringCmd `str_`: server version and other text answers."""
    _expect(reply, "SStringCmd", where)
    return str(reply.data.get("str_", ""))


def expect_defs_text(reply: Reply, where: str = "") -> str:
    """DefsCmd: the whole definition as NET-style text in the unnamed member `value1`."""
    _expect(reply, "DefsCmd", where)
    text = reply.data.get("value1", "")
    if not isinstance(text, str):
        raise ProtocolError(f"ecFlow server {where} sent a DefsCmd without definition text")
    return text


def expect_node_text(reply: Reply, where: str = "") -> str:
    """SNodeCmd `the_node_str_`: one node printed NET style, without its ancestors."""
    _expect(reply, "SNodeCmd", where)
    return str(reply.data.get("the_node_str_", ""))
