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

Device noise: instead of the LFSR, ``noise`` samples ``(n, S, C)`` in column units (one per vector, slice and
column) are added at the ADC input; :class:`DeviceNoise` draws them from the device model's effects
(programming error, stuck-at devices, read noise) and :func:`check_noise` refuses a sample outside the
ADC's range. The RTL takes them on its noise port.

Timing (:func:`mvm_cycles`, what the RTL tile takes, ISAAC's sample-and-hold pipeline): the ``rows``
activations arrive one per cycle; per slice the array is read at once (``read_cycles``) and sampled,
then ``cols / cols_per_adc`` ADCs convert their ``cols_per_adc`` columns one after another
(``conv_cycles`` each) while the next slice is read; then ``cols`` results leave one per cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

import math

import numba
import numpy as np

from models.program import numformat

__all__ = ["LFSR_BITS", "LFSR_MASK", "MAX_NOISE_BITS", "NOISE_OFF", "NOISE_LFSR", "NOISE_PORT", "lfsr_next",
           "lfsr_noise", "Periphery", "DeviceNoise", "slice_inputs", "adc_range", "check_noise", "check_adc_sharing",
           "mvm_cycles", "timing_cycles", "tile_mvm_integer"]

LFSR_BITS = 32
LFSR_MASK = 0x80200003
#: Widest LFSR noise (more than half the LFSR would repeat its own bits).
MAX_NOISE_BITS = 16
#: Noise sources at the ADC input (the RTL's ``noise_sel``): none, the LFSR, samples on the noise port.
NOISE_OFF, NOISE_LFSR, NOISE_PORT = 0, 1, 2


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


def _integer_codes(cells, xs, periphery, adc_shift, lfsr_state, noise=None):
    sl = slice_inputs(xs, periphery.act_bits, periphery.dac_bits)              # (n, S, R)
    cols = _matmul(sl.astype(np.float64), cells.astype(np.float64)).astype(np.int64)  # exact: |sum| < 2**53
    if noise is not None:
        if periphery.noise_bits:
            raise ValueError("Give either LFSR noise (Periphery.noise_bits) or noise samples, not both")
        noise = np.asarray(noise)
        if noise.shape != cols.shape:
            raise ValueError(f"Noise samples must have shape (vectors, slices, columns) = {cols.shape}, not {noise.shape}")
        check_noise(noise, periphery.adc_bits, adc_shift)
        cols = cols + noise.astype(np.int64)
    elif periphery.noise_bits:
        noise = np.empty(cols.shape, dtype=np.int64)
        lfsr_state = int(_lfsr_fill(lfsr_state, periphery.noise_bits, noise))
        cols = cols + noise
    codes, clipped = _adc(cols, adc_shift, periphery.adc_bits)
    return codes, clipped, lfsr_state


def tile_mvm_integer(cells: np.ndarray, xs: np.ndarray, periphery: Periphery, adc_shift: int,
                     lfsr_state: int, noise: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """The integer tile (what the RTL computes): ``raw`` outputs of ``xs`` (n, R) on ``cells`` (R, C).

    ``noise``: integer samples ``(n, S, C)`` added at the ADC input instead of the LFSR's (the RTL's noise
    port; each must lie in the ADC's range, :func:`check_noise`). Returns ``(raw (n, C) int64, LFSR state
    after the last draw)``.
    """
    codes, _, lfsr_state = _integer_codes(np.asarray(cells), np.atleast_2d(xs), periphery, adc_shift, lfsr_state,
                                          noise)
    return _shift_add(codes, periphery.dac_bits), lfsr_state


def adc_range(adc_bits: int, adc_shift: int) -> tuple[int, int]:
    """The ADC's input range in column units: its lowest and highest code times the step ``2**adc_shift``."""
    return -(1 << (adc_bits - 1)) << adc_shift, ((1 << (adc_bits - 1)) - 1) << adc_shift


def check_noise(noise: np.ndarray, adc_bits: int, adc_shift: int) -> None:
    """Refuse (ValueError, one line) a noise sample outside the ADC's range, naming the first one."""
    lo, hi = adc_range(adc_bits, adc_shift)
    noise = np.asarray(noise)
    bad = np.argwhere((noise < lo) | (noise > hi))
    if bad.size:
        where = tuple(int(i) for i in bad[0])
        raise ValueError(f"Noise sample {int(noise[where])} at (vector, slice, column) {where} lies outside the "
                         f"ADC's range [{lo}, {hi}] ({adc_bits} bits, step 2**{adc_shift}): lower the device noise "
                         f"or widen the ADC step")


def _check_count(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return value


def check_adc_sharing(cols: int, cols_per_adc: int) -> int:
    """The ADC count ``cols / cols_per_adc``; refuses (ValueError, one line) a sharing that does not divide the
    columns."""
    _check_count("Column count", cols)
    _check_count("Columns per ADC", cols_per_adc)
    if cols % cols_per_adc:
        raise ValueError(f"{cols_per_adc} columns per ADC do not divide the tile's {cols} columns: every ADC must "
                         f"serve as many columns, so use a divisor of {cols}")
    return cols // cols_per_adc


def mvm_cycles(rows: int, cols: int, slices: int, cols_per_adc: int, read_cycles: int, conv_cycles: int) -> int:
    """Clock cycles of one MVM on the RTL tile, first activation in to last result out, without stalls:

    ``rows + read + cols_per_adc * conv + (slices - 1) * max(read, cols_per_adc * conv) + cols``

    (``rows`` activations in; the first slice's array read; the conversions of the last slice, each earlier
    slice's conversions overlapping the next read (sample-and-hold), so a slice takes the longer of the two;
    ``cols`` results out). Each operand is a positive integer; ``cols_per_adc`` divides ``cols``.
    """
    for name, v in (("Row count", rows), ("Slice count", slices), ("Read cycles", read_cycles),
                    ("Conversion cycles", conv_cycles)):
        _check_count(name, v)
    check_adc_sharing(cols, cols_per_adc)
    convert = cols_per_adc * conv_cycles
    return rows + read_cycles + convert + (slices - 1) * max(read_cycles, convert) + cols


def timing_cycles(read_ns: float, conversion_ns: float, clock_ns: float) -> tuple[int, int]:
    """``(read_cycles, conv_cycles)``: an array read and one ADC conversion in whole clock cycles (rounded up)."""
    for name, v in (("Read time", read_ns), ("Conversion time", conversion_ns), ("Clock period", clock_ns)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0 or not math.isfinite(v):
            raise ValueError(f"{name} must be a positive number of ns, not {v!r}")
    return math.ceil(read_ns / clock_ns - 1e-9), math.ceil(conversion_ns / clock_ns - 1e-9)


def _round_half_away(v: np.ndarray) -> np.ndarray:
    return (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int64)


@dataclass(frozen=True)
class DeviceNoise:
    """The device model's effects (:mod:`sim.crossbar.device`) as integer noise at the tile's ADC input.

    Units are conductance levels ``g_unit = (G_max - G_min) / (levels - 1)`` above ``G_min``: a ternary weight
    ``w`` targets the device pair ``(levels-1, 0)``, ``(0, 0)`` or ``(0, levels-1)``, so the tile's array
    holds the target cells ``w (levels - 1)``. Programming (:meth:`program`) then moves every device as the
    device model does — programming error ``prog_noise (levels - 1) N(0, 1)`` snapped to the nearest level
    in ``[0, levels - 1]``, then stuck at the top level with probability ``stuck_on`` or at 0 with
    ``stuck_off`` — and every read adds ``N(0, read_noise^2 sum_i s_i^2 (G+_i^2 + G-_i^2))`` (conductances
    in ``g_unit``, ``G_min = (levels - 1) / (on_off - 1)``). :meth:`samples` returns, per vector, slice and
    column, the programmed column minus the target column plus the read noise rounded half away from zero:
    the target cells plus these samples are the device's column exactly (to the rounding of the read noise).

    Parameters
    ----------
    levels : int
        Conductance states per device (>= 2).
    on_off : float
        ``G_max / G_min`` (> 1); the device model's default is 100 (10 uS / 0.1 uS).
    prog_noise, read_noise : float
        Programming error (fraction of ``G_max - G_min``) and per-read noise (fraction of each conductance).
    stuck_on, stuck_off : float
        Probability of a device stuck at ``G_max`` / ``G_min`` (their sum at most 1).
    seed : int
        Seed of the programming streams (``default_rng((seed, effect))``).
    """

    levels: int = 5
    on_off: float = 100.0
    prog_noise: float = 0.0
    stuck_on: float = 0.0
    stuck_off: float = 0.0
    read_noise: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or self.levels < 2:
            raise ValueError(f"Device levels must be an integer >= 2, not {self.levels!r}")
        for name, label in (("on_off", "On/off ratio"), ("prog_noise", "Programming noise"), ("stuck_on", "Stuck-on rate"),
                            ("stuck_off", "Stuck-off rate"), ("read_noise", "Read noise")):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{label} must be a finite number >= 0, not {v!r}")
        if not self.on_off > 1:
            raise ValueError(f"On/off ratio must be > 1, not {self.on_off!r}")
        if self.stuck_on + self.stuck_off > 1:
            raise ValueError(f"Stuck-on and stuck-off rates must sum to at most 1, not {self.stuck_on + self.stuck_off}")

    def program(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ternary ``w`` (R, C) -> (target cells ``w (levels - 1)``, programmed device levels ``(2, R, C)``: G+, G-)."""
        w = np.asarray(w, dtype=np.int64)
        top = self.levels - 1
        dev = np.stack([np.where(w > 0, top, 0), np.where(w < 0, top, 0)]).astype(np.int64)
        if self.prog_noise:
            err = np.random.default_rng((self.seed, 2)).standard_normal(dev.shape)
            dev = np.clip(np.rint(dev + self.prog_noise * top * err), 0, top).astype(np.int64)
        if self.stuck_on or self.stuck_off:
            u = np.random.default_rng((self.seed, 3)).random(dev.shape)
            dev = np.where(u < self.stuck_on, top, np.where(u < self.stuck_on + self.stuck_off, 0, dev))
        return w * top, dev

    def samples(self, target: np.ndarray, devices: np.ndarray, xs: np.ndarray, act_bits: int, dac_bits: int,
                rng: np.random.Generator) -> np.ndarray:
        """Integer noise ``(n, S, C)`` of inputs ``xs`` (n, R) on a tile programmed to ``devices`` (read noise from ``rng``)."""
        sl = slice_inputs(np.atleast_2d(xs), act_bits, dac_bits)
        noise = _matmul(sl, devices[0] - devices[1] - np.asarray(target, dtype=np.int64))
        if self.read_noise:
            g = devices.astype(np.float64) + (self.levels - 1) / (self.on_off - 1)
            var = _matmul((sl * sl).astype(np.float64), g[0] ** 2 + g[1] ** 2) * self.read_noise ** 2
            noise = noise + _round_half_away(np.sqrt(var) * rng.standard_normal(var.shape))
        return noise
