"""Functional crossbar execution of a ternary layer: bit-serial DACs, column currents, ADC, shift-and-add.

A layer ``y = W x`` (codes in the golden layout ``(fan_in, out)``, :mod:`models.program.ternary_kernels`) is cut
into tiles of ``tile_rows x tile_cols`` weights (each weight a ``G+/G-`` pair, :mod:`sim.crossbar.device`).
For every input vector and every tile:

1. **Bit-serial DAC**: the ``act_bits`` two's complement activations are applied in ``act_bits /
   dac_bits`` slices, least significant first: slice ``j`` is bits ``[j d, (j+1) d)`` as an unsigned
   value, except the top slice, which is signed (so ``x = sum_j s_j 2**(j d)``); the DAC drives
   ``s_j * v_read / 2**d`` volts (the sign of the top slice is the polarity of the read pulse).
2. **Columns**: the differential column current, in units of one conductance level times one DAC step,
   is ``sum_i s_i (G+ - G-)_ij / g_unit`` — exactly the integer ``sum_i s_i c_ij`` when the cells sit on
   levels (:meth:`sim.crossbar.device.ProgrammedArray.cells`); IR drop replaces ``G`` by the transfer
   matrix of :mod:`sim.crossbar.ir_drop`; read noise adds ``N(0, read_noise^2 sum_i s_i^2 (G+^2 + G-^2))``
   (the cells' fluctuations at their nominal voltages, a first-order model when IR drop is on).
3. **Deterministic noise** (optional): ``noise_bits`` LFSR noise added at the ADC input
   (:mod:`models.program.crossbar`).
4. **ADC**: ``code = saturate(round_half_away(I / 2**adc_shift), adc_bits)`` — a ``adc_bits`` converter
   whose step is ``2**adc_shift`` column units, clipping outside its range. ``adc_shift=None`` picks the
   smallest step that holds the tile's worst case (``tile_rows * max|slice| * max|cell|``).
5. **Shift-and-add**: ``raw = sum_j code_j 2**(j d)``; row tiles add their ``raw``; the layer output is
   ``round_half_away(raw * 2**adc_shift / cell_scale)``, saturated to ``out_bits``.

With every device effect off, no IR drop, no noise and a wide enough ADC, this equals the golden
:func:`models.program.ternary_kernels.ternary_matvec` integer for integer.

The integer path (cells on levels, no IR drop, no read noise) is the RTL twin
:func:`models.program.crossbar.tile_mvm_integer`; the DAC slicing, LFSR noise, ADC and shift-and-add are
shared from :mod:`models.program.crossbar`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import zlib

import numpy as np

from models.program import numformat
from models.program.crossbar import Periphery, _adc, _integer_codes, _lfsr_fill, _matmul, _shift_add, slice_inputs
from sim.crossbar.device import DeviceParams, ProgrammedArray, program
from sim.crossbar.ir_drop import WireParams, transfer_matrix

__all__ = ["CrossbarLayer", "CrossbarConfig", "CrossbarExecutor"]

_READ = 5  # the read-noise random stream: np.random.default_rng((device.seed, _READ, layer_id))


def _tile_seed(seed: int, layer: int, tile: int) -> int:
    """The LFSR seed of one tile: ``seed`` itself for tile 0 of layer 0, a scrambled one otherwise."""
    if layer == 0 and tile == 0:
        return seed
    s = (seed ^ ((layer * 0x85EBCA6B + tile * 0x9E3779B9) & 0xFFFFFFFF)) & 0xFFFFFFFF
    return s or 1


@dataclass
class _Tile:
    rows: slice
    cols: slice
    array: ProgrammedArray
    cells: np.ndarray | None          # integer cells (exact path)
    weff: np.ndarray | None           # column units per DAC unit (analog path)
    noise_var: np.ndarray | None      # read-noise variance per DAC unit^2 (analog path)
    lfsr: int


class CrossbarLayer:
    """One ternary layer on crossbar tiles.

    Parameters
    ----------
    codes : ndarray
        2-bit weight codes ``(fan_in, out)`` (:func:`models.program.numformat.encode_ternary` of ``W.T``).
    tile_rows, tile_cols : int
        Weights per tile (rows = inputs, columns = outputs); a tile may not be larger than the layer.
    device : DeviceParams
    periphery : Periphery
    wires : WireParams or None
        Word/bit-line resistance; None means ideal wires (no IR drop).
    adc_rows : int or None
        Rows the ADC range is sized for when ``periphery.adc_shift`` is None (default ``tile_rows``; a
        layer smaller than the physical tile passes the physical size).
    layer_id : int
        Selects this layer's random streams and LFSR seeds (layers of one model must differ).
    """

    def __init__(self, codes: np.ndarray, *, tile_rows: int = 128, tile_cols: int = 128,
                 device: DeviceParams = DeviceParams(), periphery: Periphery = Periphery(),
                 wires: WireParams | None = None, adc_rows: int | None = None, layer_id: int = 0):
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.dtype != np.uint8:
            raise ValueError("Weight codes must be a 2-D (fan_in, out) uint8 array (numformat.encode_ternary)")
        fan_in, n_out = codes.shape
        for name, v in (("Tile rows", tile_rows), ("Tile columns", tile_cols)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        if tile_rows > fan_in or tile_cols > n_out:
            raise ValueError(f"Tile {tile_rows}x{tile_cols} is larger than the {fan_in}x{n_out} layer "
                             f"(fan_in x out) allows; use at most {fan_in} rows and {n_out} columns")
        if wires is not None and not isinstance(wires, WireParams):
            raise TypeError(f"wires must be WireParams or None, not {type(wires).__name__}")
        self.fan_in, self.out_features = fan_in, n_out
        self.tile_rows, self.tile_cols = tile_rows, tile_cols
        self.device, self.periphery, self.wires = device, periphery, wires
        self.cell_scale = device.cell_scale
        self.adc_shift = periphery.resolve_shift(adc_rows or tile_rows, self.cell_scale)
        self.exact = wires is None and device.read_noise == 0 and (
            (device.levels is not None and not device.drifts) or device.static_ideal)
        self.layer_id = layer_id
        self._read_rng = np.random.default_rng((device.seed, _READ, layer_id))
        weights = numformat.decode_ternary(codes)
        self.tiles: list[_Tile] = []
        for r0 in range(0, fan_in, tile_rows):
            for c0 in range(0, n_out, tile_cols):
                rows, cols = slice(r0, min(fan_in, r0 + tile_rows)), slice(c0, min(n_out, c0 + tile_cols))
                self.tiles.append(self._program(rows, cols, weights[rows, cols], len(self.tiles)))
        self.events = {"mvms": 0, "adc_conversions": 0, "adc_clipped": 0}

    def _program(self, rows: slice, cols: slice, w: np.ndarray, index: int) -> _Tile:
        dev = self.device
        array = program(w, dev, tile=index, layer=self.layer_id)
        seed = _tile_seed(self.periphery.lfsr_seed, self.layer_id, index)
        if self.exact:
            cells = array.cells() if dev.levels is not None else w.astype(np.int64)
            return _Tile(rows, cols, array, cells, None, None, seed)
        g_unit = dev.g_range / self.cell_scale
        if self.wires is None:
            gp, gn = array.g_pos, array.g_neg
        else:  # physical array: G+ and G- on interleaved bit lines sharing each word line
            phys = np.empty((w.shape[0], 2 * w.shape[1]))
            phys[:, 0::2], phys[:, 1::2] = array.g_pos, array.g_neg
            m = transfer_matrix(phys, self.wires)
            gp, gn = m[:, 0::2], m[:, 1::2]
        weff = (gp - gn) / g_unit
        var = (dev.read_noise / g_unit) ** 2 * (array.g_pos ** 2 + array.g_neg ** 2) if dev.read_noise else None
        return _Tile(rows, cols, array, None, weff, var, seed)

    def reset_noise(self) -> None:
        """Return every tile's LFSR to its seed and restart the read-noise stream."""
        for t, tile in enumerate(self.tiles):
            tile.lfsr = _tile_seed(self.periphery.lfsr_seed, self.layer_id, t)
        self._read_rng = np.random.default_rng((self.device.seed, _READ, self.layer_id))

    def raw(self, xs: np.ndarray) -> np.ndarray:
        """Shift-and-add outputs (n, out) of the activations ``xs`` (n, fan_in), summed over row tiles."""
        xs = np.atleast_2d(np.asarray(xs, dtype=np.int64))
        if xs.shape[-1] != self.fan_in:
            raise ValueError(f"Activation length {xs.shape[-1]} does not match the layer's fan-in {self.fan_in}")
        lo, hi = numformat.act_range(self.periphery.act_bits)
        if xs.size and (xs.min() < lo or xs.max() > hi):
            raise ValueError(f"Activations must lie in [{lo}, {hi}] for {self.periphery.act_bits}-bit activations")
        p = self.periphery
        out = np.zeros((xs.shape[0], self.out_features), dtype=np.int64)
        for tile in self.tiles:
            if tile.cells is not None:
                codes, clipped, tile.lfsr = _integer_codes(tile.cells, xs[:, tile.rows], p, self.adc_shift,
                                                           tile.lfsr)
            else:
                sl = slice_inputs(xs[:, tile.rows], p.act_bits, p.dac_bits).astype(np.float64)
                cols = _matmul(sl, tile.weff)
                if tile.noise_var is not None:
                    cols += np.sqrt(_matmul(sl * sl, tile.noise_var)) * self._read_rng.standard_normal(cols.shape)
                if p.noise_bits:
                    noise = np.empty(cols.shape, dtype=np.int64)
                    tile.lfsr = int(_lfsr_fill(tile.lfsr, p.noise_bits, noise))
                    cols += noise
                codes, clipped = _adc(cols, self.adc_shift, p.adc_bits)
            self.events["adc_clipped"] += clipped
            out[:, tile.cols] += _shift_add(codes, p.dac_bits)
        n_cols = sum(t.cols.stop - t.cols.start for t in self.tiles)
        self.events["mvms"] += xs.shape[0]
        self.events["adc_conversions"] += xs.shape[0] * p.slices * n_cols
        return out

    def matvec(self, xs: np.ndarray, out_bits: int | None = None) -> np.ndarray:
        """``W x`` as the crossbar computes it, in the golden model's integer units, per row of ``xs``.

        ``xs`` is ``(fan_in,)`` or ``(n, fan_in)``; ``out_bits`` defaults to the spec's accumulator width.
        """
        single = np.asarray(xs).ndim == 1
        raw = self.raw(xs)
        num = raw << self.adc_shift
        if self.cell_scale & (self.cell_scale - 1) == 0:
            y = numformat.round_shift(num, self.cell_scale.bit_length() - 1)
        else:  # round half away from zero of num / cell_scale, in integers
            mag = (2 * np.abs(num) + self.cell_scale) // (2 * self.cell_scale)
            y = np.where(num < 0, -mag, mag)
        bits = out_bits or numformat.acc_bits(self.fan_in, self.periphery.act_bits)
        y = numformat.saturate(np.asarray(y, dtype=np.int64), bits)
        return y[0] if single else y


