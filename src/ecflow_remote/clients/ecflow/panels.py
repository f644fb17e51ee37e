"""The requests behind ecflow_ui's panels (server log, node log, zombies, variables, edit/submit), as ecflow_client
5.9.2 sends them (captured from the real client), and decoding of their replies."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from ecflow_remote.errors import ProtocolError

from .commands import Identity, Reply, request, user_base

# LogCmd::LogApi GET; ecflow_client's default line count for `--log=get`.
_LOG_GET = 0
DEFAULT_LOG_LINES = 100
# CtsCmd::Api GET_ZOMBIES and SUITES, PathsCmd::Api STATUS and EDIT_HISTORY, ClientHandleCmd::Api REGISTER and DROP.
_CTS_GET_ZOMBIES = 9
_CTS_SUITES = 11
_CH_REGISTER, _CH_DROP = 0, 1
_PATHS_STATUS = 4
_PATHS_EDIT_HISTORY = 6

ZombieAction = Literal["fob", "fail", "adopt", "remove", "kill"]
ZOMBIE_ACTIONS: tuple[ZombieAction, ...] = get_args(ZombieAction)
# ecf::User::Action (ACore/src/User.hpp): FOB, FAIL, ADOPT, REMOVE, BLOCK, KILL.
_USER_ACTIONS = ("fob", "fail", "adopt", "remove", "block", "kill")
# ecf::Child::ZombieType and ecf::Child::CmdType (ACore/src/Child.hpp), as Child::to_string names them.
_ZOMBIE_TYPES = ("user", "ecf", "ecf_pid", "ecf_passwd", "ecf_pid_passwd", "path", "not_set")
_CHILD_CMDS = ("init", "event", "meter", "label", "wait", "queue", "abort", "complete")

VariableChange = Literal["change", "add", "delete"]
VARIABLE_CHANGES: tuple[VariableChange, ...] = get_args(VariableChange)
# AlterCmd's three "which attribute" members: the one in use names the variable, the others hold their ..._ND
# (not defined) value; flag_type_ 19 is Flag::NOT_SET.
_ALTER_NONE = {"add_attr_type_": 6, "del_attr_type_": 16, "change_attr_type_": 13}
_ALTER_VARIABLE = {"change": ("change_attr_type_", 0), "add": ("add_attr_type_", 5), "delete": ("del_attr_type_", 0)}
_FLAG_NOT_SET = 19

# EditScriptCmd::EditType.
EDIT, PREPROCESS, SUBMIT, PREPROCESS_USER_FILE, SUBMIT_USER_FILE = range(5)
# The block `--edit_script edit` puts in front of the script: the variables the script uses, editable.
COMMENT_START = "%comment - ecf user variables"


def _user(identity: Identity) -> dict[str, Any]:
    return {"cereal_class_version": 0, "value0": user_base(identity)}


def log_request(identity: Identity, lines: int = DEFAULT_LOG_LINES) -> dict[str, Any]:
    """`ecflow_client --log=get N`: the last N lines of the server's log (SStringCmd)."""
    if lines <= 0:
        raise ValueError(f"the number of log lines must be positive, not {lines}")
    return request("LogCmd", {**_user(identity), "api_": _LOG_GET, "get_last_n_lines_": lines, "new_path_": ""})


def edit_history_request(identity: Identity, path: str) -> dict[str, Any]:
    """`ecflow_client --edit_history=PATH`: the user commands that changed the node (SStringVecCmd)."""
    return request("PathsCmd", {**_user(identity), "api_": _PATHS_EDIT_HISTORY, "paths_": [path], "force_": False})


def status_request(identity: Identity, paths: Sequence[str]) -> dict[str, Any]:
    """`ecflow_client --status=PATH`: the server runs each task's ECF_STATUS_CMD (its output: `--file PATH stat`)."""
    return request("PathsCmd", {**_user(identity), "api_": _PATHS_STATUS, "paths_": list(paths), "force_": False})


def suites_request(identity: Identity) -> dict[str, Any]:
    """`ecflow_client --suites`: every suite's name (SSuitesCmd), for the suite filter."""
    return request("CtsCmd", {**_user(identity), "api_": _CTS_SUITES})


