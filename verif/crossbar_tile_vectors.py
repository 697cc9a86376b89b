"""Stimulus and expected words for the crossbar tile, computed by the integer crossbar model.

Every phase loads cells, an ADC range, the noise switch and (optionally) an LFSR seed, then streams
vectors; the expected shift-and-add words come from :func:`models.program.crossbar.tile_mvm_integer`, the
LFSR state carried from phase to phase exactly as the RTL carries it. The RTL sees only integer cells, so
the cells of the main phases are drawn directly (:func:`_cells`): ternary weights on ``levels`` conductance
states, off by up to one level, a few stuck at an extreme, every level present; the ``ideal_ternary``
phase also checks that the integer model equals the golden
:func:`models.program.ternary_kernels.ternary_matvec` there.
"""

from __future__ import annotations

import numpy as np

from hw.crossbar_tile import CrossbarTile, cell_memory_image
from models.program import numformat
from models.program.crossbar import Periphery, tile_mvm_integer
from models.program.ternary_kernels import ternary_matvec

__all__ = ["make_vectors"]


class _Phases:
    """Builds phases in order, carrying the LFSR state as the RTL does."""

    def __init__(self, unit: CrossbarTile):
        self.unit = unit
        self.state = 1  # the LFSR's reset value
        self.phases: list[dict] = []

    def add(self, name: str, cells: np.ndarray, xs: np.ndarray, *, adc_shift: int, noise: bool,
            seed: int | None, stalls: bool) -> np.ndarray:
        u = self.unit
        if seed is not None:
            self.state = seed
        per = Periphery(act_bits=u.act_bits, dac_bits=u.dac_bits, adc_bits=u.adc_bits, adc_shift=adc_shift,
                        noise_bits=u.noise_bits if noise else 0, lfsr_seed=self.state)
        raw, self.state = tile_mvm_integer(cells, xs, per, adc_shift, self.state)
        self.phases.append({
            "name": name, "cell_words": cell_memory_image(cells, u.cell_bits), "adc_shift": adc_shift,
            "noise_en": int(noise), "lfsr_seed": seed, "vectors": xs.astype(int).tolist(),
            "expected": raw.tolist(), "stalls": stalls,
        })
        return raw


def _cells(rng: np.random.Generator, w: np.ndarray, levels: int) -> np.ndarray:
    """Integer cells ``level+ - level-`` for ternary ``w`` on ``levels`` states per device: ``w * (levels - 1)``
    off by up to one level, 3 % stuck at each extreme, and every level of ``[-(levels-1), levels-1]`` at
    least once (evenly spread, extremes included, when the tile has fewer cells)."""
    top = levels - 1
    cells = np.clip(w * top + rng.integers(-1, 2, size=w.shape), -top, top)
    stuck = rng.random(w.shape)
    cells[stuck < 0.03], cells[stuck > 0.97] = top, -top
    every = np.linspace(-top, top, min(cells.size, 2 * top + 1)).round().astype(np.int64)
    cells.flat[rng.permutation(cells.size)[:every.size]] = every
    return cells


def make_vectors(unit: CrossbarTile, *, seed: int, n_random: int) -> dict:
    """Phases for ``unit``: drawn integer cells with noise on and off (random stalls), a reseeded and a
    continued noise run, the ideal ternary tile (== golden), ADC saturation, all-zero input, widest ADC step."""
    rng = np.random.default_rng(seed)
    r, c = unit.rows, unit.cols
    lo, hi = numformat.act_range(unit.act_bits)
    cell_max = (1 << (unit.cell_bits - 1)) - 1
    levels = (1 << (unit.cell_bits - 2)) + 1  # states per device: cells within [-(levels-1), levels-1]
    shift = min(2, unit.max_adc_shift)

    def acts(count):
        xs = rng.integers(lo, hi + 1, size=(count, r))
        sparsity = rng.choice([0.0, 0.5, 0.9], size=(count, 1), p=[0.4, 0.3, 0.3])
        return np.where(rng.random((count, r)) < sparsity, 0, xs)

    w = rng.choice(np.array([-1, 0, 1]), size=(r, c), p=[0.3, 0.4, 0.3])
    cells = _cells(rng, w, levels)
    p = _Phases(unit)
    half = n_random // 2
    p.add("device_cells_noise_on", cells, acts(half), adc_shift=shift, noise=True, seed=0xC0FFEE, stalls=True)
    p.add("device_cells_noise_off", cells, acts(n_random - half), adc_shift=shift, noise=False, seed=None,
          stalls=True)
    p.add("noise_reseeded_no_stalls", cells, acts(16), adc_shift=shift, noise=True, seed=0x1234567, stalls=False)
    p.add("noise_continues", cells, acts(8), adc_shift=shift, noise=True, seed=None, stalls=True)
    xs = acts(16)
    raw = p.add("ideal_ternary", w, xs, adc_shift=0, noise=False, seed=None, stalls=True)
    if (1 << (unit.adc_bits - 1)) - 1 >= r * max((1 << unit.dac_bits) - 1, 1 << (unit.dac_bits - 1)):
        codes = numformat.encode_ternary(w)
        gold = np.stack([ternary_matvec(codes, x, act_bits=unit.act_bits)[0] for x in xs])
        assert np.array_equal(raw, gold), "the ideal crossbar tile must equal the golden model"
    full = np.full((r, c), cell_max)
    p.add("adc_saturation", full, np.array([np.full(r, hi), np.full(r, lo)]), adc_shift=0, noise=True,
          seed=0xBEEF, stalls=True)
    p.add("all_zero_input_noise_only", cells, np.zeros((4, r), dtype=int), adc_shift=0, noise=True, seed=None,
          stalls=True)
    p.add("widest_adc_step", cells, acts(8), adc_shift=unit.max_adc_shift, noise=True, seed=None, stalls=True)
    return {"unit": "crossbar_tile", "seed": seed, "phases": p.phases}
