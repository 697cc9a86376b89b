"""Stimulus and expected words for the elementwise unit, from the golden model and the spec.

The MLGRU cell and the GLU cell are checked against the golden model's own kernels
(:func:`models.program.golden._mlgru_cell`, :func:`models.program.golden._glu`), state ``h`` carried from token to token;
the BitLinear front end against :func:`models.program.numformat.absmax_quantize`, ``sum_of_squares`` and
``bitlinear_scale``. One vector is one token of one part. Named corner cases: sigmoid input out of
range, state saturation, lower bound 1.0, output saturation, all-zero inputs, a host-written state,
the largest ``|z| = |u * gain|`` (int32 inputs, int16 gains), an all-zero gain, tiny inputs (negative rsqrt exponents).
"""

from __future__ import annotations

import numpy as np

from hw.elementwise import Elementwise
from hw.ternary_core import SCALE_MULTIPLIER_BITS, SCALE_SHIFT_BITS, pack_scale
from models.program import golden
from models.program import numformat as nf

__all__ = ["make_vectors"]

MAX32, MIN32 = (1 << 31) - 1, -(1 << 31)


def _u32(values) -> list[int]:
    return [int(v) & 0xFFFFFFFF for v in np.asarray(values).ravel()]


def _signed(value: int, bits: int) -> int:
    return value - (1 << bits) if value >> (bits - 1) else value


class _Reference:
    """The golden parts with their state, advanced phase by phase."""

    def __init__(self, unit: Elementwise):
        self.c, self.m, self.n = unit.cell.channels, unit.glu.width, unit.front.fan_in
        self.h = np.zeros(self.c, dtype=np.int64)
        self.lb = np.zeros(self.c, dtype=np.int64)
        self.gn = np.zeros(self.c, dtype=np.int64)
        self.gain = np.zeros(self.n, dtype=np.int64)
        self.static = (1 << 15, 20)

    def cell(self, y: np.ndarray) -> list[int]:
        out = []
        v = np.zeros(self.c, dtype=np.int64)
        for yi, yf, yg in y:
            golden._mlgru_cell(yi.copy(), yf.copy(), yg.copy(), self.lb, self.gn, self.h, v)
            out += v.tolist()
        return out

    def glu(self, gu: np.ndarray) -> list[int]:
        out = []
        v = np.zeros(self.m, dtype=np.int64)
        for row in gu:
            golden._glu(row.copy(), self.m, v, nf.GLU_ACTIVATIONS.index("silu"))   # the RTL unit is SiLU only
            out += v.tolist()
        return out

    def front(self, u: np.ndarray) -> tuple[list[int], list[int]]:
        z = u * self.gain  # exact (48 bits), as the spec says
        codes, zmax = nf.absmax_quantize(z)
        ss, k = nf.sum_of_squares(u)
        mult, shift = nf.bitlinear_scale(self.static[0], self.static[1], zmax, ss, k)
        lo, hi = -(1 << (SCALE_SHIFT_BITS - 1)), (1 << (SCALE_SHIFT_BITS - 1)) - 1
        scales = [_signed(pack_scale(int(a), int(min(hi, max(lo, s)))), SCALE_MULTIPLIER_BITS + SCALE_SHIFT_BITS)
                  for a, s in zip(mult[:, 0], shift[:, 0])]
        return codes.ravel().tolist(), scales


def _q16(rng, shape, scales=(0.05, 0.5, 2.0, 8.0, 40.0)):
    """Q OUT_FRAC values at mixed magnitudes, a few at the int32 extremes."""
    s = rng.choice(scales, size=shape[:-1] + (1,))
    v = np.round(rng.normal(0, 1, size=shape) * s * (1 << nf.OUT_FRAC)).astype(np.int64)
    v = np.where(rng.random(shape) < 0.01, rng.choice([MIN32, MAX32], size=shape), v)
    return nf.saturate(v, 32)


