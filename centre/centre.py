"""One simulated Centre, brought up and down by one call: what the tests and `make demo` run against."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from centre import chroots, firsthop, homelink, namespaces, network, pki, services
from centre.homelink import HomeLink
from centre.network import Host, Topology

STATE_DIR = Path("/run/ecflow-remote-centre")
RUN_PREFIX = "ecr"
CENTRE_USER = "user1"
CENTRE_UID = 4242  # the Centre account's uid inside the Centre's own /etc/passwd view
# The account white-listed ecFlow servers run as, and their administrator: ecFlow always admits the user it runs
# as, so with its own account only the white list decides whether user1 (or anyone else) gets in.
SERVER_USER = "ecfadmin"
SERVER_UID = 4243
WEB_DOMAIN = "centre.test"  # the Centre's web hosts' domain (.test: reserved, never a real name)


def _without(text: str, names: set[str], id_field: int | None) -> str:
    """An /etc/passwd-style file's lines less those whose name (or, with id_field, numeric id) is in `names`."""
    kept = []
    for line in text.splitlines(keepends=True):
        fields = line.split(":")
        if fields[0] in names or (id_field is not None and len(fields) > id_field and fields[id_field] in names):
            continue
        kept.append(line if line.endswith("\n") else line + "\n")
    return "".join(kept)


class CentreError(RuntimeError):
    """The simulated Centre could not be built or driven."""


@dataclass(frozen=True)
class EcflowServerSpec:
    host: str
    port: int
    suite: str
    logserver: str
    # ECF_LISTS users (read-write), at least one; the server's own account (SERVER_USER) is always admitted.
    # None = open to all.
    white_list: tuple[str, ...] | None = None
    # ECF_CUSTOM_PASSWD entries (user, password) for password access control; None = no password file
    passwords: tuple[tuple[str, str], ...] | None = None
    # ecFlow release: "5.9" (the machine's own), or "5.13"/"5.19" from a chroot (centre/chroots.py), run by the
    # servers' account with its certificates in its ~/.ecflowrc/ssl.
    version: str = "5.9"
    # "plain", "ssl" (ECF_SSL=1), "http" (--http, 5.15 and later) or "https" (--http on server_port, behind the
    # Centre's TLS front on port: ecflow_server itself serves HTTP in clear only)
    protocol: str = "plain"

    @property
    def server_port(self) -> int:
        """The port ecflow_server listens on (its ECF_PORT): an https server's own is behind its TLS front."""
        return self.port + HTTPS_BEHIND if self.protocol == "https" else self.port


# An https server's ecflow_server listens this far above the port its TLS front serves.
HTTPS_BEHIND = 10000


@dataclass(frozen=True)
class LogServerSpec:
    host: str
    port: int = 9316


DEFAULT_SERVERS = (
    EcflowServerSpec("machine1", 4141, "lab", "logserver1"),
    EcflowServerSpec("machine2", 3142, "ops", "logserver2"),
)
DEFAULT_LOGSERVERS = (LogServerSpec("logserver1"), LogServerSpec("logserver2"))


