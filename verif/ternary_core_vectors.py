"""Stimulus and expected words for the ternary core, from the golden matvec and ``numformat.apply_scale``.

Each phase carries the weight image, the activation vectors, one ``(multiplier, shift)`` per vector
(packed as the ``scale`` beat) and the expected scaled results. Named corner cases: all-zero input,
max fan-in of +1/-1 weights at the activation extremes, saturation at both ends, the largest left
shift, right shifts beyond the clip, and a zero multiplier.
"""

from __future__ import annotations

import numpy as np

from hw.ternary_core import SCALE_MULTIPLIER_BITS, TernaryCore, pack_scale, weight_memory_image
from models.program import numformat
from models.program.ternary_kernels import ternary_matvec_batch

from verif.ternary_matvec_vectors import random_activations, random_ternary

__all__ = ["make_vectors"]


def _phase(name: str, unit: TernaryCore, weights, xs, mults, shifts, stalls: bool) -> dict:
    codes = numformat.encode_ternary(weights.T)
    acc = ternary_matvec_batch(codes, xs, None, unit.act_bits)
    mults = np.asarray(mults, dtype=np.int64).reshape(-1, 1)
    shifts = np.asarray(shifts, dtype=np.int64).reshape(-1, 1)
    expected = numformat.apply_scale(acc, mults, shifts, unit.out_bits)
    return {
        "name": name,
        "weight_words": weight_memory_image(weights, unit.lanes),
        "vectors": np.asarray(xs).astype(int).tolist(),
        "scales": [pack_scale(int(a), int(s)) for a, s in zip(mults[:, 0], shifts[:, 0])],
        "expected": expected.astype(int).tolist(),
        "stalls": stalls,
    }


def make_vectors(unit: TernaryCore, *, seed: int, n_random: int) -> dict:
    """Phases for ``unit``: ``n_random`` random vectors with random sparsity and scales (with stalls), an
    unstalled throughput run, and the named corner cases."""
    rng = np.random.default_rng(seed)
    n, k = unit.out_features, unit.fan_in
    lo, hi = numformat.act_range(unit.act_bits)
    acc_bits = unit.acc_bits

    def random_weights():
        return random_ternary(rng, n, k)

    def random_acts(count):
        return random_activations(rng, count, k, unit.act_bits)

    def random_scales(count):
        mult = rng.integers(1 << (SCALE_MULTIPLIER_BITS - 2), (1 << (SCALE_MULTIPLIER_BITS - 1)) + 1, size=count)
        # centred where acc * mult lands in 32 bits, with both tails (saturation, rounding to 0)
        shift = rng.integers(acc_bits + 17 - 40, acc_bits + 17 + 4, size=count)
        return mult, shift

    ones = np.ones((n, k), dtype=np.int8)
    extremes = np.array([np.full(k, lo), np.full(k, hi)])
    big = (1 << SCALE_MULTIPLIER_BITS) - 1
    return {
        "unit": "ternary_core",
        "seed": seed,
        "phases": [
            _phase("random", unit, random_weights(), random_acts(n_random), *random_scales(n_random), stalls=True),
            _phase("throughput_no_stalls", unit, random_weights(), random_acts(16), *random_scales(16), stalls=False),
            _phase("all_zero_input", unit, random_weights(), np.zeros((3, k), dtype=int), [big, 1, 0], [-22, 0, 5],
                   stalls=True),
            _phase("max_fan_in_plus_one", unit, ones, extremes, [big, big], [0, 0], stalls=True),
            _phase("max_fan_in_minus_one", unit, -ones, extremes, [1 << 16, 1 << 16], [16, 16], stalls=True),
            _phase("saturation_both_ends", unit, ones, extremes, [big, big], [-22, -22], stalls=True),
            _phase("left_shift_clipped", unit, random_weights(), random_acts(4), [3, 3, 1, 1], [-40, -128, -23, -22],
                   stalls=True),
            _phase("right_shift_clipped", unit, ones, np.concatenate([extremes, extremes]), [big] * 4,
                   [60, 62, 63, 127], stalls=True),
            _phase("zero_multiplier", unit, random_weights(), random_acts(3), [0, 0, 0], [0, -5, 30], stalls=True),
        ],
    }
