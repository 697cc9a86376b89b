"""The RTL crossbar tile: measured cycles per MVM against the cycle formula, and Yosys cells of its periphery.

For every crossbar configuration of :data:`verif.registry.BENCHES` (tile size, DAC bits and ADC sharing
vary) the cocotb bench runs on Verilator and Icarus; every vector of its timed phases (no stalls) must
take :func:`models.program.crossbar.mvm_cycles` cycles from first activation in to last result out, and
the record holds what the testbench measured next to the formula. The periphery is then synthesised with
Yosys ``synth_xilinx -family xcup`` with the behavioural array black-boxed
(:data:`hw.crossbar_array.SIMULATION_ONLY`: a one-cycle analog array is no FPGA resource), at each bench
configuration and at the crossbar preset's tile (:data:`PRESET_TILE`), whose cycles per MVM are measured
too (on Verilator, with a short stimulus: 128 x 64 cells in one cycle are slow to simulate). The Yosys
counts are an ESTIMATE like ``bench/bench_yosys.py`` (UltraScale+ mapping, not Versal, not Vivado).

Needs both simulators and Debian's ``yosys``. Run: ``python bench/bench_crossbar_rtl.py`` (``--no-yosys``
keeps the last Yosys records) → ``bench/results/crossbar_rtl.json``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import RESULTS_DIR, record, write_records  # noqa: E402
from bench.bench_yosys import cell_counts  # noqa: E402
from sim.sweep.yosys import COLUMNS, classify  # noqa: E402

UNIT = "crossbar_tile"
#: The crossbar preset's tile (sim/presets/crossbar.yaml): 128 x 128 cells = 128 rows x 64 differential pairs,
#: 8 columns per 8-bit ADC, 1-bit DAC; clocked at one conversion (1.28 GS/s), a 100 ns read is 128 cycles
#: (sim/presets/crossbar_periphery.yaml, ISAAC).
PRESET_TILE = dict(rows=128, cols=64, dac_bits=1, cell_bits=5, adc_bits=8, noise_bits=3, cols_per_adc=8,
                   read_cycles=128, conv_cycles=1)


def periphery_cells(component, work: Path) -> tuple[dict[str, float], float]:
    """Yosys cells of ``component`` with its simulation-only array black-boxed; returns (counts, seconds)."""
    from hw.crossbar_array import SIMULATION_ONLY
    from hw.verilog import emit

    exe = shutil.which("yosys")
    if exe is None:
        raise SystemExit("bench_crossbar_rtl needs yosys with synth_xilinx on PATH (apt-get install yosys)")
    src, stat = work / f"{UNIT}.v", work / f"{UNIT}.stat.txt"
    src.write_text(emit(component, UNIT))
    script = (f"read_verilog {src}; blackbox {UNIT}.{SIMULATION_ONLY}; "
              f"synth_xilinx -family xcup -noiopad -top {UNIT}; tee -q -o {stat} stat")
    t0 = time.perf_counter()
    done = subprocess.run([exe, "-q", "-p", script], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"yosys failed on {UNIT}: {done.stderr[-2000:]}")
    counts = cell_counts(stat.read_text())
    if counts.get(f"{UNIT}.{SIMULATION_ONLY}") != 1:
        raise RuntimeError(f"the array was not black-boxed: {counts}")
    return classify(counts), time.perf_counter() - t0


def measure_preset(sim: str) -> dict:
    """The preset tile's testbench on ``sim`` with a short stimulus; its summary (every word still compared)."""
    from hw.crossbar_tile import CrossbarTile
    from hw.verilog import emit
    from verif.crossbar_tile_vectors import make_vectors
    from verif.flow import BUILD_ROOT
    from verif.simulators import run_testbench

    tile = CrossbarTile(**PRESET_TILE)
    build = BUILD_ROOT / UNIT / "crossbar_preset" / sim
    build.mkdir(parents=True, exist_ok=True)
    (build / "vectors.json").write_text(json.dumps(make_vectors(tile, seed=1, n_random=2)))
    res = run_testbench(unit=UNIT, config="crossbar_preset", verilog=emit(tile, UNIT), toplevel=UNIT,
                        test_module="verif.tb_crossbar_tile", simulator=sim, build_dir=build,
                        extra_env={"NMLLM_TB_VECTORS": str(build / "vectors.json"), "NMLLM_TB_SEED": "1"})
    assert res.passed, res.detail
    return res