def ch_register_request(identity: Identity, suites: Sequence[str], auto_add: bool = False) -> dict[str, Any]:
    """`ecflow_client --ch_register=false S1 S2`: a client handle whose syncs carry only these suites
    (ecflow_ui's suite filter); the reply is SClientHandleCmd with its number."""
    return _client_handle(identity, _CH_REGISTER, 0, list(suites), auto_add)


def ch_drop_request(identity: Identity, handle: int) -> dict[str, Any]:
    """`ecflow_client --ch_drop=N`: the handle is forgotten by the server."""
    return _client_handle(identity, _CH_DROP, handle, [], False)


def _client_handle(identity: Identity, api: int, handle: int, suites: list[str], auto_add: bool) -> dict[str, Any]:
    return request(
        "ClientHandleCmd",
        {
            **_user(identity),
            "api_": api,
            "client_handle_": handle,
            "drop_user_": "",
            "suites_": suites,
            "auto_add_new_suites_": auto_add,
        },
    )


def expect_suites(reply: Reply, where: str = "") -> list[str]:
    """SSuitesCmd `suites_`."""
    if reply.kind != "SSuitesCmd":
        raise ProtocolError(f"ecFlow server {where} answered {reply.kind}, expected SSuitesCmd")
    return [str(s) for s in reply.data.get("suites_", [])]


def expect_handle(reply: Reply, where: str = "") -> int:
    """SClientHandleCmd `handle_`: the new client handle."""
    handle = reply.data.get("handle_")
    if reply.kind != "SClientHandleCmd" or not isinstance(handle, int) or handle <= 0:
        raise ProtocolError(f"ecFlow server {where} answered {reply.kind} {reply.data}, expected a client handle")
    return handle


def zombies_request(identity: Identity) -> dict[str, Any]:
    """`ecflow_client --zombie_get` (ZombieGetCmd)."""
    return request("CtsCmd", {**_user(identity), "api_": _CTS_GET_ZOMBIES})


def zombie_action_request(identity: Identity, action: str, paths: Sequence[str]) -> dict[str, Any]:
    """`ecflow_client --zombie_ACTION=PATH…`: as on the command line, by path only (the server acts on the first
    zombie of each path), as ecflow_ui's zombie panel does."""
    if action not in ZOMBIE_ACTIONS:
        raise ValueError(f"unknown zombie action {action!r}; choose one of {', '.join(ZOMBIE_ACTIONS)}")
    return request(
        "ZombieCmd",
        {
            **_user(identity),
            "user_action_": _USER_ACTIONS.index(action),
            "process_id_": "",
            "password_": "",
            "paths_": list(paths),
        },
    )


def alter_variable_request(
    identity: Identity, how: str, paths: Sequence[str], name: str, value: str = ""
) -> dict[str, Any]:
    """`ecflow_client --alter change|add|delete variable NAME [VALUE] PATH…`; the path `/` is the server's own
    (user) variables."""
    if how not in _ALTER_VARIABLE:
        raise ValueError(f"a variable is changed, added or deleted, not {how!r}")
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"a variable name is one word, not {name!r}")
    member, code = _ALTER_VARIABLE[how]
    kinds = {**_ALTER_NONE, member: code}
    return request(
        "AlterCmd",
        {
            **_user(identity),
            "paths_": list(paths),
            "name_": name,
            "value_": "" if how == "delete" else value,
            **kinds,
            "flag_type_": _FLAG_NOT_SET,
            "flag_": False,
        },
    )


