"""The integer crossbar tile (what the RTL computes): DAC slices, column sums, LFSR noise, ADC, shift-and-add.

The analog array enters as its quantised cells (signed integers, ``level+ - level-`` of a ``G+/G-`` pair);
the device physics that produces them lives in :mod:`sim.crossbar.device`, the layer execution in
:mod:`sim.crossbar.tile`. For every input vector :func:`tile_mvm_integer`:

1. **Bit-serial DAC**: the ``act_bits`` two's complement activations are cut into ``act_bits / dac_bits``
   slices, least significant first: slice ``j`` is bits ``[j d, (j+1) d)`` as an unsigned value, except the
   top slice, which is signed (so ``x = sum_j s_j 2**(j d)``), :func:`slice_inputs`.
2. **Columns**: the column value is the integer ``sum_i s_i c_ij``.
3. **Deterministic noise** (optional): ``noise_bits`` LFSR noise added at the ADC input (below).
4. **ADC**: ``code = saturate(round_half_away(I / 2**adc_shift), adc_bits)``.
5. **Shift-and-add**: ``raw = sum_j code_j 2**(j d)``.

LFSR noise: a 32-bit Galois LFSR (right shift, feedback mask :data:`LFSR_MASK`: x^32 + x^22 + x^2 + x + 1,
from the maximal-length tap table of Xilinx XAPP052). For every vector, slice (LSB first) and column
(0 first) the LFSR steps once and its low ``noise_bits`` bits, read as two's complement, are the noise.
:class:`hw.crossbar_tile.CrossbarTile` implements the same sequence, so both take the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from models.program import numformat

__all__ = ["LFSR_BITS", "LFSR_MASK", "MAX_NOISE_BITS", "lfsr_next", "lfsr_noise", "Periphery", "slice_inputs",
           "tile_mvm_integer"]

LFSR_BITS = 32
LFSR_MASK = 0x80200003
#: Widest LFSR noise (more than half the LFSR would repeat its own bits).
MAX_NOISE_BITS = 16


def lfsr_next(state: int) -> int:
    """One step of the Galois LFSR."""
    return (state >> 1) ^ (LFSR_MASK if state & 1 else 0)


def lfsr_noise(state: int, bits: int) -> int:
    """The low ``bits`` bits of ``state`` as a two's complement integer."""
    v = state & ((1 << bits) - 1)
    return v - (1 << bits) if v >> (bits - 1) else v


@numba.njit(cache=True, nogil=True)
def _lfsr_fill(state, bits, out):
    mask = (np.uint64(1) << np.uint64(bits)) - np.uint64(1)
    half = np.int64(1) << np.int64(bits - 1)
    s = np.uint64(state)
    flat = out.reshape(-1)
    for k in range(flat.shape[0]):
        if s & np.uint64(1):
            s = (s >> np.uint64(1)) ^ np.uint64(LFSR_MASK)
        else:
            s = s >> np.uint64(1)
        v = np.int64(s & mask)
        flat[k] = v - 2 * half if v >= half else v
    return np.int64(s)


