"""RTL utilisation of a sweep point: Yosys ``synth_xilinx -family xcup`` of the RTL ternary core.

An ESTIMATE (UltraScale+ mapping; Versal's DSP58/LOOKAHEAD8 are not modelled), the same flow as
``bench/bench_yosys.py``. Results are cached per process and per (unit, lanes, fan_in, out_features).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["COLUMNS", "classify", "utilisation"]

COLUMNS = ("LUT", "FF", "CARRY", "LUTRAM", "DSP", "BRAM36")


def classify(cells: dict[str, int]) -> dict[str, float]:
    """Xilinx primitive counts → LUT, FF, CARRY, LUTRAM, DSP and BRAM36 (RAMB18 count as half)."""
    out = dict.fromkeys(COLUMNS, 0.0)
    for cell, n in cells.items():
        if re.fullmatch(r"LUT[1-6](_2)?", cell):
            out["LUT"] += n
        elif re.fullmatch(r"FD[A-Z]*", cell):
            out["FF"] += n
        elif cell.startswith("CARRY"):
            out["CARRY"] += n
        elif re.fullmatch(r"RAM(16|32|64|128|256)\w*", cell):
            out["LUTRAM"] += n
        elif cell.startswith("DSP"):
            out["DSP"] += n
        elif cell.startswith("RAMB36"):
            out["BRAM36"] += n
        elif cell.startswith("RAMB18"):
            out["BRAM36"] += n / 2
    return out


@functools.lru_cache(maxsize=None)
def utilisation(unit: str, lanes: int, fan_in: int, out_features: int) -> dict[str, float]:
    """Resource counts of ``unit`` (``ternary_matvec``) with ``lanes`` lanes, synthesised by Yosys."""
    if unit != "ternary_matvec":
        raise ValueError(f"no Yosys model for unit {unit!r}: use ternary_matvec")
    exe = shutil.which("yosys")
    if exe is None:
        raise RuntimeError("yosys with synth_xilinx is not on PATH: apt-get install yosys")
    from hw.ternary_matvec import TernaryMatVec
    from hw.verilog import emit
    verilog = emit(TernaryMatVec(lanes=lanes, fan_in=fan_in, out_features=out_features), unit)
    with tempfile.TemporaryDirectory() as tmp:
        src, stat = Path(tmp) / f"{unit}.v", Path(tmp) / "stat.json"
        src.write_text(verilog)
        script = f"read_verilog {src}; synth_xilinx -family xcup -noiopad -top {unit}; tee -q -o {stat} stat -json"
        done = subprocess.run([exe, "-q", "-p", script], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"yosys failed on {unit} (lanes={lanes}): {done.stderr.strip().splitlines()[-1:]}")
        return classify(json.loads(stat.read_text())["design"]["num_cells_by_type"])
