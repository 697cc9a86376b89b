"""Golden ternary matrix-vector product: the event-driven Numba kernel against the strongest dense baselines.

Cases: a 1024 x 1024 layer (the 370M width), int8 activations with 0 %, 50 % and 90 % zeros. Every baseline
computes the same integers densely, on one thread like the kernel, in the same run, and is checked equal to
the kernel's output:

* **fp32 BLAS**, ``W_f32 @ x_f32`` through NumPy's OpenBLAS: exact here, since every partial sum is an
  integer with ``|sum| <= 1024 * 127 < 2**24``;
* **int8 dense**, ``torch._int_mm`` (int8 x int8 -> int32 through oneDNN), the strongest of them;
* extra, labelled weak: **NumPy int32** ``W @ x`` (NumPy's integer matmul does not use BLAS).

and, when other jobs leave every core free, **fp32 BLAS on every core** (``torch.mv``). On a busy machine a
multi-thread call waits for a core another job holds (``torch.mv`` on 2 threads measured 66 us in one case
and 3.6-7.9 ms, best of 300, in the next at load average 3 on 2 cores), so it is then left out and the
script says so.
Run: ``python bench/bench_ternary_matvec.py`` -> ``bench/results/ternary_matvec.json``.
"""

from __future__ import annotations

import os

os.environ["OPENBLAS_NUM_THREADS"] = "1"  # NumPy's BLAS on one thread, like the kernel (read when NumPy loads)

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import best_times, free_cores, record, write_records  # noqa: E402
from models.program import numformat  # noqa: E402
from models.program.ternary_kernels import ternary_matvec  # noqa: E402

SEED = 0
K = N = 1024


def baselines(w: np.ndarray, x: np.ndarray) -> dict:
    """``{label: zero-argument function returning W @ x as int64}`` for every dense baseline."""
    import torch

    w32, x32 = w.astype(np.float32), x.astype(np.float32)
    wi, xi = w.astype(np.int32), x.astype(np.int32)
    tw8, tx8 = torch.from_numpy(w.astype(np.int8)), torch.from_numpy(x.astype(np.int8)).reshape(-1, 1)

    def on(threads, fn):
        """``fn`` run on ``threads`` torch threads (set on every call: free when unchanged, and each timed block
        starts with a warm-up call)."""
        def run():
            torch.set_num_threads(threads)
            return fn()
        return run

    fns = {
        "fp32 BLAS W_f32 @ x_f32 (NumPy/OpenBLAS, 1 thread; exact, |sum| < 2^24)": lambda: w32 @ x32,
        "int8 dense torch._int_mm (int8 x int8 -> int32, 1 thread)": on(1, lambda: torch._int_mm(tw8, tx8).numpy()),
        "extra, weak: NumPy int32 W @ x (no BLAS)": lambda: wi @ xi,
    }
    cores = os.cpu_count()
    if cores > 1 and free_cores() >= cores - 0.5:
        tw32, tx32 = torch.from_numpy(w32), torch.from_numpy(x32)
        fns[f"fp32 BLAS torch.mv ({cores} threads; exact)"] = on(cores, lambda: torch.mv(tw32, tx32).numpy())
    else:
        print(f"note: load average {os.getloadavg()[0]:.1f} on {cores} cores: no {cores}-thread baseline")
    return fns


def main() -> None:
    rng = np.random.default_rng(SEED)
    w = rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=(N, K), p=[0.3, 0.4, 0.3])
    codes = numformat.encode_ternary(w.T)
    assert K * 127 < 2 ** 24, "fp32 is exact only while every partial sum is below 2^24"
    records = []
    for sparsity in (0.0, 0.5, 0.9):
        x = rng.integers(-127, 128, size=K)
        x[rng.random(K) < sparsity] = 0
        ref = w.astype(np.int64) @ x.astype(np.int64)
        y, _ = ternary_matvec(codes, x)
        assert np.array_equal(y, ref)
        fns = baselines(w, x)
        for label, fn in fns.items():
            assert np.array_equal(np.asarray(fn()).reshape(-1).astype(np.int64), ref), f"{label} is not exact"
        times = best_times({"kernel": lambda: ternary_matvec(codes, x), **fns}, repeat=30, rounds=10)
        t_event = times.pop("kernel")
        case = f"1024x1024, {int(sparsity * 100)}% zero activations"
        line = [f"{case}: event-driven kernel (1 thread) {1e6 * t_event:.0f} us"]
        for label, t in times.items():
            records.append(record("ternary_matvec", case, "matvecs_per_s", 1 / t_event, "1/s", label, 1 / t))
            line.append(f"{label.split(' (')[0]} {1e6 * t:.0f} us (kernel speed ratio {t / t_event:.2f})")
        print("; ".join(line))
    print(write_records("ternary_matvec", records, seed=SEED))


if __name__ == "__main__":
    main()