@dataclass(frozen=True)
class Periphery:
    """DAC, ADC and noise settings of every tile.

    Parameters
    ----------
    act_bits : int
        Activation width (:data:`models.program.numformat.ACT_BITS_ALLOWED`).
    dac_bits : int
        Bits applied per read; must divide ``act_bits``.
    adc_bits : int
        ADC resolution (>= 1), signed codes.
    adc_shift : int or None
        ADC step ``2**adc_shift`` in column units; None: the smallest step without clipping.
    noise_bits : int
        LFSR noise width at the ADC input (0: off), at most :data:`MAX_NOISE_BITS`.
    lfsr_seed : int
        LFSR state after reset (``1 .. 2**32 - 1``); tile ``t > 0`` of a layer derives its own.
    v_read : float
        Full-scale read voltage (V). The currents scale with it; the integer results do not.
    """

    act_bits: int = numformat.ACT_BITS
    dac_bits: int = 1
    adc_bits: int = 8
    adc_shift: int | None = None
    noise_bits: int = 0
    lfsr_seed: int = 1
    v_read: float = 0.2

    def __post_init__(self):
        numformat.check_act_bits(self.act_bits)
        for name, label in (("dac_bits", "DAC bits"), ("adc_bits", "ADC bits"), ("noise_bits", "Noise bits"),
                            ("lfsr_seed", "LFSR seed")):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"{label} must be an integer, not {v!r}")
        if not 1 <= self.dac_bits <= self.act_bits or self.act_bits % self.dac_bits:
            raise ValueError(f"DAC bits {self.dac_bits} must divide the activation width {self.act_bits}")
        if self.adc_bits < 1:
            raise ValueError(f"ADC bits must be at least 1, not {self.adc_bits}")
        if self.adc_bits > 32:
            raise ValueError(f"ADC bits must be at most 32, not {self.adc_bits}")
        if self.adc_shift is not None and (isinstance(self.adc_shift, bool) or not isinstance(self.adc_shift, int)
                                           or not 0 <= self.adc_shift <= 40):
            raise ValueError(f"ADC shift must be None or an integer in [0, 40], not {self.adc_shift!r}")
        if not 0 <= self.noise_bits <= MAX_NOISE_BITS:
            raise ValueError(f"Noise bits must be in [0, {MAX_NOISE_BITS}], not {self.noise_bits}")
        if not 1 <= self.lfsr_seed < 1 << LFSR_BITS:
            raise ValueError(f"LFSR seed must be in [1, 2**{LFSR_BITS} - 1] (0 locks the LFSR), not {self.lfsr_seed}")
        if not self.v_read > 0:
            raise ValueError(f"Read voltage must be positive, not {self.v_read!r}")

    @property
    def slices(self) -> int:
        """Reads per input vector: ``act_bits / dac_bits``."""
        return self.act_bits // self.dac_bits

    @property
    def max_slice(self) -> int:
        """Largest ``|slice value|``: ``2**d - 1`` (or ``2**(d-1)`` when one slice carries the whole value)."""
        return (1 << self.dac_bits) - 1 if self.slices > 1 else 1 << (self.dac_bits - 1)

    def resolve_shift(self, tile_rows: int, cell_max: int) -> int:
        """``adc_shift``, or the smallest step whose range holds ``tile_rows * max_slice * cell_max``."""
        if self.adc_shift is not None:
            return self.adc_shift
        worst = tile_rows * self.max_slice * cell_max
        top = max(1, (1 << (self.adc_bits - 1)) - 1)
        shift = 0
        while top << shift < worst:
            shift += 1
        return shift


def slice_inputs(x: np.ndarray, act_bits: int, dac_bits: int) -> np.ndarray:
    """``(..., K)`` activations -> ``(..., S, K)`` DAC slices, least significant first, top slice signed."""
    x = np.asarray(x, dtype=np.int64)
    s = act_bits // dac_bits
    shifts = (np.arange(s) * dac_bits).reshape((s, 1))
    sl = (x[..., None, :] >> shifts) & ((1 << dac_bits) - 1)
    sl[..., s - 1, :] = x >> ((s - 1) * dac_bits)
    return sl


def _adc(values: np.ndarray, shift: int, bits: int) -> tuple[np.ndarray, int]:
    """ADC codes of column values (integer or real) and how many of them clipped."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if values.dtype.kind == "i":
        q = numformat.round_shift(values, shift)
    else:
        v = values / float(1 << shift)
        q = (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int64)
    return np.clip(q, lo, hi), int(((q < lo) | (q > hi)).sum())


def _matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n, S, R) @ (R, C)`` as one 2-D BLAS product."""
    return (a.reshape(-1, a.shape[-1]) @ b).reshape(a.shape[:-1] + (b.shape[-1],))


def _shift_add(codes: np.ndarray, dac_bits: int) -> np.ndarray:
    weights = np.int64(1) << (np.arange(codes.shape[-2], dtype=np.int64) * dac_bits)
    return (codes * weights[:, None]).sum(axis=-2)


def _integer_codes(cells, xs, periphery, adc_shift, lfsr_state):
    sl = slice_inputs(xs, periphery.act_bits, periphery.dac_bits)              # (n, S, R)
    cols = _matmul(sl.astype(np.float64), cells.astype(np.float64)).astype(np.int64)  # exact: |sum| < 2**53
    if periphery.noise_bits:
        noise = np.empty(cols.shape, dtype=np.int64)
        lfsr_state = int(_lfsr_fill(lfsr_state, periphery.noise_bits, noise))
        cols = cols + noise
    codes, clipped = _adc(cols, adc_shift, periphery.adc_bits)
    return codes, clipped, lfsr_state


def tile_mvm_integer(cells: np.ndarray, xs: np.ndarray, periphery: Periphery, adc_shift: int,
                     lfsr_state: int) -> tuple[np.ndarray, int]:
    """The integer tile (what the RTL computes): ``raw`` outputs of ``xs`` (n, R) on ``cells`` (R, C).

    Returns ``(raw (n, C) int64, LFSR state after the last draw)``.
    """
    codes, _, lfsr_state = _integer_codes(np.asarray(cells), np.atleast_2d(xs), periphery, adc_shift, lfsr_state)
    return _shift_add(codes, periphery.dac_bits), lfsr_state
