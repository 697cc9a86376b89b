"""Golden ternary matrix-vector product: event-driven Numba kernel vs a dense NumPy integer baseline.

Cases: a 1024 x 1024 layer (the 370M width) at 0%, 50% and 90% zero activations. The baseline is
``W_int8 @ x`` dense in NumPy (int32), the same integers computed without skipping zeros.
Run: ``python bench/bench_ternary_matvec.py`` → ``bench/results/ternary_matvec.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import best_time, record, write_records  # noqa: E402
from models.program import numformat  # noqa: E402
from models.program.ternary_kernels import ternary_matvec  # noqa: E402


def main() -> None:
    rng = np.random.default_rng(0)
    k = n = 1024
    w = rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=(n, k), p=[0.3, 0.4, 0.3])
    codes = numformat.encode_ternary(w.T)
    records = []
    for sparsity in (0.0, 0.5, 0.9):
        x = rng.integers(-127, 128, size=k)
        x[rng.random(k) < sparsity] = 0
        y, _ = ternary_matvec(codes, x)
        assert np.array_equal(y, w.astype(np.int32) @ x.astype(np.int32))
        t_event = best_time(lambda: ternary_matvec(codes, x))
        x32 = x.astype(np.int32)
        w32 = w.astype(np.int32)
        t_dense = best_time(lambda: w32 @ x32)
        case = f"1024x1024, {int(sparsity * 100)}% zero activations"
        records.append(record("ternary_matvec", case, "matvecs_per_s", 1 / t_event, "1/s",
                              "numpy dense int32 W@x", 1 / t_dense))
        print(f"{case}: event-driven {1e6 * t_event:.0f} us, dense numpy {1e6 * t_dense:.0f} us, "
              f"speed ratio {t_dense / t_event:.2f}")
    print(write_records("ternary_matvec", records))


if __name__ == "__main__":
    main()