@dataclass
class Centre:
    """A simulated Centre. Use as a context manager, or call up() and down() (down is safe to call twice)."""

    servers: Sequence[EcflowServerSpec] = DEFAULT_SERVERS
    logservers: Sequence[LogServerSpec] = DEFAULT_LOGSERVERS
    certificate_validity: str = "+12h"
    jump_sessions: bool = True  # False: the jump host refuses sessions (forwarding only), as a Teleport proxy
    detached: bool = False  # True: outlives this process (the `python -m centre up` case)
    home_link: HomeLink | None = None  # round trip and rates between home and jump; None: a LAN
    first_hop: str = "direct"  # how ssh reaches the jump host: direct | proxycommand | relay (firsthop.py)
    # Hosts for web services only (centre/jupyter.py starts them), by short name, with their other names (a full
    # name in the Centre's domain, or one that looks like an outside name) in the Centre's hosts files.
    web_hosts: Mapping[str, Sequence[str]] = field(default_factory=dict)
    run_id: str = field(default_factory=lambda: RUN_PREFIX + secrets.token_hex(3)[:5])
    base: Path = field(init=False)
    topology: Topology | None = field(init=False, default=None)
    _procs: dict[str, subprocess.Popen[bytes]] = field(init=False, default_factory=dict)
    _loaded: set[str] = field(init=False, default_factory=set)
    _relay_port: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.base = Path(f"/tmp/ecfr-{self.run_id}")

    # ------------------------------------------------------------------------------------------ paths
    @property
    def home_dir(self) -> Path:
        """The laptop's private SSH material: key, certificate, known_hosts, ssh_config."""
        return self.base / "home"

    @property
    def ssh_config(self) -> Path:
        return self.home_dir / "ssh_config"

    @property
    def user_key(self) -> Path:
        return self.home_dir / "id_ed25519"

    @property
    def certificate(self) -> Path:
        return Path(f"{self.user_key}-cert.pub")

    @property
    def outputs_dir(self) -> Path:
        return self.base / "output"

    @property
    def jump(self) -> str:
        return f"{CENTRE_USER}@jump"

    @property
    def workstation(self) -> str:
        return f"{CENTRE_USER}@machine1"

    @property
    def centre_user(self) -> str:
        return CENTRE_USER

    def ecf_home(self, spec: EcflowServerSpec) -> Path:
        return self.base / "ecf" / f"{spec.host}-{spec.port}"

    def server_log(self, spec: EcflowServerSpec) -> Path:
        """The ecFlow server's own log: one line per request, naming the user."""
        return self.ecf_home(spec) / f"{spec.host}.{spec.server_port}.ecf.log"

    def logserver_log(self, spec: LogServerSpec) -> Path:
        return self.base / "logsvr" / f"{spec.host}.log"

    def jobout(self, spec: EcflowServerSpec, task: str = "f1/hello") -> Path:
        return self.outputs_dir / spec.suite / f"{task}.1"

    def server(self, host: str) -> EcflowServerSpec:
        return next(s for s in self.servers if s.host == host)

    def host(self, name: str) -> Host:
        assert self.topology is not None, "Centre is not up"
        return self.topology.host(name)

    # ------------------------------------------------------------------------------------------ up/down
    def __enter__(self) -> Centre:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> Centre:
        """Build everything; on any failure, undo what was made and raise."""
        if os.geteuid() != 0:
            raise CentreError("the simulated Centre needs root (network namespaces): run as root, e.g. sudo make test")
        for tool in ("ip", "sshd", "ecflow_server", "ecflow_client", "ssh-keygen", "unshare", "setpriv"):
            if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin"):
                raise CentreError(f"{tool} is missing: run scripts/install-deps as root")
        self._write_state()
        try:
            self._build()
        except BaseException:
            self.down()
            raise
        return self

    def _write_state(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        self.base.mkdir(parents=True)
        os.chmod(self.base, 0o755)
        state: dict[str, Any] = {
            "run_id": self.run_id,
            "base": str(self.base),
            "owner": None if self.detached else os.getpid(),
            "lan_net": None,
            # Where the namespaces' names are mounted, when only there (a private view, isolation.py), and each
            # namespace's identity: a cleanup from elsewhere finds their processes by these (namespaces.py).
            "mntns": namespaces.private_mount_namespace(),
            "netns": {},
        }
        self._state_file.write_text(json.dumps(state))

    @property
    def _state_file(self) -> Path:
        return STATE_DIR / f"{self.run_id}.json"

    def _record_namespaces(self, **changes: str) -> None:
        """The state file with every namespace of this Centre identified (as soon as they exist) and `changes`."""
        state = json.loads(self._state_file.read_text())
        state.update(changes, netns=namespaces.identify(network.list_netns(self.run_id)))
        self._state_file.write_text(json.dumps(state))

    def _build(self) -> None:
        hosts = list(dict.fromkeys([s.host for s in self.servers] + [lg.host for lg in self.logservers]))
        if "machine1" not in hosts:
            hosts.insert(0, "machine1")  # the workstation always exists
        hosts += [h for h in self.web_hosts if h not in hosts]
        etc = self._etc_views(["jump", *hosts])
        self.topology = topo = network.build(self.run_id, hosts, etc, self.web_hosts, self._record_namespaces)
        self._record_namespaces(lan_net=topo.lan_net)
        if self.home_link is not None:
            self.set_home_link(self.home_link)
        self._make_pki()
        home = services.ensure_dir(self.base / "centre-home" / CENTRE_USER)
        os.chown(home, CENTRE_UID, CENTRE_UID)
        admin_home = services.ensure_dir(self.base / "centre-home" / SERVER_USER)
        os.chown(admin_home, SERVER_UID, SERVER_UID)
        for name in ("jump", "machine1"):
            self.start_sshd(name)
        services.ensure_dir(self.outputs_dir)
        services.ensure_dir(self.base / "logsvr")
        for lg in self.logservers:
            self.start_logserver(lg.host)
        for spec in self.servers:
            self._load_server(spec)
        for spec in self.servers:
            for task, state in (("hello", "complete"), ("fails", "aborted")):
                services.wait_task_state(
                    lambda args, s=spec: self.ecflow_client(s.host, s.port, args),  # type: ignore[misc]
                    f"{spec.host}:{spec.port}",
                    f"/{spec.suite}/f1/{task}",
                    [state],
                )

    def _etc_views(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        """Each Centre host's /etc/passwd, group and shadow views, with the Centre account added."""
        # The machine's own accounts stay (sshd and the services need root, nobody, sshd...), but never one that
        # shares a name or id with the Centre's: lookups take the first match, so a machine with its own user1
        # (or a uid 4242) would hand its home and id to the Centre's logins.
        ours = {CENTRE_USER, SERVER_USER, str(CENTRE_UID), str(SERVER_UID)}
        passwd = _without(Path("/etc/passwd").read_text(), ours, id_field=2)
        group = _without(Path("/etc/group").read_text(), ours, id_field=2)
        shadow = _without(Path("/etc/shadow").read_text(), ours, id_field=None)
        home = self.base / "centre-home" / CENTRE_USER
        admin_home = self.base / "centre-home" / SERVER_USER
        views = {
            "passwd": passwd
            + f"{CENTRE_USER}:x:{CENTRE_UID}:{CENTRE_UID}:Centre user:{home}:/bin/bash\n"
            + f"{SERVER_USER}:x:{SERVER_UID}:{SERVER_UID}:ecFlow servers:{admin_home}:/bin/sh\n",
            "group": group + f"{CENTRE_USER}:x:{CENTRE_UID}:\n{SERVER_USER}:x:{SERVER_UID}:\n",
            # '*' not '!': a locked account is refused by sshd even with a valid certificate.
            "shadow": shadow + f"{CENTRE_USER}:*:19000:0:99999:7:::\n{SERVER_USER}:*:19000:0:99999:7:::\n",
        }
        return {name: views for name in names}

    def _make_pki(self) -> None:
        assert self.topology is not None
        pkid = services.ensure_dir(self.base / "pki", 0o700)
        host_ca = pki.keygen(pkid / "host_ca", "centre host CA")
        user_ca = pki.keygen(pkid / "user_ca", "centre user CA")
        for name in ("jump", "machine1"):
            sshd = services.ensure_dir(self.base / "sshd" / name, 0o700)
            key = pki.keygen(sshd / "host_key", f"{name} host key")
            host = self.host(name)
            principals = [name, host.address]
            if name == "jump":
                principals.append(self.topology.jump_home_address)
            pki.sign_host(host_ca, key, f"{name}-host", principals)
            sessions = self.jump_sessions or name != "jump"
            services.write_sshd_config(host, sshd, Path(f"{user_ca}.pub"), sessions)
        services.ensure_dir(self.home_dir, 0o700)
        pki.keygen(self.user_key, "laptop user key")
        self.issue_certificate(self.certificate_validity)
        host_ca_pub = Path(f"{host_ca}.pub").read_text().strip()
        (self.home_dir / "known_hosts").write_text(f"@cert-authority * {host_ca_pub}\n")
        self.set_first_hop(self.first_hop)

    def _ssh_config_text(self) -> str:
        assert self.topology is not None
        relay = self._procs.get("firsthop")
        jump = firsthop.ssh_block(self.first_hop, self.topology.jump_home_address, self._relay_port if relay else None)
        return f"""\
# The laptop's view of the simulated Centre {self.run_id}: use with ssh -F; never the user's ~/.ssh.
{jump}Host *
    User {CENTRE_USER}
    IdentityFile {self.user_key}
    CertificateFile {self.certificate}
    IdentitiesOnly yes
    IdentityAgent none
    UserKnownHostsFile {self.home_dir / "known_hosts"}
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    UpdateHostKeys no
    ConnectTimeout 5
"""

    def issue_certificate(self, validity: str = "+12h") -> Path:
        """Sign a new user certificate, as `tsh login` would (validity as ssh-keygen -V: "+12h", "+15s")."""
        return pki.sign_user(self.base / "pki" / "user_ca", self.user_key, "laptop", [CENTRE_USER], validity)

    def _load_server(self, spec: EcflowServerSpec) -> None:
        ecf_home = services.ensure_dir(self.ecf_home(spec))
        out = services.ensure_dir(self.outputs_dir)
        logport = next(lg.port for lg in self.logservers if lg.host == spec.logserver)
        # The jobs reach their server itself (ECF_PORT): an https one's ecflow_server speaks HTTP in clear.
        options = chroots.client_options("http" if spec.protocol == "https" else spec.protocol)
        definition = services.write_suite(spec.suite, ecf_home, out, spec.logserver, logport, options)
        if spec.protocol in ("ssl", "https") and not (self.server_ssl_dir / "server.crt").exists():
            chroots.make_tls_files(self.server_ssl_dir, "ecflow-remote test server")
            subprocess.run(["chown", "-R", f"{SERVER_UID}:{SERVER_UID}", str(self.server_ssl_dir.parent)], check=True)
        self.start_server(spec.host, spec.port)
        for args in ([f"--load={definition}"], ["--restart"], [f"--begin={spec.suite}"]):
            self.ecflow_client(spec.host, spec.port, args)
        self._loaded.add(spec.host)

    @property
    def server_ssl_dir(self) -> Path:
        """The servers' account's ~/.ecflowrc/ssl: TLS servers' server.crt, server.key and dh2048.pem."""
        return self.base / "centre-home" / SERVER_USER / ".ecflowrc" / "ssl"

    def _chroot(self, spec: EcflowServerSpec) -> tuple[Path, Path] | None:
        root = chroots.root(spec.version)
        return None if root is None else (root, self.base)

    def _newer_env(self, spec: EcflowServerSpec) -> dict[str, str]:
        """A chroot server's and its clients' environment: the servers' account's home (its certificates)."""
        if spec.version == "5.9":
            return {}
        return chroots.client_env(spec.protocol, self.base / "centre-home" / SERVER_USER)

    def _server_env(self, spec: EcflowServerSpec) -> dict[str, str]:
        env: dict[str, str] = {}
        ecf_home = self.ecf_home(spec)
        lists = ecf_home / "ecf.lists"
        if spec.white_list is not None:
            lists.write_text("4.4.14\n" + "".join(f"{u}\n" for u in spec.white_list))
            env["ECF_LISTS"] = str(lists)
        if spec.passwords is not None:
            pw = ecf_home / "ecf.custom_passwd"
            lines = [f"{user} {spec.host} {spec.port} {password}" for user, password in spec.passwords]
            pw.write_text("5.9.2\n" + "\n".join(lines) + "\n")
            os.chmod(pw, 0o600)
            env["ECF_CUSTOM_PASSWD"] = str(pw)
        return env

    def down(self) -> None:
        """Kill what up() started and remove every namespace, link, route and file it made; idempotent."""
        lan_net = self.topology.lan_net if self.topology else None
        # SIGKILL everything inside the namespaces at once: a graceful stop of each daemon costs seconds.
        destroy(self.run_id, lan_net)
        for proc in self._procs.values():
            services.stop(proc)
        self._procs.clear()
        self.topology = None

    # ------------------------------------------------------------------------------------- fault knobs
    def start_sshd(self, name: str) -> None:
        self._procs[f"sshd:{name}"] = services.start_sshd(self.host(name), self.base / "sshd" / name)

    def stop_sshd(self, name: str) -> None:
        """Stop the listening sshd; established sessions (their own sshd children) keep running, as in life."""
        services.stop(self._procs.pop(f"sshd:{name}", None))

    def start_server(self, host: str, port: int | None = None) -> None:
        spec = next(s for s in self.servers if s.host == host and (port is None or s.port == port))
        env = self._server_env(spec)  # written first: its files become the server account's below, as ECF_HOME
        as_user = None
        if spec.white_list is not None or spec.version != "5.9":
            # Run by its own account (ecFlow always admits the server's own user: root, or user1, would be let in).
            as_user = SERVER_UID
            for path in (self.ecf_home(spec), self.outputs_dir / spec.suite):
                subprocess.run(["chown", "-R", f"{SERVER_UID}:{SERVER_UID}", str(path)], check=True)
        self._procs[f"ecflow:{host}:{spec.port}"] = services.start_ecflow_server(
            self.host(host),
            spec.server_port,
            self.ecf_home(spec),
            {**env, **self._newer_env(spec)},
            as_user,
            chroot=self._chroot(spec),
            options=["--http"] if spec.protocol in ("http", "https") else [],
        )
        if spec.protocol == "https":
            self._procs[f"tlsfront:{host}:{spec.port}"] = services.start_tls_front(
                self.host(host), spec.port, spec.server_port, self.server_ssl_dir, self.ecf_home(spec) / "tlsfront.log"
            )
        if spec.host in self._loaded:
            # A restarted server recovers its suite from the check point but comes up HALTED.
            self.ecflow_client(host, spec.port, ["--restart"])

    def stop_server(self, host: str, port: int | None = None) -> None:
        spec = next(s for s in self.servers if s.host == host and (port is None or s.port == port))
        services.stop(self._procs.pop(f"ecflow:{host}:{spec.port}", None))
        services.stop(self._procs.pop(f"tlsfront:{host}:{spec.port}", None))

    def start_logserver(self, host: str) -> None:
        spec = next(lg for lg in self.logservers if lg.host == host)
        self._procs[f"logsvr:{host}"] = services.start_logserver(
            self.host(host), spec.port, [self.outputs_dir], self.base / "logsvr"
        )

    def stop_logserver(self, host: str) -> None:
        services.stop(self._procs.pop(f"logsvr:{host}", None))

    def cut_link(self) -> None:
        """The laptop loses its network (Wi-Fi gone): packets to and from the jump host are dropped."""
        network.set_link(self.host("jump").netns, "home0", up=False)

    def restore_link(self) -> None:
        network.set_link(self.host("jump").netns, "home0", up=True)

    def set_first_hop(self, kind: str) -> None:
        """Reach the jump host directly, through a ProxyCommand or through a local TCP relay (firsthop.py): the
        ssh config is rewritten, so every ssh started from now on goes that way."""
        assert self.topology is not None, "Centre is not up"
        firsthop.ssh_block(kind, "", None)  # ValueError for an unknown kind, before anything changes
        services.stop(self._procs.pop("firsthop", None))
        if kind == "relay":
            proc, self._relay_port = firsthop.start_relay(self.topology.jump_home_address, self.base / "firsthop.log")
            self._procs["firsthop"] = proc
        self.first_hop = kind
        self.ssh_config.write_text(self._ssh_config_text())

    def move_home(self, keep_old: bool = False, gap: float = 0.0) -> str:
        """A new home address, the route to the jump host from it, the old one gone (network.move_home)."""
        assert self.topology is not None, "Centre is not up"
        return network.move_home(self.topology, keep_old, gap)

    def set_home_link(self, link: HomeLink | None) -> None:
        """Give the home↔jump link a round trip, rates and a bottleneck buffer (None: a LAN again), also while up."""
        assert self.topology is not None, "Centre is not up"
        services.stop(self._procs.pop("homelink", None))
        proc = homelink.apply(self.topology, link, self.base / "homelink.log", self._record_namespaces)
        if proc is not None:
            self._procs["homelink"] = proc
        self.home_link = link

    def exec(
        self, host: str, argv: Sequence[str], *, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run a command on a Centre host (inside its namespace, with its host name and /etc view)."""
        return services.host_exec(self.host(host), argv, check=check, timeout=timeout)

    def python_in(self, host: str, code: str) -> str:
        """Run Debian's python3 (which has python3-ecflow) on a Centre host; its stdout."""
        return self.exec(host, ["/usr/bin/python3", "-c", code]).stdout

    def ecflow_client(
        self, host: str, port: int, args: Sequence[str], check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """ecflow_client run at the Centre by the servers' own account (which every server admits); a newer
        server's own client (from its chroot, speaking its protocol)."""
        spec = next((s for s in self.servers if s.host == host and s.port == port), None)
        if spec is None or spec.version == "5.9":
            return services.ecflow_client(self.host(host), port, args, as_user=SERVER_UID, check=check)
        return services.ecflow_client(
            self.host(host),
            port,
            [*chroots.client_options(spec.protocol), *args],
            as_user=SERVER_UID,
            check=check,
            chroot=self._chroot(spec),
            env=self._newer_env(spec),
        )

    def write_profile(
        self, path: Path, method: str = "local", *, logservers: Sequence[str] | None = None, **gateway: Any
    ) -> Path:
        """An ecflow-remote profile for this Centre: every server and log server (or only the `logservers` named:
        the suites' others are then for the tunnel to find), through jump to machine1."""
        lines = [
            "[gateway]",
            f'jump = "{self.jump}"',
            f'host = "{self.workstation}"',
            f'ssh_config = "{self.ssh_config}"',
            f'method = "{method}"',
        ]
        lines += [f"{k} = {json.dumps(v)}" for k, v in gateway.items()]
        for spec in self.servers:
            lines += [
                "",
                "[[server]]",
                f'name = "{spec.host}"' if spec.port in (4141, 3142) else f'name = "{spec.host}-{spec.port}"',
                f'host = "{spec.host}"',
                f"port = {spec.port}",
                *([f'protocol = "{spec.protocol}"'] if spec.protocol != "plain" else []),
            ]
        for lg in self.logservers:
            if logservers is None or lg.host in logservers:
                lines += ["", "[[logserver]]", f'host = "{lg.host}"', f"port = {lg.port}"]
        if self.web_hosts:
            lines += ["", "[web]", f'domains = ["*.{WEB_DOMAIN}"]  # the web proxy carries these names (open URL)']
        path.write_text("\n".join(lines) + "\n")
        return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def destroy(run_id: str, lan_net: str | None = None) -> None:
    """Remove one Centre by its id, from its state file if it has one: processes, namespaces, routes, files."""
    state_file = STATE_DIR / f"{run_id}.json"
    base = Path(f"/tmp/ecfr-{run_id}")
    state: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        state = dict(json.loads(state_file.read_text()))
    lan_net = lan_net or state.get("lan_net")
    # Every process inside our namespaces is ours (daemons, task jobs, sshd sessions): kill them all first. Those
    # whose names this mount view does not show are found by the namespaces' recorded identities, and once the
    # owner is gone, what is left of its session (ssh clients, tunnels) by its mount namespace.
    names = network.list_netns(run_id)
    owner = state.get("owner")
    session = state.get("mntns") if isinstance(owner, int) and not _pid_alive(owner) else None
    for _ in range(50):
        pids = {pid for ns in names for pid in network.netns_pids(ns)}
        pids.update(namespaces.leftovers(run_id, state.get("netns") or {}, session))
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    network.destroy(run_id, lan_net)
    chroots.forget(base)
    shutil.rmtree(base, ignore_errors=True)
    state_file.unlink(missing_ok=True)


def cleanup_stale(everything: bool = False) -> list[str]:
    """Destroy Centres whose owner process is gone (an interrupted run); with everything=True, all of them."""
    ids: set[str] = set()
    ids.update(p.stem for p in STATE_DIR.glob(f"{RUN_PREFIX}*.json"))
    ids.update(ns.split("-")[0] for ns in network.all_netns() if ns.startswith(RUN_PREFIX))
    ids.update(p.name.split("-")[0] for p in network.NETNS_ETC.glob(f"{RUN_PREFIX}*-*"))
    ids.update(p.name.removeprefix("ecfr-") for p in Path("/tmp").glob(f"ecfr-{RUN_PREFIX}*"))
    removed = []
    for run_id in sorted(ids):
        state_file = STATE_DIR / f"{run_id}.json"
        owner = None
        detached = False
        if state_file.exists():
            try:
                owner = json.loads(state_file.read_text()).get("owner")
                detached = owner is None
            except (OSError, ValueError):
                pass
        if not everything and (detached or (owner is not None and _pid_alive(owner))):
            continue
        destroy(run_id)
        removed.append(run_id)
    return removed
