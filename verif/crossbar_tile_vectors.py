"""Stimulus and expected words for the crossbar tile, computed by the integer crossbar model.

Every phase loads cells, an ADC range, the noise source (off, the LFSR, or device-noise samples on the noise
port) and (optionally) an LFSR seed, then streams vectors; the expected shift-and-add words come from
:func:`models.program.crossbar.tile_mvm_integer`, the LFSR state carried from phase to phase exactly as the
RTL carries it. The tile is programmed by the device model's effects (:class:`models.program.crossbar.DeviceNoise`:
programming error, stuck-at devices, read noise): the array holds the target cells ``w (levels - 1)`` and the
noise port carries, per slice, every column's deviation. Phases marked ``timed`` run without stalls and the
testbench checks that every vector takes :attr:`hw.crossbar_tile.CrossbarTile.cycles_per_vector` cycles,
first activation in to last result out. The ``ideal_ternary`` phase also checks that the integer model equals
the golden :func:`models.program.ternary_kernels.ternary_matvec` there. Update phases stream pulse slots into
the update port first (:func:`hw.crossbar_tile.apply_pulse_slot` gives the cells they leave) and then read the
cells back with one-hot vectors (every cell) and random ones.
"""

from __future__ import annotations

import numpy as np

from hw.crossbar_tile import CrossbarTile, apply_pulse_slot, cell_memory_image, pack_pulse_slot
from models.program import numformat
from models.program.crossbar import (NOISE_LFSR, NOISE_OFF, NOISE_PORT, DeviceNoise, Periphery, adc_range,
                                     tile_mvm_integer)
from models.program.ternary_kernels import ternary_matvec

__all__ = ["make_vectors", "pack_noise"]

#: The device the main phases program (moderate effects, so that most samples fit a narrow ADC step).
DEVICE = dict(prog_noise=0.05, stuck_on=0.01, stuck_off=0.01, read_noise=0.02)


def pack_noise(noise: np.ndarray, bits: int) -> list[int]:
    """Noise-port beats of samples ``(n, S, C)``: one word per vector and slice, column ``c`` at bits
    ``[c*bits, (c+1)*bits)`` in two's complement."""
    mask = (1 << bits) - 1
    flat = np.asarray(noise, dtype=np.int64).reshape(-1, noise.shape[-1])
    return [sum((int(v) & mask) << (c * bits) for c, v in enumerate(row)) for row in flat]


class _Phases:
    """Builds phases in order, carrying the LFSR state as the RTL does."""

    def __init__(self, unit: CrossbarTile):
        self.unit = unit
        self.state = 1  # the LFSR's reset value
        self.phases: list[dict] = []

    def add(self, name: str, cells: np.ndarray, xs: np.ndarray, *, adc_shift: int, noise_sel: int,
            seed: int | None = None, noise: np.ndarray | None = None, stalls: bool = True,
            timed: bool = False, slots: list | None = None) -> np.ndarray:
        u = self.unit
        if seed is not None:
            self.state = seed
        start = cells
        for slot in slots or []:
            cells = apply_pulse_slot(cells, *slot, u.cell_bits)
        per = Periphery(act_bits=u.act_bits, dac_bits=u.dac_bits, adc_bits=u.adc_bits, adc_shift=adc_shift,
                        noise_bits=u.noise_bits if noise_sel == NOISE_LFSR else 0, lfsr_seed=self.state)
        raw, self.state = tile_mvm_integer(cells, xs, per, adc_shift, self.state,
                                           noise=noise if noise_sel == NOISE_PORT else None)
        self.phases.append({
            "name": name, "cell_words": cell_memory_image(start, u.cell_bits), "adc_shift": adc_shift,
            "updates": [pack_pulse_slot(*slot) for slot in slots or []],
            "noise_sel": noise_sel, "lfsr_seed": seed, "vectors": xs.astype(int).tolist(),
            "noise_beats": pack_noise(noise, u.noise_port_bits) if noise_sel == NOISE_PORT else [],
            "expected": raw.tolist(), "stalls": stalls and not timed, "timed": timed,
        })
        return raw


def _fitting_shift(noise: np.ndarray, unit: CrossbarTile, low: int) -> int:
    """The smallest ADC step exponent ``>= low`` whose range holds every noise sample."""
    for shift in range(low, unit.max_adc_shift + 1):
        lo, hi = adc_range(unit.adc_bits, shift)
        if noise.min(initial=0) >= lo and noise.max(initial=0) <= hi:
            return shift
    raise ValueError(f"device noise up to {np.abs(noise).max()} does not fit the ADC at any step "
                     f"<= 2**{unit.max_adc_shift}: lower the device noise")