def make_vectors(unit: Elementwise, *, seed: int, n_random: int) -> dict:
    """Phases for ``unit``: parameter loads, ``n_random`` random tokens of each part at once (stalled),
    an unstalled run and the named corner cases."""
    rng = np.random.default_rng(seed)
    ref = _Reference(unit)
    c, m, n = ref.c, ref.m, ref.n
    phases = []

    def phase(name, stalls, cell=None, glu=None, front=None, writes=()):
        feeds, expect, vectors = {}, {}, 0
        if cell is not None:
            feeds["cell_in"] = [int(a & 0xFFFFFFFF) | (int(b & 0xFFFFFFFF) << 32) | (int(g & 0xFFFFFFFF) << 64)
                                for tok in cell for a, b, g in zip(*tok)]
            expect["cell_out"] = ref.cell(cell)
            vectors += len(cell)
        if glu is not None:
            feeds["glu_in"] = [int(v) for v in glu.ravel()]
            expect["glu_out"] = ref.glu(glu)
            vectors += len(glu)
        if front is not None:
            feeds["front_in"] = [int(v) for v in front.ravel()]
            expect["front_codes"], expect["front_scale"] = ref.front(front)
            vectors += len(front)
        phases.append({"name": name, "writes": list(writes), "feeds": feeds, "expect": expect, "stalls": stalls,
                       "width": {"cell_out": c, "glu_out": m, "front_codes": n}, "vectors": vectors})

    def load_cell(lb, gn):
        ref.lb[:], ref.gn[:] = lb, gn
        return [["lower_bound", 0, [int(v) for v in lb]], ["g_norm_gain", 0, _u32(gn)]]

    def load_front(gain, mult, shift):
        ref.gain[:], ref.static = gain, (mult, shift)
        return [["front_gain", 0, _u32(gain)], ["front_static", 0, [mult, shift & 0xFFFF]]]

    one, unit_gain = 1 << nf.GATE_FRAC, 1 << nf.GAIN_FRAC
    lb = np.where(rng.random(c) < 0.3, 0, rng.integers(0, one + 1, size=c))
    gn = np.round(rng.normal(1, 0.5, size=c) * unit_gain).astype(np.int64)
    gain = np.round(rng.normal(1, 0.5, size=n) * unit_gain).astype(np.int64)
    writes = load_cell(lb, gn) + load_front(gain, *(int(v) for v in
                                                    (rng.integers(1 << 15, 1 << 16), rng.integers(14, 30))))
    phase("random", True, cell=_q16(rng, (n_random, 3, c)), glu=_q16(rng, (n_random, 2 * m)),
          front=_q16(rng, (n_random, n), scales=(1e-3, 0.05, 1.0, 30.0, 1e3)), writes=writes)
    phase("throughput_no_stalls", False, cell=_q16(rng, (16, 3, c)), glu=_q16(rng, (16, 2 * m)),
          front=_q16(rng, (16, n)))

    edges = np.array([MIN32, MAX32, -(17 << 16), 17 << 16, -(16 << 16), 16 << 16, -1, 0, 1] * c)[:c]
    phase("sigmoid_out_of_range", True, cell=np.stack([np.stack([edges, edges, edges]),
                                                       np.stack([edges[::-1], edges, nf.saturate(-edges, 32)])]),
          glu=np.stack([np.concatenate([edges[:m] if m <= c else np.resize(edges, m), np.full(m, 1 << 16)])]))
    big = np.full(c, MAX32)
    phase("state_saturation", True, cell=np.stack([np.stack([big, np.zeros(c, dtype=np.int64), big])] * 3),
          writes=load_cell(np.zeros(c, dtype=np.int64), np.full(c, MAX32)))
    phase("lower_bound_one", True, cell=_q16(rng, (3, 3, c)), writes=load_cell(np.full(c, one), gn))
    phase("output_saturation", True, cell=np.stack([np.stack([big, big, big]), np.stack([-big, big, -big])]),
          glu=np.stack([np.full(2 * m, MAX32), np.concatenate([np.full(m, MAX32), np.full(m, MIN32)])]))
    h0 = rng.integers(-(1 << 23), 1 << 23, size=c)
    ref.h[:] = h0
    phase("host_written_state", True, cell=_q16(rng, (2, 3, c)), writes=load_cell(lb, gn) + [["state", 0, [
        int(v) & 0xFFFFFF for v in h0]]])
    phase("all_zero", True, cell=np.zeros((2, 3, c), dtype=np.int64), glu=np.zeros((2, 2 * m), dtype=np.int64),
          front=np.zeros((2, n), dtype=np.int64))
    extreme_gain = np.where(np.arange(n) % 2 == 0, (1 << 15) - 1, -(1 << 15))  # int16 extremes
    phase("z_max_magnitude", True, front=np.stack([np.full(n, MAX32), np.full(n, MIN32), _q16(rng, (1, n))[0]]),
          writes=load_front(extreme_gain, (1 << 16) - 1, 40))
    phase("all_zero_gain", True, front=_q16(rng, (2, n)), writes=load_front(np.zeros(n, dtype=np.int64), 40000, 20))
    phase("tiny_inputs_one_hot", True, front=np.stack([np.eye(n, dtype=np.int64)[0], np.eye(n, dtype=np.int64)[-1] * -3,
                                                       rng.integers(-2, 3, size=n)]),
          writes=load_front(gain, 50000, 0))
    return {"unit": "elementwise", "seed": seed, "phases": phases}