def _describe(kw: dict) -> str:
    return (f"{kw['rows']}x{kw['cols']}, {kw['dac_bits']}-bit DAC, {kw['cols_per_adc']} columns per ADC, "
            f"read {kw.get('read_cycles', 1)} + conversion {kw.get('conv_cycles', 1)} cycles")


def main(argv=None) -> None:
    import argparse

    from hw.crossbar_tile import CrossbarTile
    from verif.flow import run_bench
    from verif.registry import BENCHES
    from verif.simulators import available_simulators

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-yosys", action="store_true", help="keep the last Yosys records")
    args = parser.parse_args(argv)
    if available_simulators() != ["verilator", "icarus"]:
        raise SystemExit(f"this benchmark runs the bench on Verilator and Icarus; installed: {available_simulators()}")
    configs = BENCHES[UNIT].configs
    path = RESULTS_DIR / "crossbar_rtl.json"
    old = json.loads(path.read_text()) if path.exists() else []
    cycles = []
    cells = [r for r in old if r["metric"] in COLUMNS] if args.no_yosys else []

    def measure(config: str, kw: dict, sim: str) -> None:
        tile = CrossbarTile(**kw)
        tile._MustUse__silence = True  # built for its cycle formula only
        res = measure_preset(sim) if config == "crossbar_preset" else run_bench(UNIT, config, sim)
        got = res.summary["mvm_cycles"]
        assert got["measured"] == [tile.cycles_per_vector] == [got["formula"]], got
        case = f"{UNIT} {config} ({_describe(kw)})"
        cycles.append(record("crossbar_rtl", case, f"mvm_cycles_{sim}", got["measured"][0], "cycles",
                             "models.program.crossbar.mvm_cycles", tile.cycles_per_vector))
        cycles.append(record("crossbar_rtl", case, f"timed_vectors_{sim}", got["timed_vectors"], "vectors",
                             "vectors checked word for word", res.vectors))
        print(f"{config} on {sim}: {got['measured'][0]} cycles per MVM (formula {tile.cycles_per_vector}), "
              f"{res.vectors} vectors PASS", flush=True)

    for config, kw in configs.items():
        for sim in ("verilator", "icarus"):
            measure(config, kw, sim)
    print(write_records("crossbar_rtl", cycles + cells, seed=1), flush=True)
    if not args.no_yosys:
        cases = {f"{UNIT} {c} ({_describe(kw)}) periphery": kw for c, kw in configs.items()}
        cases[f"{UNIT} crossbar preset tile ({_describe(PRESET_TILE)}) periphery"] = PRESET_TILE
        with tempfile.TemporaryDirectory() as tmp:
            for case, kw in cases.items():
                counts, seconds = periphery_cells(CrossbarTile(**kw), Path(tmp))
                for col in COLUMNS:
                    cells.append(record("crossbar_rtl", f"{case} (array black-boxed; estimate, synth_xilinx -family xcup)",
                                        col, counts[col], "cells", "synthesis seconds", seconds))
                print(f"{case}: " + ", ".join(f"{c} {counts[c]:g}" for c in COLUMNS) + f" ({seconds:.0f} s)", flush=True)
                print(write_records("crossbar_rtl", cycles + cells, seed=1), flush=True)
    measure("crossbar_preset", PRESET_TILE, "verilator")
    print(write_records("crossbar_rtl", cycles + cells, seed=1))

if __name__ == "__main__":
    main()
