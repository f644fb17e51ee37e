"""browse.py: which browser `open` starts, with which private profile and PAC, and what it says of other names."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecflow_remote import browse
from ecflow_remote.errors import LaunchError

PAC = "http://127.0.0.1:40001/proxy.pac"


def _access(tmp_path: Path) -> browse.WebAccess:
    return browse.WebAccess("http://127.0.0.1:40001", PAC, ("*.ecmwf.int", "hub"), None, tmp_path)


def _exe(directory: Path, name: str) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_chromium_first_then_firefox_then_browser_variable(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    firefox = _exe(bin_dir, "firefox")
    assert browse.find_browser({"PATH": str(bin_dir)}) == browse.Browser("firefox", str(firefox))
    chrome = _exe(bin_dir, "google-chrome")
    assert browse.find_browser({"PATH": str(bin_dir)}) == browse.Browser("chromium", str(chrome))
    empty = tmp_path / "empty"
    empty.mkdir()
    assert browse.find_browser({"PATH": str(empty), "BROWSER": "w3m -o x"}) == browse.Browser("other", "w3m -o x")
    assert browse.find_browser({"PATH": str(empty)}) is None


def test_chromium_gets_a_private_profile_in_the_run_directory_and_the_pac(tmp_path: Path) -> None:
    argv = browse.browser_argv(browse.Browser("chromium", "/usr/bin/chromium"), _access(tmp_path), "https://hub/x")
    profile = tmp_path / "browser" / "chromium"
    assert argv == [
        "/usr/bin/chromium",
        f"--user-data-dir={profile}",
        f"--proxy-pac-url={PAC}",
        "--no-first-run",
        "--no-default-browser-check",
        "https://hub/x",
    ]
    assert profile.is_dir() and profile.stat().st_mode & 0o777 == 0o700


def test_firefox_gets_a_private_profile_whose_prefs_name_the_pac(tmp_path: Path) -> None:
    argv = browse.browser_argv(browse.Browser("firefox", "/usr/bin/firefox"), _access(tmp_path), "https://hub/")
    profile = tmp_path / "browser" / "firefox"
    assert argv == ["/usr/bin/firefox", "--profile", str(profile), "--no-remote", "--new-instance", "https://hub/"]
    prefs = (profile / "user.js").read_text()
    assert 'user_pref("network.proxy.type", 2);' in prefs
    assert f'user_pref("network.proxy.autoconfig_url", "{PAC}");' in prefs


def test_browser_variable_gets_the_url_only(tmp_path: Path) -> None:
    argv = browse.browser_argv(browse.Browser("other", "w3m -o x"), _access(tmp_path), "http://hub/")
    assert argv == ["w3m", "-o", "x", "http://hub/"] and not (tmp_path / "browser").exists()


def test_urls_and_names_outside_the_centre(tmp_path: Path) -> None:
    access = _access(tmp_path)
    assert browse.outside_note("https://jupyterhub.ecmwf.int/hub", access) is None
    assert browse.outside_note("http://HUB:8000/", access) is None
    note = browse.outside_note("https://www.example.org/", access)
    assert note is not None and "www.example.org is not one of the Centre's names" in note
    with pytest.raises(LaunchError, match="not an http:// or https:// URL"):
        browse.check_url("jupyterhub.ecmwf.int")
