"""An analog adapter's forward read through a crossbar tile's periphery: quantised DAC drive, ADC, shift-add.

The adapter's weights ``W`` (``out x fan_in``, real, in the pulsed devices' normalised units, one device pair
each) are read with the inputs ``x`` in [-1, 1] as the crossbar model reads a ternary layer
(:mod:`sim.crossbar.tile`), only with real-valued cells:

1. **DAC**: ``x`` becomes ``act_bits`` signed codes ``q = round(x * Q)``, ``Q = 2**(act_bits - 1) - 1``, applied
   in ``act_bits / dac_bits`` slices, least significant first, the top one signed
   (:func:`models.program.crossbar.slice_inputs`);
2. **columns**: per slice and tile of ``tile_rows`` rows, the differential column value ``sum_i s_i W_ji``
   (weight units x DAC steps);
3. **ADC**: ``adc_bits`` signed codes of step ``full_scale / (2**(adc_bits - 1) - 1)``, rounding half away from
   zero and clipping outside the range (the clipped conversions are counted);
4. **shift-add**: ``sum_j code_j step 2**(j dac_bits)``, row tiles added, divided by ``Q``.

``full_scale`` is the ADC range in column units. :func:`worst_case_full_scale` is the crossbar model's rule
(``tile_rows x max slice x`` the largest weight the device holds: nothing can clip); :func:`fitted_full_scale`
sizes it to the largest column value a set of calibration inputs produces on the given weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.program.crossbar import slice_inputs

__all__ = ["AdapterRead", "read", "worst_case_full_scale", "fitted_full_scale"]

_CHUNK = 128   # inputs per block: (128, 8 slices, 4096 outputs) float64 is 32 MB


@dataclass(frozen=True)
class AdapterRead:
    """DAC/ADC settings of the adapter's tiles; ``full_scale`` the ADC range in column units."""

    full_scale: float
    act_bits: int = 8
    dac_bits: int = 1
    adc_bits: int = 8
    tile_rows: int = 128

    def __post_init__(self):
        for name in ("act_bits", "dac_bits", "adc_bits", "tile_rows"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (2 if name in ("act_bits", "adc_bits") else 1):
                raise ValueError(f"{name} must be an integer >= {2 if name in ('act_bits', 'adc_bits') else 1}, "
                                 f"not {v!r}")
        if self.act_bits % self.dac_bits:
            raise ValueError(f"DAC bits {self.dac_bits} must divide the activation width {self.act_bits}")
        if not (np.isfinite(self.full_scale) and self.full_scale > 0):
            raise ValueError(f"ADC full scale must be a positive number of column units, not {self.full_scale!r}")

    @property
    def step(self) -> float:
        """One ADC code in column units."""
        return self.full_scale / ((1 << (self.adc_bits - 1)) - 1)


def _columns(w: np.ndarray, x: np.ndarray, act_bits: int, dac_bits: int, tile_rows: int):
    """Per row tile: the column values ``(n, slices, out)`` of inputs ``x`` (n, fan_in) on weights ``w``."""
    top = (1 << (act_bits - 1)) - 1
    q = np.clip(np.sign(x) * np.floor(np.abs(x) * top + 0.5), -top, top).astype(np.int64)
    sl = slice_inputs(q, act_bits, dac_bits)
    n, s = sl.shape[:2]
    for r0 in range(0, w.shape[1], tile_rows):
        rows = slice(r0, r0 + tile_rows)
        tile = np.ascontiguousarray(sl[:, :, rows], dtype=np.float64).reshape(n * s, -1)
        yield (tile @ np.ascontiguousarray(w[:, rows].T)).reshape(n, s, -1)


def read(w: np.ndarray, x: np.ndarray, cfg: AdapterRead) -> tuple[np.ndarray, int, int]:
    """``W x`` for every row of ``x`` (n, fan_in) as the periphery reads it: outputs (n, out), clipped and total
    ADC conversions."""
    w, x = np.asarray(w, dtype=np.float64), np.atleast_2d(np.asarray(x, dtype=np.float64))
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"input length {x.shape[1]} does not match the adapter's fan-in {w.shape[1]}")
    lim = (1 << (cfg.adc_bits - 1)) - 1
    weights = cfg.step * 2.0 ** (np.arange(cfg.act_bits // cfg.dac_bits) * cfg.dac_bits)
    out = np.zeros((x.shape[0], w.shape[0]))
    clipped = conversions = 0
    for c0 in range(0, x.shape[0], _CHUNK):
        for cols in _columns(w, x[c0:c0 + _CHUNK], cfg.act_bits, cfg.dac_bits, cfg.tile_rows):
            code = np.abs(cols)                      # rounded half away from zero: sign(v) floor(|v| + 0.5)
            np.divide(code, cfg.step, out=code)
            code += 0.5
            np.floor(code, out=code)
            clipped += int(np.count_nonzero(code > lim))
            conversions += code.size
            np.minimum(code, lim, out=code)
            code *= np.sign(cols)
            out[c0:c0 + _CHUNK] += np.tensordot(weights, code, axes=(0, 1))
    return out / ((1 << (cfg.act_bits - 1)) - 1), clipped, conversions


def worst_case_full_scale(w_bound: float, act_bits: int = 8, dac_bits: int = 1, tile_rows: int = 128) -> float:
    """The range that holds any input on any weights within ``+-w_bound``: ``tile_rows x max|slice| x w_bound``
    (the top slice is signed, the others unsigned)."""
    max_slice = max((1 << dac_bits) - 1 if act_bits > dac_bits else 0, 1 << (dac_bits - 1))
    return tile_rows * max_slice * float(w_bound)


def fitted_full_scale(w: np.ndarray, x: np.ndarray, act_bits: int = 8, dac_bits: int = 1,
                      tile_rows: int = 128) -> float:
    """The largest ``|column value|`` the calibration inputs ``x`` produce on ``w`` (at least one weight unit's
    thousandth, so an all-zero adapter still gets a range)."""
    w, x = np.asarray(w, dtype=np.float64), np.atleast_2d(np.asarray(x, dtype=np.float64))
    top = 0.0
    for c0 in range(0, x.shape[0], _CHUNK):
        for cols in _columns(w, x[c0:c0 + _CHUNK], act_bits, dac_bits, tile_rows):
            top = max(top, float(np.abs(cols).max(initial=0.0)))
    return max(top, 1e-3)
