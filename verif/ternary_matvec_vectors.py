"""Stimulus and expected words for the ternary matrix-vector unit, computed by the golden function.

Everything here runs before the simulator starts (so the cocotb module stays free of Amaranth and
Numba): fixed-seed random phases plus the named corner cases, each with its expected outputs from
:func:`models.program.ternary_kernels.ternary_matvec`.
"""

from __future__ import annotations

import numpy as np

from hw.ternary_matvec import TernaryMatVec, weight_memory_image
from models.program import numformat
from models.program.ternary_kernels import ternary_matvec

__all__ = ["make_vectors", "random_ternary", "random_activations"]


def random_ternary(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """An (n, k) ternary matrix: 30 % -1, 40 % 0, 30 % +1."""
    return rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=(n, k), p=[0.3, 0.4, 0.3])


def random_activations(rng: np.random.Generator, count: int, k: int, act_bits: int) -> np.ndarray:
    """``count`` activation vectors of length ``k``, each with a random sparsity of 0, 50, 90 or 100 %."""
    lo, hi = numformat.act_range(act_bits)
    xs = rng.integers(lo, hi + 1, size=(count, k))
    sparsity = rng.choice([0.0, 0.5, 0.9, 1.0], size=(count, 1), p=[0.3, 0.3, 0.3, 0.1])
    return np.where(rng.random((count, k)) < sparsity, 0, xs)


def _phase(name: str, unit: TernaryMatVec, weights: np.ndarray, xs: np.ndarray, stalls: bool) -> dict:
    codes = numformat.encode_ternary(weights.T)  # golden layout: (fan_in, out)
    expected = [ternary_matvec(codes, x, unit.out_bits, unit.act_bits)[0].tolist() for x in xs]
    return {
        "name": name,
        "weight_words": weight_memory_image(weights, unit.lanes),
        "vectors": xs.astype(int).tolist(),
        "expected": expected,
        "stalls": stalls,
    }


def make_vectors(unit: TernaryMatVec, *, seed: int, n_random: int) -> dict:
    """Phases of stimulus for ``unit``: random vectors with random sparsity (with stalls), an unstalled
    throughput run, and the corner cases ``all_zero_input``, ``all_plus_one_max_fan_in``,
    ``all_minus_one_max_fan_in`` and ``saturation`` (which saturates only when ``out_bits`` is
    narrower than the accumulator)."""
    rng = np.random.default_rng(seed)
    n, k = unit.out_features, unit.fan_in
    lo, hi = numformat.act_range(unit.act_bits)

    def random_weights():
        return random_ternary(rng, n, k)

    def random_acts(count):
        return random_activations(rng, count, k, unit.act_bits)

    extremes = np.array([np.full(k, lo), np.full(k, hi)])
    ones = np.ones((n, k), dtype=np.int8)
    mixed = np.where(np.arange(k)[None, :] % 2 == 0, ones, -ones)
    return {
        "unit": "ternary_matvec",
        "seed": seed,
        "phases": [
            _phase("random", unit, random_weights(), random_acts(n_random), stalls=True),
            _phase("throughput_no_stalls", unit, random_weights(), random_acts(16), stalls=False),
            _phase("all_zero_input", unit, random_weights(), np.zeros((4, k), dtype=int), stalls=True),
            _phase("all_plus_one_max_fan_in", unit, ones, extremes, stalls=True),
            _phase("all_minus_one_max_fan_in", unit, -ones, extremes, stalls=True),
            _phase("saturation", unit, mixed, np.array([np.where(mixed[0] > 0, hi, lo),
                                                        np.where(mixed[0] > 0, lo, hi)]), stalls=True),
        ],
    }
