"""SPICE cross-check of the IR-drop solver: netlist writer, ngspice batch runner, output parser.

:func:`netlist` writes the circuit of :mod:`sim.crossbar.ir_drop` (word-line drivers as DC voltage
sources, wire segments and cells as resistors, each bit line ending in a 0 V source that measures its
column current); :func:`spice_column_currents` runs it through ``ngspice -b`` (operating point) and
returns the column currents in the order of :func:`sim.crossbar.ir_drop.column_currents`.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from sim.crossbar.ir_drop import WireParams

__all__ = ["INSTALL_HINT", "ngspice_path", "netlist", "run_ngspice", "parse_currents", "spice_column_currents"]

#: How to get ngspice where it is missing (Debian/Ubuntu package).
INSTALL_HINT = "apt-get install ngspice"

_CURRENT = re.compile(r"^i\(vs(\d+)\)\s*=\s*([-+0-9.eE]+)\s*$", re.MULTILINE)


def ngspice_path() -> str | None:
    """The ``ngspice`` executable on ``PATH``, or None."""
    return shutil.which("ngspice")


def _num(x: float) -> str:
    return f"{float(x):.17g}"


def netlist(g: np.ndarray, v: np.ndarray, wires: WireParams, title: str = "crossbar IR drop") -> str:
    """SPICE text of the crossbar with conductances ``g`` (R, C) in siemens and word-line volts ``v`` (R,)."""
    g = np.asarray(g, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    if g.ndim != 2 or v.shape != (g.shape[0],):
        raise ValueError(f"Need conductances (R, C) and R voltages; got {g.shape} and {v.shape}")
    if (g < 0).any() or not np.isfinite(g).all():
        raise ValueError("Conductances must be finite and non-negative")
    r, c = g.shape
    lines = [f"* {title}: {r} x {c} cells, r_wl {wires.r_wl} ohm, r_bl {wires.r_bl} ohm"]
    for i in range(r):
        lines.append(f"VIN{i} in{i} 0 DC {_num(v[i])}")
        lines.append(f"RW{i}_0 in{i} w{i}_0 {_num(wires.r_wl)}")
        lines += [f"RW{i}_{j} w{i}_{j - 1} w{i}_{j} {_num(wires.r_wl)}" for j in range(1, c)]
    for i in range(r):
        lines += [f"RC{i}_{j} w{i}_{j} b{i}_{j} {_num(1.0 / g[i, j])}" for j in range(c) if g[i, j] > 0]
    for j in range(c):
        lines += [f"RB{i}_{j} b{i - 1}_{j} b{i}_{j} {_num(wires.r_bl)}" for i in range(1, r)]
        lines.append(f"RB{r}_{j} b{r - 1}_{j} s{j} {_num(wires.r_bl)}")
        lines.append(f"VS{j} s{j} 0 DC 0")
    lines += [".control", "set numdgt=15", "op"]
    lines += [f"print i(vs{j})" for j in range(c)]
    lines += ["quit 0", ".endc", ".end", ""]  # quit: exit status 0 in batch mode
    return "\n".join(lines)


def run_ngspice(text: str, workdir: Path | None = None, timeout: float = 300.0) -> str:
    """Run ``ngspice -b`` on the netlist ``text``; returns its standard output.

    Raises ``RuntimeError`` naming :data:`INSTALL_HINT` if ngspice is missing, or with ngspice's own
    message if it fails.
    """
    exe = ngspice_path()
    if exe is None:
        raise RuntimeError(f"ngspice is not installed; install it with `{INSTALL_HINT}`")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        path = Path(tmp) / "crossbar.cir"
        path.write_text(text)
        proc = subprocess.run([exe, "-b", str(path)], capture_output=True, text=True, timeout=timeout, cwd=tmp)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise RuntimeError(f"ngspice failed (exit {proc.returncode}): {' | '.join(tail)}")
    return proc.stdout


def parse_currents(output: str, columns: int) -> np.ndarray:
    """Column currents ``i(vs0) .. i(vs<columns-1>)`` from ngspice's printed operating point."""
    found = {int(j): float(val) for j, val in _CURRENT.findall(output)}
    missing = [j for j in range(columns) if j not in found]
    if missing:
        raise RuntimeError(f"ngspice output lacks the current of {len(missing)} columns (first: column {missing[0]})")
    return np.array([found[j] for j in range(columns)])


def spice_column_currents(g: np.ndarray, v: np.ndarray, wires: WireParams) -> np.ndarray:
    """Column currents (amperes) of the crossbar as ngspice computes them."""
    g = np.asarray(g)
    return parse_currents(run_ngspice(netlist(g, v, wires)), g.shape[1])
