"""Shared fixtures: the simulated Centre (one per session) and the how-to's raw SSH tunnels into it."""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

LINUX_ROOT = sys.platform.startswith("linux") and os.geteuid() == 0


def pytest_configure(config: pytest.Config) -> None:
    if LINUX_ROOT:
        from centre import cleanup_stale
        from centre.isolation import isolate_resolver

        # Before any thread exists: from here on no Centre host name can reach the machine's real resolver.
        isolate_resolver()
        cleanup_stale()


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Collect a test's garbage at its end, not in the middle of pytest's own work.

    Debian 12's Python 3.11.2 aborts an ast.parse with "SystemError: AST constructor recursion depth mismatch" when
    a finalizer that formats a traceback (asyncio's "exception was never retrieved" log does) runs inside it, and
    pytest parses source while it reports a failure: a late collection there turned one failing test into an
    INTERNALERROR that ended the whole run."""
    gc.collect()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


def _need_root() -> None:
    if not LINUX_ROOT:
        pytest.skip("integration tests need Linux and root (network namespaces): run `sudo make test`")


@pytest.fixture(scope="session")
def centre() -> Iterator[Any]:
    _need_root()
    from centre import Centre

    with Centre() as c:
        yield c


@pytest.fixture
def make_centre() -> Iterator[Callable[..., Any]]:
    """A factory for Centres with special options (white lists, short certificates); all removed at the end."""
    _need_root()
    from centre import Centre

    made: list[Any] = []

    def make(**options: Any) -> Any:
        c = Centre(**options)
        made.append(c)
        return c.up()

    yield make
    for c in made:
        c.down()


@pytest.fixture(scope="session")
def local_forward(centre: Any) -> Iterator[Any]:
    from centre import howto

    with howto.local_forward(centre) as tunnel:
        yield tunnel


@pytest.fixture(scope="session")
def socks_proxy(centre: Any) -> Iterator[Any]:
    from centre import howto

    with howto.socks_proxy(centre) as tunnel:
        yield tunnel


@pytest.fixture(autouse=True, scope="session")
def _private_runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """ecflow-remote's run directories (locks, state, sockets) stay inside the test session."""
    path = tmp_path_factory.mktemp("runtime")
    os.chmod(path, 0o700)
    old = os.environ.get("ECFLOW_REMOTE_RUNTIME_DIR")
    os.environ["ECFLOW_REMOTE_RUNTIME_DIR"] = str(path)
    yield
    if old is None:
        os.environ.pop("ECFLOW_REMOTE_RUNTIME_DIR", None)
    else:
        os.environ["ECFLOW_REMOTE_RUNTIME_DIR"] = old


@pytest.fixture
def own_run_root(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A run root of the test's own (a Path): `--all` must meet only the tunnels this test starts."""
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    monkeypatch.setenv("ECFLOW_REMOTE_RUNTIME_DIR", str(path))
    return path


@pytest.fixture
def profile_for(centre: Any, tmp_path: Any) -> Callable[..., Any]:
    """profile_for(method="local", centre=None, **gateway_keys) -> Path of a profile for that Centre."""

    def make(method: str = "local", centre_: Any = None, **gateway: Any) -> Any:
        c = centre_ or centre
        if method == "socks" and "socks_port" not in gateway:
            from centre.howto import free_port

            gateway["socks_port"] = free_port()  # 9050 may be taken on a developer's machine
        return c.write_profile(tmp_path / f"profile-{method}-{c.run_id}.toml", method, **gateway)

    return make


@pytest.fixture
def tunnel_up(profile_for: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """tunnel_up(method="local", centre_=None, **gateway_keys) -> a running ecflow_remote.Tunnel; all downed after."""
    from ecflow_remote.tunnel.handle import Tunnel

    started: list[Any] = []

    def make(method: str = "local", centre_: Any = None, **gateway: Any) -> Any:
        tunnel = Tunnel(profile_for(method, centre_, **gateway))
        started.append(tunnel)
        tunnel.up()
        return tunnel

    yield make
    for tunnel in started:
        tunnel.down()
