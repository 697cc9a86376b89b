"""The Debian-tools check that `make test` and `make demo` run first: fast, one line, apt-get where it can."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nmllm import system_tools

ROOT = Path(__file__).resolve().parent.parent
#: Every binary the check looks for (the packages' names are the check's own).
TOOLS = {"make", "c++", "iverilog", "vvp", "ngspice", "chromium", "chromium-browser", "google-chrome", "tclsh", "yosys"}


def _path_without(folder: Path, hidden: set[str]) -> str:
    """A PATH of one folder linking every command of the current PATH except ``hidden``."""
    folder.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory):
            continue
        for name in os.listdir(directory):
            target, link = os.path.join(directory, name), folder / name
            if name not in hidden and not link.exists() and os.access(target, os.X_OK):
                link.symlink_to(target)
    return str(folder)


@pytest.mark.parametrize("hidden,packages", [
    (TOOLS, "make g++ iverilog ngspice chromium tcl"),
    ({"vvp"}, "iverilog"),  # Icarus needs its runtime as well as its compiler
])
def test_missing_tools_stop_make_test_in_one_fast_line(tmp_path, hidden, packages):
    env = {**os.environ, "PATH": _path_without(tmp_path / "bin", hidden), "NMLLM_NO_APT": "1"}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "nmllm.system_tools", "test"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - t0
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"make test: missing Debian packages {packages}; "
                                  f"install them with: {'' if os.geteuid() == 0 else 'sudo '}apt-get install -y {packages} ")
    assert elapsed < 15.0   # "within seconds", before any test runs (generous: the CI machine may be loaded)


def test_everything_installed_passes_silently(monkeypatch, capsys):
    monkeypatch.setenv("NMLLM_NO_APT", "1")
    assert system_tools.main(["test"]) == 0
    assert capsys.readouterr() == ("", "")


FAKE_APT = """#!/bin/sh
echo "$DEBIAN_FRONTEND $*" >> "{log}"
[ "$1" = install ] || exit 0
[ -z "{fail}" ] || {{ echo "{fail}" >&2; exit 100; }}
for p in "$@"; do case "$p" in -*|install) ;; *) ln -s /bin/true "{bin}/$p";; esac; done
"""


@pytest.mark.parametrize("fail", ["", "E: Unable to locate package ngspice"])
def test_root_installs_what_is_missing_with_apt_get(tmp_path, monkeypatch, capsys, fail):
    folder, log = tmp_path / "bin", tmp_path / "apt.log"
    monkeypatch.setenv("PATH", _path_without(folder, {"ngspice", "apt-get"}))
    (folder / "apt-get").write_text(FAKE_APT.format(log=log, fail=fail, bin=folder))
    (folder / "apt-get").chmod(0o755)
    monkeypatch.delenv("NMLLM_NO_APT", raising=False)
    monkeypatch.setattr(system_tools.os, "geteuid", lambda: 0)
    code = system_tools.main(["test"])
    assert log.read_text().splitlines() == ["noninteractive update -qq", "noninteractive install -y -qq ngspice"]
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "make test: installing ngspice with apt-get"
    if fail:
        assert code == 1 and err[1:] == [
            f"make test: could not install ngspice: `apt-get install -y -qq ngspice` exited 100 ({fail})"]
    else:
        assert code == 0 and err[1:] == []


def test_without_root_the_line_says_sudo(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", _path_without(tmp_path / "bin", {"chromium", "chromium-browser", "google-chrome"}))
    monkeypatch.delenv("NMLLM_NO_APT", raising=False)
    monkeypatch.setattr(system_tools.os, "geteuid", lambda: 1000)
    assert system_tools.main(["demo"]) == 0  # the demo does not need Chromium
    assert system_tools.main(["test"]) == 1
    assert capsys.readouterr().err == ("make test: missing Debian packages chromium; "
                                       "install them with: sudo apt-get install -y chromium\n")


@pytest.mark.parametrize("target,runs", [("test", "-m pytest"), ("test-fast", "-m pytest"), ("demo", "nmllm demo"),
                                         ("bench", "bench/bench_")])
def test_make_checks_the_tools_before_the_target_runs(target, runs):
    steps = subprocess.run(["make", "-n", "-C", str(ROOT), target], capture_output=True, text=True, check=True,
                           timeout=60).stdout.splitlines()
    tool = f"-m nmllm.system_tools {target.removesuffix('-fast')}"
    first = [i for i, line in enumerate(steps) if line.endswith(tool)]
    assert first and first[0] < next(i for i, line in enumerate(steps) if runs in line), steps
