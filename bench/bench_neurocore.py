"""Cycles per token of one MatMul-free layer, measured on the real RTL (Verilator), and the derived
whole-model tokens/s on a VCK190.

Every case builds :class:`hw.neurocore_top.NeurocoreTop`, loads layer 0 of an integer program over the
AXI4-Stream load port, runs consecutive tokens with the state carried (every output word compared with
``GoldenModel.layer_step``) and reads the top's own ``CYCLES`` register (start to last output word).
Cases: the tiny model the testbench uses; the bundled model's shape (d 256, GLU 640); the MMfreeLM-370M
shape (d 1024, GLU 2816, one layer, random ternary weights — ``IntegerProgram.random`` — since the
released weights are not on this machine). Cycles depend on the input events (non-zero int8 codes)
per projection, which the golden model counts; the record gives cycles per event too.

Derived figure (a calculation on the measured cycles, stated as such): tokens/s of the whole 370M model
(24 layers + ``lm_head``) with one layer top at ``CLOCK_MHZ`` whose weights are reloaded for every layer
from DDR4, at the lower of the 32-bit load port (4 bytes per cycle) and the board's DDR4 bandwidth.
VCK190 memory: one 64-bit DDR4-3200 component interface, 25.6 GB/s peak (AMD UG1366, VCK190 Evaluation
Board User Guide, "DDR4 Component Memory"). ``lm_head`` (1024 → 32000) is not part of the layer top; its
cycles are estimated from the measured cycles per (event x lane group) of the ternary cores.
Run: ``python bench/bench_neurocore.py [--quick]`` → ``bench/results/neurocore.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench._records import record, write_records  # noqa: E402

CLOCK_MHZ = 200.0
DDR4_GBPS = 25.6  # AMD UG1366: 64-bit DDR4-3200 component memory on the VCK190
LOAD_PORT_BYTES_PER_CYCLE = 4

CASES = {
    # name: (hidden, glu, lanes, program source, tokens)
    "tiny_d32_m64_p4": (32, 64, 4, "tiny", 8),
    "tiny_d32_m64_p4_1000_tokens": (32, 64, 4, "tiny", 1000),
    "bundled_d256_m640_p8": (256, 640, 8, "bundled", 16),
    "370m_d1024_m2816_p16": (1024, 2816, 16, "370m", 2),
}


def _program(source: str, hidden: int, glu: int):
    from models.mmfree.config import preset
    from models.program.integer_program import IntegerProgram
    from verif.neurocore_top_vectors import small_program

    if source in ("tiny", "bundled"):  # "bundled": the real weights of models/bundled (layer 0)
        program, origin = small_program(hidden, glu)
        if source == "bundled" and not origin.startswith("bundled checkpoint"):
            raise RuntimeError(f"models/bundled is missing or not d{hidden}/m{glu}; got {origin}")
        return program
    return IntegerProgram.random(preset(source, num_hidden_layers=1, vocab_size=64), seed=1)


def measure(name: str, simulator: str = "verilator") -> dict:
    """Simulate one case (Verilator by default); returns cycles and events per token."""
    from hw.neurocore_top import NeurocoreTop
    from hw.verilog import emit
    from models.program.golden import GoldenModel
    from verif.flow import BUILD_ROOT
    from verif.neurocore_top_vectors import make_bench_vectors
    from verif.simulators import run_testbench

    hidden, glu, lanes, source, n_tokens = CASES[name]
    program = _program(source, hidden, glu)
    unit = NeurocoreTop(hidden=hidden, glu=glu, lanes=lanes, clock_mhz=CLOCK_MHZ)
    vectors = make_bench_vectors(unit, program, n_tokens=n_tokens)
    golden = GoldenModel(program)
    events = []
    for x in vectors["layers"][0]["inputs"]:
        x = np.array([w - (1 << 32) if w >> 31 else w for w in x], dtype=np.int64)
        events.append(golden.layer_step(0, x))
    build = BUILD_ROOT.parent / "bench" / "neurocore" / name / simulator
    build.mkdir(parents=True, exist_ok=True)
    (build / "vectors.json").write_text(json.dumps(vectors))
    t0 = time.perf_counter()
    res = run_testbench(unit="neurocore_top", config=name, verilog=emit(unit, "neurocore_top"),
                        toplevel="neurocore_top", test_module="verif.tb_neurocore_top", simulator=simulator,
                        build_dir=build, extra_env={"NMLLM_TB_VECTORS": str(build / "vectors.json")})
    if not res.passed:
        raise RuntimeError(f"{name}: the RTL run failed: {res.detail}")
    cycles = res.summary["cycles_list"]
    return {"case": name, "hidden": hidden, "glu": glu, "lanes": lanes, "tokens": len(cycles),
            "cycles_per_token": float(np.mean(cycles)), "cycles_list": cycles,
            "input_events_per_token": float(np.mean([e.input_events for e in events])),
            "synaptic_ops_per_token": float(np.mean([e.synaptic_ops for e in events])),
            "sim_wall_s": time.perf_counter() - t0, "build_s": res.build_s, "run_s": res.run_s}


def derive_370m(layer: dict) -> dict:
    """Whole-model tokens/s of MMfreeLM-370M from the measured 370M-shape layer (a stated calculation)."""
    from models.mmfree.config import preset

    cfg = preset("370m")
    d, m, L, V, P = cfg.hidden_size, cfg.mlp_intermediate_size, cfg.num_hidden_layers, cfg.vocab_size, layer["lanes"]
    # lm_head: ~d events, V/P lane groups; cycles per (event x group) from the measured layer's cores
    groups_events = (3 * d // P) * d + (d // P) * d + (2 * m // P) * d + (d // P) * m  # the layer's six cores
    per_event_group = layer["cycles_per_token"] / groups_events
    head_cycles = per_event_group * (V // P) * d
    compute_cycles = L * layer["cycles_per_token"] + head_cycles
    weight_bytes = (L * (4 * d * d + 3 * d * m) + V * d) * 2 / 8
    load_rate = min(LOAD_PORT_BYTES_PER_CYCLE * CLOCK_MHZ * 1e6, DDR4_GBPS * 1e9)
    load_s = weight_bytes / load_rate
    compute_s = compute_cycles / (CLOCK_MHZ * 1e6)
    return {"compute_cycles_per_token": compute_cycles, "compute_s": compute_s, "weight_bytes": weight_bytes,
            "load_s": load_s, "tokens_per_s": 1.0 / (compute_s + load_s),
            "ddr4_floor_tokens_per_s": DDR4_GBPS * 1e9 / weight_bytes, "lm_head_cycles_estimate": head_cycles}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 370M-shape simulation")
    parser.add_argument("--case", action="append", choices=list(CASES), help="case to simulate (repeatable)")
    parser.add_argument("--simulator", choices=["verilator", "icarus"], default="verilator",
                        help="simulator (default verilator; icarus re-checks the same vectors)")
    args = parser.parse_args(argv)
    names = args.case or [n for n in CASES if not (args.quick and (n.startswith("370m") or n.endswith("tokens")))]
    detail = Path(__file__).resolve().parent / "results" / "details" / "neurocore.json"  # per-token raw data
    # cases not simulated in this run keep their last measurement (--case re-measures one at a time)
    previous = json.loads(detail.read_text()) if detail.exists() else {}
    results = {n: previous[n] for n in CASES if n in previous and n not in names}
    for name in names:
        r = measure(name, args.simulator)
        results[name] = r
        print(f"{name}: {r['cycles_per_token']:.0f} cycles/token ({r['tokens']} tokens, "
              f"{r['input_events_per_token']:.0f} input events/token), simulated in {r['run_s']:.0f} s "
              f"on {args.simulator}, every word bit-exact")
    if args.simulator != "verilator":
        return  # a re-check on another simulator: the records stay those of the Verilator runs
    records = []
    for name in (n for n in CASES if n in results):
        r = results[name]
        records.append(record("neurocore", f"{name} one layer, RTL (Verilator), CYCLES register", "cycles_per_token",
                              r["cycles_per_token"], "cycles", "input events per token",
                              r["input_events_per_token"]))
        records.append(record("neurocore", f"{name} one layer at {CLOCK_MHZ:g} MHz", "layer_us_per_token",
                              r["cycles_per_token"] / CLOCK_MHZ, "us", "cycles per token", r["cycles_per_token"]))
    if "370m_d1024_m2816_p16" in results:
        dv = derive_370m(results["370m_d1024_m2816_p16"])
        results["370m_whole_model"] = dv
        print(f"370M whole model on a VCK190 at {CLOCK_MHZ:g} MHz (derived): {dv['tokens_per_s']:.2f} tokens/s "
              f"(compute {dv['compute_s'] * 1e3:.1f} ms + weight reload {dv['load_s'] * 1e3:.1f} ms per token); "
              f"DDR4 bandwidth floor {dv['ddr4_floor_tokens_per_s']:.0f} tokens/s")
        records.append(record("neurocore", "370M whole model, VCK190, derived from the simulated layer "
                              "(24 layers + lm_head estimate, weights reloaded per layer over the 32-bit load port, "
                              "DDR4 25.6 GB/s per AMD UG1366)", "tokens_per_s", dv["tokens_per_s"], "tokens/s",
                              "DDR4 bandwidth floor (weights read once per token)", dv["ddr4_floor_tokens_per_s"]))
    print(write_records("neurocore", records))
    detail.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