@dataclass(frozen=True)
class CrossbarConfig:
    """Everything that sets how a layer runs on crossbars (the knobs of an accuracy sweep)."""

    tile_rows: int = 128
    tile_cols: int = 128
    device: DeviceParams = field(default_factory=DeviceParams)
    periphery: Periphery = field(default_factory=Periphery)
    wires: WireParams | None = None

    #: Sweep knob -> (part, field). ``tile`` sets both tile dimensions; ``stuck_at`` splits evenly.
    KNOBS = {"adc_bits": ("periphery", "adc_bits"), "dac_bits": ("periphery", "dac_bits"),
             "read_noise": ("device", "read_noise"), "prog_noise": ("device", "prog_noise"),
             "levels": ("device", "levels"), "tile": (None, None), "stuck_at": (None, None)}

    def with_knob(self, knob: str, value) -> "CrossbarConfig":
        """A copy with one sweep knob set (see :attr:`KNOBS`)."""
        if knob not in self.KNOBS:
            raise ValueError(f"Unknown crossbar knob {knob!r}; use one of {', '.join(self.KNOBS)}")
        if knob == "tile":
            return replace(self, tile_rows=value, tile_cols=value)
        if knob == "stuck_at":
            return replace(self, device=self.device.replace(stuck_on=value / 2, stuck_off=value / 2))
        part, name = self.KNOBS[knob]
        if part == "device":
            return replace(self, device=self.device.replace(**{name: value}))
        return replace(self, periphery=replace(self.periphery, **{name: value}))

    def describe(self) -> dict:
        """A flat, JSON-able description."""
        out = {"tile_rows": self.tile_rows, "tile_cols": self.tile_cols,
               "wires": None if self.wires is None else vars(self.wires)}
        out.update({f"device.{f.name}": getattr(self.device, f.name) for f in fields(self.device)})
        out.update({f"periphery.{f.name}": getattr(self.periphery, f.name) for f in fields(self.periphery)})
        return out