def make_vectors(unit: CrossbarTile, *, seed: int, n_random: int) -> dict:
    """Phases for ``unit``: device noise on the port and noise off on the programmed cells (random stalls on
    every stream), timed phases without stalls (LFSR reseeded, device noise), a continued LFSR run, the ideal
    ternary tile (== golden), ADC saturation, all-zero input, noise at both ends of the ADC range, widest step."""
    rng = np.random.default_rng(seed)
    r, c, s = unit.rows, unit.cols, unit.slices
    lo, hi = numformat.act_range(unit.act_bits)
    cell_max = (1 << (unit.cell_bits - 1)) - 1
    device = DeviceNoise(levels=(1 << (unit.cell_bits - 2)) + 1, seed=seed, **DEVICE)

    def acts(count):
        xs = rng.integers(lo, hi + 1, size=(count, r))
        sparsity = rng.choice([0.0, 0.5, 0.9], size=(count, 1), p=[0.4, 0.3, 0.3])
        return np.where(rng.random((count, r)) < sparsity, 0, xs)

    def device_noise(xs):
        return device.samples(target, devices, xs, unit.act_bits, unit.dac_bits, rng)

    w = rng.choice(np.array([-1, 0, 1]), size=(r, c), p=[0.3, 0.4, 0.3])
    target, devices = device.program(w)
    programmed = devices[0] - devices[1]
    p = _Phases(unit)
    half = n_random // 2
    drawn = {name: acts(n) for name, n in (("on", half), ("timed", 8), ("widest", 8))}
    noise = {name: device_noise(x) for name, x in drawn.items()}
    shift = _fitting_shift(np.concatenate([n.ravel() for n in noise.values()]), unit, min(2, unit.max_adc_shift))
    p.add("device_noise_on", target, drawn["on"], adc_shift=shift, noise_sel=NOISE_PORT, noise=noise["on"])
    p.add("programmed_cells_noise_off", programmed, acts(n_random - half), adc_shift=shift, noise_sel=NOISE_OFF)
    p.add("noise_reseeded_no_stalls", target, acts(16), adc_shift=shift, noise_sel=NOISE_LFSR, seed=0x1234567,
          timed=True)
    p.add("noise_continues", target, acts(8), adc_shift=shift, noise_sel=NOISE_LFSR)
    p.add("device_noise_no_stalls", target, drawn["timed"], adc_shift=shift, noise_sel=NOISE_PORT,
          noise=noise["timed"], timed=True)
    xs = acts(16)
    raw = p.add("ideal_ternary", w, xs, adc_shift=0, noise_sel=NOISE_OFF)
    if (1 << (unit.adc_bits - 1)) - 1 >= r * max((1 << unit.dac_bits) - 1, 1 << (unit.dac_bits - 1)):
        codes = numformat.encode_ternary(w)
        gold = np.stack([ternary_matvec(codes, x, act_bits=unit.act_bits)[0] for x in xs])
        assert np.array_equal(raw, gold), "the ideal crossbar tile must equal the golden model"
    full = np.full((r, c), cell_max)
    p.add("adc_saturation", full, np.array([np.full(r, hi), np.full(r, lo)]), adc_shift=0, noise_sel=NOISE_LFSR,
          seed=0xBEEF)
    p.add("all_zero_input_noise_only", target, np.zeros((4, r), dtype=int), adc_shift=0, noise_sel=NOISE_LFSR)
    edge_lo, edge_hi = adc_range(unit.adc_bits, shift)
    edges = np.where(rng.random((4, s, c)) < 0.5, edge_lo, edge_hi)
    p.add("noise_at_adc_range_ends", target, np.zeros((4, r), dtype=int), adc_shift=shift, noise_sel=NOISE_PORT,
          noise=edges)
    p.add("widest_adc_step", target, drawn["widest"], adc_shift=unit.max_adc_shift, noise_sel=NOISE_PORT,
          noise=noise["widest"])
    _update_phases(p, unit, rng, programmed, acts)
    return {"unit": "crossbar_tile", "seed": seed, "cycles_per_vector": unit.cycles_per_vector, "phases": p.phases}


def _update_phases(p: _Phases, unit: CrossbarTile, rng: np.random.Generator, cells: np.ndarray, acts) -> None:
    """Pulse slots through the update port, each phase read back with every one-hot vector (each cell exactly,
    at ADC step 1 when the ADC holds a cell) and random vectors: random slots, saturation at both bounds (from
    the most negative code too), slots that fire no device, one slot."""
    r, c = unit.rows, unit.cols
    top = (1 << (unit.cell_bits - 1)) - 1
    shift = 0 if (1 << (unit.adc_bits - 1)) - 1 >= top else unit.max_adc_shift
    reads = lambda: np.vstack([np.eye(r, dtype=int), acts(4)])  # noqa: E731

    def slots(n, fire=0.5, down=0.5):
        return [(rng.random(r) < fire, rng.random(r) < down, rng.random(c) < fire, rng.random(c) < down)
                for _ in range(n)]

    ones_r, ones_c, zeros_r, zeros_c = np.ones(r, bool), np.ones(c, bool), np.zeros(r, bool), np.zeros(c, bool)
    p.add("update_random_slots", cells, reads(), adc_shift=shift, noise_sel=NOISE_OFF, slots=slots(48))
    near_top = rng.integers(top - 3, top + 1, size=(r, c))
    p.add("update_saturate_up", near_top, reads(), adc_shift=shift, noise_sel=NOISE_OFF,
          slots=[(ones_r, zeros_r, ones_c, zeros_c)] * 6 + slots(4))
    near_bottom = rng.integers(-top - 1, -top + 3, size=(r, c))
    p.add("update_saturate_down", near_bottom, reads(), adc_shift=shift, noise_sel=NOISE_OFF,
          slots=[(ones_r, ones_r, ones_c, zeros_c)] * 3 + [(ones_r, zeros_r, ones_c, ones_c)] * 3)
    p.add("update_no_device_fires", cells, reads(), adc_shift=shift, noise_sel=NOISE_OFF,
          slots=[(zeros_r, ones_r, ones_c, ones_c), (ones_r, zeros_r, zeros_c, ones_c), (zeros_r,) * 2 + (zeros_c,) * 2])
    p.add("update_one_slot", cells, reads(), adc_shift=shift, noise_sel=NOISE_OFF, slots=slots(1, fire=0.8))
