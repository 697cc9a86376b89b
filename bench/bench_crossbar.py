"""Crossbar model speed: MVMs per second of a 256 x 256 tile with every effect on, against ideal mode.

Both run in the same process on the same weights and inputs (random ternary weights, int8 activations,
1-bit DACs, 8-bit ADC). "All effects": 16 conductance levels, programming noise 3 %, device-to-device
variation 5 %, read noise 2 %, drift (nu 0.05 +- 0.01, read at 1 h), 0.5 % stuck-on and 0.5 % stuck-off
devices, IR drop (2.5 ohm per cell on word and bit lines, 256 x 512 physical cells) and 2-bit LFSR noise.
Cases: batches of 256 vectors and one vector per call; the one-off programming time (device sampling and
the IR-drop transfer matrix, 256 nodal solves); and one fresh nodal solve per MVM (8 slices) as the
alternative to the transfer matrix.
BLAS runs on one thread (set before NumPy loads): on this shared 2-core machine two OpenBLAS threads took
11.6 ms instead of 0.1 ms for one 8 x 256 x 256 slice product, which would measure the contention.
Perplexity: the wall time of one WikiText-2 test perplexity evaluation of the bundled model (first
``--perplexity-tokens`` tokens, 2048 by default, window 256, stride 128) with every ternary layer on
crossbar tiles (:func:`experiments.crossbar_perplexity.base_config` — 128 x 128 tiles, 1-bit DAC, 8-bit ADC with a
one-unit step — plus 2 % read noise and 1 % stuck-at devices, the analog path), against the same
evaluation on the digital integer view; torch runs on one thread.
Run: ``python bench/bench_crossbar.py`` -> ``bench/results/crossbar.json``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import record, write_records  # noqa: E402
from models.program import numformat  # noqa: E402
from models.program.crossbar import Periphery, slice_inputs  # noqa: E402
from models.program.ternary_kernels import ternary_matvec_batch  # noqa: E402
from sim.crossbar.costs import PeripheryCosts, mvm_cost, mvm_events  # noqa: E402
from sim.crossbar.device import DeviceParams  # noqa: E402
from sim.crossbar.ir_drop import WireParams, column_currents  # noqa: E402
from sim.crossbar.tile import CrossbarLayer  # noqa: E402

N = 256
ALL_EFFECTS = DeviceParams(levels=16, prog_noise=0.03, d2d=0.05, read_noise=0.02, drift_nu=0.05, drift_nu_std=0.01,
                           t_read=3600.0, stuck_on=0.005, stuck_off=0.005, seed=1)


def rate(fn, n_vectors: int, min_time: float = 2.0) -> float:
    """Vectors per second of ``fn`` (which handles ``n_vectors``), best of repeated runs over ``min_time``."""
    fn()
    best, spent = float("inf"), 0.0
    while spent < min_time:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return n_vectors / best


def perplexity_record(max_tokens: int) -> dict:
    """Wall time of one perplexity evaluation on crossbars, against the digital integer view."""
    import torch

    torch.set_num_threads(1)
    from models.mmfree.checkpoint import load_checkpoint
    from models.program.integer_program import IntegerProgram
    from models.eval.perplexity import default_data_path
    from models.text.tokenizer import load_tokenizer
    from experiments.crossbar_perplexity import Evaluator, apply_knob, base_config

    bundled = Path(__file__).resolve().parent.parent / "models" / "bundled"
    ev = Evaluator(IntegerProgram.from_model(load_checkpoint(bundled)), load_tokenizer(bundled),
                   default_data_path().read_text(encoding="utf-8"), max_tokens=max_tokens)
    config = apply_knob(apply_knob(base_config(), "read_noise", 0.02), "stuck_at", 0.01)
    digital, crossbar = ev(None), ev(config)
    print(f"perplexity, first {max_tokens} WikiText-2 test tokens: digital {digital['token_ppl']:.3f} in "
          f"{digital['wall_s']:.1f} s, crossbars {crossbar['token_ppl']:.3f} in {crossbar['wall_s']:.1f} s "
          f"wall ({crossbar['cpu_s']:.1f} s CPU)")
    return record("crossbar", f"bundled model WikiText-2 test perplexity, first {max_tokens} tokens, on 128x128 "
                  "tiles (1-bit DAC, 8-bit ADC, read noise 2 %, stuck-at 1 %)", "wall_s", crossbar["wall_s"], "s",
                  "digital integer view, same tokens", digital["wall_s"])


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--perplexity-tokens", type=int, default=2048,
                        help="tokens of the perplexity evaluation record (default 2048)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    w = rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=(N, N), p=[0.3, 0.4, 0.3])
    codes = numformat.encode_ternary(w)
    xs = rng.integers(-127, 128, size=(256, N))
    periphery = Periphery(adc_bits=8)

    t0 = time.perf_counter()
    ideal = CrossbarLayer(codes, tile_rows=N, tile_cols=N, periphery=periphery)
    t_ideal_prog = time.perf_counter() - t0
    t0 = time.perf_counter()
    noisy = CrossbarLayer(codes, tile_rows=N, tile_cols=N, device=ALL_EFFECTS,
                          periphery=Periphery(adc_bits=8, noise_bits=2), wires=WireParams())
    t_noisy_prog = time.perf_counter() - t0

    gold = ternary_matvec_batch(codes, xs)
    y_ideal, y_noisy = ideal.matvec(xs), noisy.matvec(xs)
    rel = lambda y: np.abs(y - gold).mean() / np.abs(gold).mean()  # noqa: E731
    print(f"256x256 tile, 8-bit ADC (auto range, step 2**{ideal.adc_shift}): mean |error| / mean |W x|: "
          f"ideal {rel(y_ideal):.4f}, all effects {rel(y_noisy):.4f}")

    records = []
    batch_noisy = rate(lambda: noisy.matvec(xs), len(xs))
    batch_ideal = rate(lambda: ideal.matvec(xs), len(xs))
    records.append(record("crossbar", "256x256 tile, all effects on, batches of 256 vectors", "mvms_per_s",
                          batch_noisy, "1/s", "ideal mode, same batches", batch_ideal))
    x1 = xs[:32]
    single_noisy = rate(lambda: [noisy.matvec(x) for x in x1], len(x1))
    single_ideal = rate(lambda: [ideal.matvec(x) for x in x1], len(x1))
    records.append(record("crossbar", "256x256 tile, all effects on, one vector per call", "mvms_per_s",
                          single_noisy, "1/s", "ideal mode, one vector per call", single_ideal))
    records.append(record("crossbar", "256x256 tile, programming (all effects incl. IR-drop transfer matrix)",
                          "program_s", t_noisy_prog, "s", "ideal mode programming", t_ideal_prog))

    # the alternative to the transfer matrix: one nodal solve per slice of every MVM
    phys = np.empty((N, 2 * N))
    phys[:, 0::2], phys[:, 1::2] = noisy.tiles[0].array.g_pos, noisy.tiles[0].array.g_neg
    volts = slice_inputs(xs[0], 8, 1).T * periphery.v_read
    t0 = time.perf_counter()
    column_currents(phys, volts, WireParams(), method="pcg")
    t_solve = time.perf_counter() - t0
    records.append(record("crossbar", "256x256 tile, IR drop by a fresh nodal solve per MVM (8 slices, PCG)",
                          "mvms_per_s", 1 / t_solve, "1/s", "transfer matrix, one vector per call", single_noisy))

    records.append(perplexity_record(args.perplexity_tokens))

    costs = PeripheryCosts.load()
    ev = mvm_events(N, N, N, N, periphery, costs.columns_per_adc)
    c = mvm_cost(ev, periphery, costs)
    print(f"per MVM: {ev.adc_conversions} ADC conversions, {c['total_pj'] / 1e3:.2f} nJ "
          f"(ADC {c['energy_pj']['adc'] / 1e3:.2f} nJ), latency {c['latency_ns']:.0f} ns")
    for r in records:
        print(f"{r['case']}: {r['value']:.4g} {r['unit']} vs {r['baseline']} {r['baseline_value']:.4g}")
    print(write_records("crossbar", records))


if __name__ == "__main__":
    main()