class CrossbarExecutor:
    """The layer-executor hook: ``executor(name, weights, x) -> W @ x`` computed on crossbar tiles.

    ``weights`` is a ternary ``(out, in)`` int8 matrix (as :class:`models.program.integer_program.Projection`
    holds it), ``x`` an int8 activation vector (or ``(n, in)`` batch); the result is the accumulator the
    golden model would compute, as the crossbars get it. Each named layer is programmed once (its tiles
    keep their faults and noise streams, drawn from streams selected by the CRC-32 of its name); a physical tile larger than a layer holds it with rows and
    columns unused (the ADC range stays that of the physical tile).
    """

    def __init__(self, config: CrossbarConfig):
        self.config = config
        self.layers: dict[str, CrossbarLayer] = {}

    def layer(self, name: str, weights: np.ndarray) -> CrossbarLayer:
        if name not in self.layers:
            w = np.asarray(weights)
            cfg = self.config
            self.layers[name] = CrossbarLayer(
                numformat.encode_ternary(w.T), tile_rows=min(cfg.tile_rows, w.shape[1]),
                tile_cols=min(cfg.tile_cols, w.shape[0]), device=cfg.device, periphery=cfg.periphery,
                wires=cfg.wires, adc_rows=cfg.tile_rows, layer_id=zlib.crc32(name.encode()))
        return self.layers[name]

    def __call__(self, name: str, weights: np.ndarray, x: np.ndarray) -> np.ndarray:
        return self.layer(name, weights).matvec(x)

    def adc_conversions(self) -> dict[str, int]:
        """ADC conversions so far, per layer."""
        return {name: layer.events["adc_conversions"] for name, layer in self.layers.items()}
