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
3. **Deterministic noise** (optional): ``noise_bits`` LFSR noise added at the ADC input (below).
4. **ADC**: ``code = saturate(round_half_away(I / 2**adc_shift), adc_bits)`` — a ``adc_bits`` converter
   whose step is ``2**adc_shift`` column units, clipping outside its range. ``adc_shift=None`` picks the
   smallest step that holds the tile's worst case (``tile_rows * max|slice| * max|cell|``).
5. **Shift-and-add**: ``raw = sum_j code_j 2**(j d)``; row tiles add their ``raw``; the layer output is
   ``round_half_away(raw * 2**adc_shift / cell_scale)``, saturated to ``out_bits``.

With every device effect off, no IR drop, no noise and a wide enough ADC, this equals the golden
:func:`models.program.ternary_kernels.ternary_matvec` integer for integer.

LFSR noise: a 32-bit Galois LFSR (right shift, feedback mask :data:`LFSR_MASK`: x^32 + x^22 + x^2 + x + 1,
from the maximal-length tap table of Xilinx XAPP052). For every vector, slice (LSB first) and column
(0 first) the LFSR steps once and its low ``noise_bits`` bits, read as two's complement, are the noise.
:class:`hw.crossbar_tile.CrossbarTile` implements the same sequence, so both take the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import zlib

import numba
import numpy as np

from models.program import numformat

from sim.crossbar.device import DeviceParams, ProgrammedArray, program
from sim.crossbar.ir_drop import WireParams, transfer_matrix

__all__ = ["LFSR_BITS", "LFSR_MASK", "MAX_NOISE_BITS", "lfsr_next", "lfsr_noise", "Periphery",
           "slice_inputs", "tile_mvm_integer", "CrossbarLayer", "CrossbarConfig", "CrossbarExecutor"]

LFSR_BITS = 32
LFSR_MASK = 0x80200003
#: Widest LFSR noise (more than half the LFSR would repeat its own bits).
MAX_NOISE_BITS = 16

_READ = 5  # the read-noise random stream: np.random.default_rng((device.seed, _READ, layer_id))


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


def _tile_seed(seed: int, layer: int, tile: int) -> int:
    """The LFSR seed of one tile: ``seed`` itself for tile 0 of layer 0, a scrambled one otherwise."""
    if layer == 0 and tile == 0:
        return seed
    s = (seed ^ ((layer * 0x85EBCA6B + tile * 0x9E3779B9) & 0xFFFFFFFF)) & 0xFFFFFFFF
    return s or 1


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
