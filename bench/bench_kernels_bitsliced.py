"""The bit-sliced ternary kernel (:mod:`models.program.bitsliced`, the golden model's) on one matvec.

Cases: the 370M shapes' matrices — 1024 x 1024 (``i/f/g/o_proj``), 5632 x 1024 (``gate_proj``), 1024 x 2816
(``down_proj``), 32000 x 1024 (``lm_head``) — with int8 activations. Baselines, in the same run, one thread
like the kernel, each checked exact against int64 first: **fp32 BLAS** (NumPy/OpenBLAS; exact, every
partial sum an integer below 2**24) and **int8 dense** (``torch._int_mm``); plus, for 1024 x 1024, the
event-driven reference kernel (:func:`models.program.ternary_kernels.ternary_matvec`) at 0 / 50 / 90 % zero
activations (the bit-sliced kernel's time does not depend on zeros). Medians of 15 calls per round over 5
rounds (the candidates interleaved round by round), the calling thread pinned to core 0, the load
average recorded (``load_average_1min``). Run: ``python bench/bench_kernels_bitsliced.py`` →
``bench/results/kernels_bitsliced.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # NumPy's BLAS on one thread (read when NumPy loads)
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import record, write_records  # noqa: E402
from models.program import numformat  # noqa: E402
from models.program.bitsliced import BitslicedWeights, matvec  # noqa: E402
from models.program.ternary_kernels import ternary_matvec  # noqa: E402

SEED = 0
BENCH = "kernels_bitsliced"
FP32 = "fp32 BLAS W_f32 @ x_f32 (NumPy/OpenBLAS, 1 thread; exact, |sum| < 2^24)"
SHAPES = {"i/f/g/o_proj": (1024, 1024), "gate_proj": (5632, 1024), "down_proj": (1024, 2816), "lm_head": (32000, 1024)}


def median_times(fns: dict, calls: int = 15, rounds: int = 5) -> dict:
    """Median seconds per call of each function, ``calls`` timed calls per round, the functions interleaved."""
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            fn()
            for _ in range(calls):
                t0 = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    import torch

    torch.set_num_threads(1)
    os.sched_setaffinity(0, {0})
    load = os.getloadavg()[0]
    print(f"load average {load:.2f} on {os.cpu_count()} cores")
    rng = np.random.default_rng(SEED)
    records = [record(BENCH, "all cases", "load_average_1min", load, "processes", "cores", os.cpu_count())]
    for proj, (fan_out, fan_in) in SHAPES.items():
        w = rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=(fan_out, fan_in), p=[0.3, 0.4, 0.3])
        bw = BitslicedWeights(w)
        w32 = w.astype(np.float32)
        tw = torch.from_numpy(w)
        for zero in (0.0, 0.5, 0.9) if proj == "i/f/g/o_proj" else (0.0,):
            x = rng.integers(-127, 128, size=fan_in)
            x[rng.random(fan_in) < zero] = 0
            ref = w.astype(np.int64) @ x
            x32, tx = x.astype(np.float32), torch.from_numpy(x.astype(np.int8)).reshape(-1, 1)
            fns = {"bitsliced": lambda: matvec(bw, x), FP32: lambda: w32 @ x32,
                   "int8 dense torch._int_mm (int8 x int8 -> int32, 1 thread)": lambda: torch._int_mm(tw, tx).numpy()}
            if proj == "i/f/g/o_proj":
                codes = numformat.encode_ternary(w.T)
                fns["event-driven reference kernel (ternary_kernels.ternary_matvec, 1 thread)"] = \
                    lambda: ternary_matvec(codes, x)[0]
            for label, fn in fns.items():
                assert np.array_equal(np.asarray(fn()).reshape(-1).astype(np.int64), ref), f"{label} is not exact"
            t = median_times(fns)
            mine = t.pop("bitsliced")
            case = f"{proj} {fan_out}x{fan_in}, {int(zero * 100)}% zero activations"
            gmacs = fan_out * fan_in / mine / 1e9
            line = [f"{case}: bit-sliced {mine * 1e6:.0f} us ({gmacs:.1f} GMAC/s)"]
            for label, tb in t.items():
                records.append(record(BENCH, case, "matvecs_per_s", 1 / mine, "1/s", label, 1 / tb))
                line.append(f"{label.split(' (')[0]} {tb * 1e6:.0f} us ({tb / mine:.2f}x)")
            records.append(record(BENCH, case, "giga_ternary_macs_per_s", gmacs, "GMAC/s",
                                  "fp32 BLAS, 1 thread", fan_out * fan_in / t[FP32] / 1e9))
            print("; ".join(line))
    print(f"load average now {os.getloadavg()[0]:.2f}")
    print(write_records(BENCH, records, seed=SEED))


if __name__ == "__main__":
    main()
