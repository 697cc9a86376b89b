"""Hardware configuration of a neuromorphic system: chips, neurocores, memories, mesh, crossbar tiles.

One :class:`HWConfig` describes what the compiler may place weights on and what the system model
simulates. The numbers come from a preset (``sim/presets/<name>.yaml``, loaded by :mod:`sim.system.energy`)
and can be overridden one field at a time (``--set chips=8``). Every field is validated on
construction; a bad value raises ``ValueError`` with one line naming the field and the fix.

Geometry: a chip is a ``tiles_x x tiles_y`` mesh of routers, each router serving ``cores_per_tile``
neurocores (Loihi: 4 cores per tile). Chips sit on a ``chip_grid`` (auto: near-square for ``chips``),
and the global router mesh is the chips' meshes side by side; a mesh link that crosses a chip boundary
is a chip-to-chip link.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Optional

__all__ = ["SPIKE_FORMATS", "NONLINEAR_UNITS", "FANOUTS", "BINARY_AXONS", "HWConfig", "parse_override"]

#: How a value travels between neurons: ``graded`` (a payload of ``payload_bits`` per packet, Loihi 2 style)
#: or ``binary`` (one-bit spikes: a value is sent as its sign-magnitude bit-plane spikes, one packet each).
SPIKE_FORMATS = ("graded", "binary")
#: Where element-wise and non-linear work (sigmoid, SiLU, rsqrt, the MLGRU state update, products) runs:
#: in the neurocores (programmable neurons) or on the chip's embedded x86 cores (Loihi 1's Lakemonts).
NONLINEAR_UNITS = ("neurocore", "x86")
#: How a source core addresses the destination cores of one output (the compiler's message records):
#: ``unicast``, one record per (source core, destination core), each routed through the mesh with link
#: contention; ``multicast`` (Loihi's core-to-core multicast, Davies 2018), one record per source core for
#: a whole destination stage that holds every input row. Either way the source core sends one packet per
#: spike per destination core; see :mod:`sim.system.model` for how a multicast record is timed.
FANOUTS = ("unicast", "multicast")
#: Binary format: input axons per int8 input (sign-split pair x 7 magnitude planes of |q| <= 127), each
#: with its own synapse row of the ternary codes scaled by the plane's weight exponent.
BINARY_AXONS = 2 * 7

_POSITIVE_INTS = ("chips", "tiles_x", "tiles_y", "cores_per_tile", "neurons_per_core", "synapse_mem_bytes",
                  "weight_bits", "embed_bits", "value_bits", "payload_bits")
_NONNEG_INTS = ("x86_cores_per_chip", "xbar_tiles_per_core", "xbar_rows", "xbar_cols", "xbar_cells_per_weight", "xbar_cols_per_adc",
                "xbar_input_bits")


@dataclass
class HWConfig:
    """A neuromorphic system (one kind of chip, ``chips`` of them).

    Parameters
    ----------
    name : str
        The preset this came from (reports and mappings quote it).
    chips : int
        Chips available to the compiler.
    chip_grid : (int, int) or None
        Chips per mesh row and column; None picks the most square grid holding ``chips``.
    tiles_x, tiles_y : int
        Router mesh of one chip.
    cores_per_tile : int
        Neurocores sharing one router (a spike between them takes no mesh hop).
    neurons_per_core : int
        Neuron (accumulator/state) slots of one core.
    synapse_mem_bytes : int
        Synapse (weight) SRAM of one core, in bytes. Crossbar cores keep their ternary weights in the
        crossbar tiles and use this SRAM only for tables (the embedding).
    weight_bits : int
        Bits per stored ternary weight (2 = the spec's packed codes; 8 = one byte per weight).
    embed_bits : int
        Bits per embedding entry (int16 in the number-format spec).
    value_bits : int
        Bits of one activation value sent between layers (the int32 residual/projection format).
    payload_bits : int
        Payload bits of one NoC packet (graded spike); a value takes ``ceil(value_bits/payload_bits)`` packets.
    xbar_tiles_per_core : int
        Memristor crossbar arrays attached to each core; 0 means a purely digital core.
    xbar_rows, xbar_cols : int
        Size of one crossbar array (word lines x bit lines).
    xbar_cells_per_weight : int
        Cells per ternary weight (2 = differential pair G+/G-).
    xbar_cols_per_adc : int
        Bit lines sharing one ADC (converted one after the other).
    xbar_input_bits : int
        Input bits applied bit-serially through 1-bit DACs (one read cycle per bit).
    spike_format : str
        ``graded`` or ``binary`` (:data:`SPIKE_FORMATS`); binary stores :data:`BINARY_AXONS` synapse rows
        per input (so ``BINARY_AXONS`` x the synapse memory) and sends one packet per bit spike.
    nonlinear_unit : str
        ``neurocore`` or ``x86`` (:data:`NONLINEAR_UNITS`): where the element-wise and non-linear work runs.
    x86_cores_per_chip : int
        Embedded x86 cores per chip that run it when ``nonlinear_unit`` is ``x86``.
    fanout : str
        ``unicast`` or ``multicast`` message records (:data:`FANOUTS`).
    """

    name: str = "custom"
    chips: int = 1
    chip_grid: Optional[tuple[int, int]] = None
    tiles_x: int = 8
    tiles_y: int = 4
    cores_per_tile: int = 4
    neurons_per_core: int = 1024
    synapse_mem_bytes: int = 131072
    weight_bits: int = 2
    embed_bits: int = 16
    value_bits: int = 32
    payload_bits: int = 32
    xbar_tiles_per_core: int = 0
    xbar_rows: int = 0
    xbar_cols: int = 0
    xbar_cells_per_weight: int = 0
    xbar_cols_per_adc: int = 0
    xbar_input_bits: int = 0
    spike_format: str = "graded"
    nonlinear_unit: str = "neurocore"
    x86_cores_per_chip: int = 0
    fanout: str = "unicast"
    notes: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.chip_grid, list):
            self.chip_grid = tuple(self.chip_grid)
        self.validate()

    # ------------------------------------------------------------------ derived
    @property
    def cores_per_chip(self) -> int:
        return self.tiles_x * self.tiles_y * self.cores_per_tile

    @property
    def total_cores(self) -> int:
        return self.chips * self.cores_per_chip

    @property
    def has_crossbars(self) -> bool:
        return self.xbar_tiles_per_core > 0

    @property
    def packets_per_value(self) -> int:
        return -(-self.value_bits // self.payload_bits)

    @property
    def axons_per_input(self) -> int:
        """Synapse rows per input value: 1 (graded) or :data:`BINARY_AXONS` (binary)."""
        return BINARY_AXONS if self.spike_format == "binary" else 1

    @property
    def grid(self) -> tuple[int, int]:
        """Chips per row and per column of the chip mesh."""
        if self.chip_grid is not None:
            return self.chip_grid
        gx = math.ceil(math.sqrt(self.chips))
        return gx, math.ceil(self.chips / gx)

    @property
    def mesh(self) -> tuple[int, int]:
        """Global router mesh (x, y) over all chips."""
        gx, gy = self.grid
        return gx * self.tiles_x, gy * self.tiles_y

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ``ValueError`` (one line: the field and the fix) for the first bad field."""
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        for f in _POSITIVE_INTS:
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{f} must be a positive integer, got {v!r}: fix the preset's hardware section or pass --set {f}=N")
        for f in _NONNEG_INTS:
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{f} must be a non-negative integer, got {v!r}: fix the preset's hardware section or pass --set {f}=N")
        if self.spike_format not in SPIKE_FORMATS:
            raise ValueError(f"spike_format must be one of {', '.join(SPIKE_FORMATS)}, got {self.spike_format!r}: "
                             f"fix the preset's hardware section or pass --set spike_format=binary")
        if self.nonlinear_unit not in NONLINEAR_UNITS:
            raise ValueError(f"nonlinear_unit must be one of {', '.join(NONLINEAR_UNITS)}, got {self.nonlinear_unit!r}")
        if self.fanout not in FANOUTS:
            raise ValueError(f"fanout must be one of {', '.join(FANOUTS)}, got {self.fanout!r}: "
                             f"fix the preset's hardware section or pass --set fanout=multicast")
        if self.nonlinear_unit == "x86" and self.x86_cores_per_chip < 1:
            raise ValueError("nonlinear_unit x86 needs x86_cores_per_chip >= 1: set it in the preset or pass --set x86_cores_per_chip=N")
        if self.weight_bits < 2:
            raise ValueError(f"weight_bits must be at least 2 to hold a ternary weight, got {self.weight_bits}: pass --set weight_bits=2")
        if self.xbar_tiles_per_core:
            for f in ("xbar_rows", "xbar_cols", "xbar_cells_per_weight", "xbar_cols_per_adc", "xbar_input_bits"):
                if getattr(self, f) < 1:
                    raise ValueError(f"{f} must be positive when xbar_tiles_per_core > 0, got {getattr(self, f)}: set it in the preset")
            if self.xbar_cols < self.xbar_cells_per_weight:
                raise ValueError(f"xbar_cols ({self.xbar_cols}) must hold at least one weight of {self.xbar_cells_per_weight} cells")
        if self.chip_grid is not None:
            g = self.chip_grid
            if (not isinstance(g, tuple) or len(g) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in g)):
                raise ValueError(f"chip_grid must be two positive integers (x, y) or None, got {g!r}")
            if g[0] * g[1] < self.chips:
                raise ValueError(f"chip_grid {g[0]}x{g[1]} holds {g[0] * g[1]} chips but chips={self.chips}: enlarge the grid or drop chip_grid")

    # ------------------------------------------------------------------ I/O
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "notes"}
        d["chip_grid"] = list(self.chip_grid) if self.chip_grid is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "HWConfig":
        names = {f.name for f in dataclasses.fields(cls)} - {"notes"}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown hardware field {unknown[0]!r}: known fields are {', '.join(sorted(names))}")
        return cls(**d)

    def replace(self, **changes: Any) -> "HWConfig":
        """A validated copy with some fields changed (unknown names raise one clear line)."""
        names = {f.name for f in dataclasses.fields(self)} - {"notes"}
        for k in changes:
            if k not in names:
                raise ValueError(f"unknown hardware field {k!r}: known fields are {', '.join(sorted(names))}")
        return dataclasses.replace(self, **changes)


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` → ``(key, value)`` with ints, floats, ``none`` and ``AxB`` grids understood."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like key=value (for example chips=8)")
    key, raw = (s.strip() for s in text.split("=", 1))
    if not key or not raw:
        raise ValueError(f"override {text!r} must look like key=value (for example chips=8)")
    low = raw.lower()
    if low in ("none", "null", "auto"):
        return key, None
    if "x" in low and all(p.isdigit() for p in low.split("x")) and low.count("x") == 1:
        a, b = low.split("x")
        return key, (int(a), int(b))
    try:
        return key, int(raw)
    except ValueError:
        pass
    try:
        return key, float(raw)
    except ValueError:
        return key, raw