def script_lines(text: str) -> list[str]:
    """A script's lines as ecflow_client reads a file (File::splitFileIntoLines: getline, so no last empty line)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def used_variables(lines: Sequence[str]) -> list[tuple[str, str]]:
    """NAME = VALUE lines of the first %comment block, sorted and first one kept, as ecflow_client 5.9.2 extracts
    them for a submit (EcfFile::extract_used_variables: a std::map, so by name)."""
    found: dict[str, str] = {}
    comment = False
    for line in lines:
        if line.startswith("%"):
            word = line[1:]
            if word.startswith("comment"):
                comment = True
                continue
            if word.startswith(("nopp", "manual", "end")):
                break
        if comment and "=" in line:
            name, value = line.split("=", 1)
            found.setdefault(name.strip(), value.strip())
    return sorted(found.items(), key=lambda kv: kv[0].encode())


def edit_script_request(
    identity: Identity,
    path: str,
    edit_type: int,
    text: str | None = None,
    *,
    alias: bool = False,
    run: bool = True,
) -> dict[str, Any]:
    """`ecflow_client --edit_script=PATH edit|pre_process|pre_process_file FILE|submit_file FILE [create_alias]
    [no_run]`; `text` is the (edited) script for the two _file kinds."""
    lines = script_lines(text) if text is not None else []
    if edit_type in (PREPROCESS_USER_FILE, SUBMIT_USER_FILE) and text is None:
        raise ValueError("pre-processing or submitting a file needs its text")
    submit = edit_type == SUBMIT_USER_FILE
    variables = used_variables(lines) if submit else []
    return request(
        "EditScriptCmd",
        {
            **_user(identity),
            "edit_type_": edit_type,
            "path_to_node_": path,
            "user_file_contents_": lines,
            "user_variables_": [{"first": k, "second": v} for k, v in variables],
            "alias_": alias if submit else False,
            "run_": run if submit else False,
        },
    )


def expect_string_list(reply: Reply, where: str = "") -> list[str]:
    """SStringVecCmd `vec_`: the edit history's lines."""
    if reply.kind != "SStringVecCmd":
        raise ProtocolError(f"ecFlow server {where} answered {reply.kind}, expected SStringVecCmd")
    return [str(x) for x in reply.data.get("vec_", [])]


@dataclass(frozen=True)
class Zombie:
    """One zombie as `ecflow_client --zombie_get` lists it (the job password is left out: a secret)."""

    path: str
    type: str
    user_action: str  # as ecflow_client shows it: "manual-fob" once a user chose, else "auto-block" or the like
    try_no: int
    duration: int  # seconds since it appeared
    calls: int
    child_cmd: str  # the child command that made it a zombie
    pid: str
    host: str
    user_cmd: str


def _name(names: Sequence[str], value: Any) -> str:
    return names[value] if isinstance(value, int) and 0 <= value < len(names) else str(value)


def _auto(zombie: dict[str, Any]) -> str:
    # Zombie::user_action_str: the node's zombie attribute decides for the child commands it names (all when it
    # names none); otherwise the server blocks the job.
    attr = zombie.get("attr_") or {}
    cmds = attr.get("child_cmds_") or []
    action = attr.get("action_", 4) if not cmds or zombie.get("last_child_cmd_") in cmds else 4
    return "auto-" + _name(_USER_ACTIONS, action)


def expect_zombies(reply: Reply, where: str = "") -> list[Zombie]:
    """ZombieGetCmd `zombies_` as Zombie records."""
    if reply.kind != "ZombieGetCmd":
        raise ProtocolError(f"ecFlow server {where} answered {reply.kind}, expected ZombieGetCmd")
    zombies = []
    for z in reply.data.get("zombies_", []):
        if not isinstance(z, dict):
            raise ProtocolError(f"ecFlow server {where} sent a zombie that is not an object: {str(z)[:100]}")
        action = "manual-" + _name(_USER_ACTIONS, z.get("user_action_")) if z.get("user_action_set_") else _auto(z)
        zombies.append(
            Zombie(
                path=str(z.get("path_to_task_", "")),
                type=_name(_ZOMBIE_TYPES, z.get("zombie_type_")),
                user_action=action,
                try_no=int(z.get("try_no_", 0)),
                duration=int(z.get("duration_", 0)),
                calls=int(z.get("calls_", 0)),
                child_cmd=_name(_CHILD_CMDS, z.get("last_child_cmd_")),
                pid=str(z.get("process_or_remote_id_", "")),
                host=str(z.get("host_", "")),
                user_cmd=str(z.get("user_cmd_", "")),
            )
        )
    return zombies
