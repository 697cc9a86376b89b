"""Memristive device model: ternary weights as differential conductance pairs, with seeded non-idealities.

A ternary weight ``w`` is stored on two devices, ``G+`` and ``G-``, and read as ``G+ - G-``:
``+1 -> (G_max, G_min)``, ``0 -> (G_min, G_min)``, ``-1 -> (G_min, G_max)`` (the differential mapping of
aihwkit's ``SinglePairConductanceConverter``, with ``G_min`` as the off state).

Programming applies, in this order, each effect only when its parameter is non-zero (every one has its
own random stream, derived from ``seed``, so switching one effect never changes another's samples):

1. device-to-device variation: every device's conductance is scaled by a fixed ``1 + d2d * N(0, 1)``;
2. programming noise: ``+ prog_noise * (G_max - G_min) * N(0, 1)`` (write-verify residual; aihwkit's
   PCM model measures 1-4 % of ``G_max``, Nandakumar et al., ICECS 2019);
3. finite conductance levels: snapped to the nearest of ``levels`` equally spaced states in
   ``[G_min, G_max]`` (``levels=None``: continuous, clipped at 0 S only);
4. stuck-at faults: a device is stuck at ``G_max`` with probability ``stuck_on`` and at ``G_min`` with
   probability ``stuck_off``, whatever was programmed (RRAM arrays: Chen et al., IEEE Trans. Computers
   2015, measured 1.75 % stuck-at-``G_min`` and 9.04 % stuck-at-``G_max`` cells);
5. drift at read time ``t_read``: ``G * (t_read / drift_t0) ** -nu`` with ``nu ~ N(drift_nu, drift_nu_std)``
   per device, clipped at 0 (PCM: Le Gallo et al., Adv. Electron. Mater. 2018; aihwkit fits
   ``mean nu >= 0.049``, ``t_0 = 20 s``).

Cycle-to-cycle read noise (``read_noise``, relative to each device's conductance, per read) is not a
programming step: the tile draws it at every read (:meth:`DeviceParams.read_sigma`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

__all__ = ["DeviceParams", "ProgrammedArray", "program"]

# one random stream per effect: np.random.default_rng((seed, EFFECT, layer, tile))
_D2D, _PROG, _FAULT, _DRIFT = 1, 2, 3, 4


def _check_number(name: str, value, *, low: float = 0.0, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name} must be a finite number, not {value!r}")
    if value < low or (low_open and value == low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low:g}, not {value:g}")
    return float(value)


@dataclass(frozen=True)
class DeviceParams:
    """Device conductance range and non-idealities; an effect is off when its parameter is 0 (or None).

    Parameters
    ----------
    g_min, g_max : float
        Off and on conductance in siemens (``0 <= g_min < g_max``). Defaults: 10 uS on (100 kOhm), on/off
        ratio 100 — an assumed high-resistance ReRAM operating point, not a measured device, chosen so
        that IR drop stays moderate (``G_max * r_wire * N**2 / 2`` about 0.2 for 128 x 128 cells at
        2.5 ohm per cell); aihwkit's PCM model, for comparison, maps weights onto ``G_max = 25 uS``.
    levels : int or None
        Distinguishable conductance states (>= 2); None means continuous.
    prog_noise : float
        Standard deviation of the programming error, as a fraction of ``g_max - g_min``.
    d2d : float
        Standard deviation of each device's fixed multiplicative gain (device-to-device variation).
    read_noise : float
        Standard deviation of the per-read fluctuation, as a fraction of the device's conductance.
    drift_nu, drift_nu_std : float
        Mean and device-to-device spread of the drift exponent.
    drift_t0, t_read : float
        Drift reference time and the time of the read, in seconds after programming (``t_read >= drift_t0``).
    stuck_on, stuck_off : float
        Probability of a device stuck at ``g_max`` / ``g_min`` (each in [0, 1], their sum at most 1).
    seed : int
        Seed of every programming-time random stream.
    """

    g_min: float = 0.1e-6
    g_max: float = 10e-6
    levels: int | None = None
    prog_noise: float = 0.0
    d2d: float = 0.0
    read_noise: float = 0.0
    drift_nu: float = 0.0
    drift_nu_std: float = 0.0
    drift_t0: float = 20.0
    t_read: float = 20.0
    stuck_on: float = 0.0
    stuck_off: float = 0.0
    seed: int = 0

    def __post_init__(self):
        _check_number("G_min", self.g_min)
        _check_number("G_max", self.g_max, low_open=True)
        if self.g_min >= self.g_max:
            raise ValueError(f"G_min ({self.g_min:g} S) must be below G_max ({self.g_max:g} S)")
        if self.levels is not None:
            if isinstance(self.levels, bool) or not isinstance(self.levels, int):
                raise TypeError(f"Conductance levels must be an integer or None, not {self.levels!r}")
            if self.levels < 2:
                raise ValueError(f"Conductance levels must be at least 2, not {self.levels}")
        for name, label in (("prog_noise", "Programming noise"), ("d2d", "Device-to-device variation"),
                            ("read_noise", "Read noise"), ("drift_nu", "Drift exponent"),
                            ("drift_nu_std", "Drift exponent spread")):
            _check_number(label, getattr(self, name))
        _check_number("Drift reference time", self.drift_t0, low_open=True)
        _check_number("Read time", self.t_read)
        if self.t_read < self.drift_t0:
            raise ValueError(f"Read time {self.t_read:g} s must not precede the drift reference time "
                             f"{self.drift_t0:g} s")
        for name, label in (("stuck_on", "Stuck-at-on fault rate"), ("stuck_off", "Stuck-at-off fault rate")):
            rate = getattr(self, name)
            if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
                raise ValueError(f"{label} {rate!r} is outside [0, 1]")
        if self.stuck_on + self.stuck_off > 1.0:
            raise ValueError(f"Stuck-at fault rates add up to {self.stuck_on + self.stuck_off:g}, more than 1")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"Seed must be a non-negative integer, not {self.seed!r}")

    @property
    def g_range(self) -> float:
        """``g_max - g_min``: the conductance step of one ternary weight unit."""
        return self.g_max - self.g_min

    @property
    def cell_scale(self) -> int:
        """Integer value of an ideal ``+1`` cell: ``levels - 1`` level steps, or 1 when continuous."""
        return 1 if self.levels is None else self.levels - 1

    @property
    def drifts(self) -> bool:
        return (self.drift_nu > 0 or self.drift_nu_std > 0) and self.t_read > self.drift_t0

    @property
    def static_ideal(self) -> bool:
        """True if programming leaves every device exactly on its target (no static effect is on)."""
        return self.prog_noise == 0 and self.d2d == 0 and self.stuck_on == 0 and self.stuck_off == 0 \
            and not self.drifts

    def replace(self, **changes) -> "DeviceParams":
        """A copy with ``changes`` applied (validated again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return DeviceParams(**values)

    def read_sigma(self, g: np.ndarray) -> np.ndarray:
        """Standard deviation of one read of devices of conductance ``g`` (siemens)."""
        return self.read_noise * np.abs(g)


@dataclass(frozen=True)
class ProgrammedArray:
    """The conductances of one programmed array at read time, shape ``(rows, cols)`` each.

    ``level_pos``/``level_neg`` hold the integer state of every device when the device has finite levels
    and nothing moved it off a level afterwards (no drift); otherwise they are None.
    """

    g_pos: np.ndarray
    g_neg: np.ndarray
    level_pos: np.ndarray | None
    level_neg: np.ndarray | None

    def cells(self) -> np.ndarray:
        """Integer cell values ``level+ - level-`` (the quantised cells the RTL tile accumulates)."""
        if self.level_pos is None:
            raise ValueError("Integer cell values exist only for devices with finite levels and no drift")
        return self.level_pos.astype(np.int64) - self.level_neg.astype(np.int64)


def program(weights: np.ndarray, params: DeviceParams, tile: int = 0, layer: int = 0) -> ProgrammedArray:
    """Program ternary ``weights`` (any 2-D shape, values in {-1, 0, +1}) onto device pairs.

    ``layer`` and ``tile`` select independent random streams for each tile of each layer (same
    ``params.seed``).
    """
    w = np.asarray(weights)
    if w.ndim != 2:
        raise ValueError(f"Weights must be a 2-D array, not shape {w.shape}")
    if not np.isin(w, (-1, 0, 1)).all():
        raise ValueError("Weights must be ternary (-1, 0, +1) to be programmed onto a device pair")
    p = params
    g = np.stack([np.where(w > 0, p.g_max, p.g_min), np.where(w < 0, p.g_max, p.g_min)]).astype(np.float64)

    def rng(effect: int) -> np.random.Generator:
        return np.random.default_rng((p.seed, effect, layer, tile))

    if p.d2d > 0:
        g = g * (1.0 + p.d2d * rng(_D2D).standard_normal(g.shape))
    if p.prog_noise > 0:
        g = g + p.prog_noise * p.g_range * rng(_PROG).standard_normal(g.shape)
    levels = None
    if p.levels is not None:
        step = p.g_range / (p.levels - 1)
        levels = np.clip(np.floor((g - p.g_min) / step + 0.5), 0, p.levels - 1).astype(np.int64)
        g = p.g_min + levels * step
    else:
        g = np.maximum(g, 0.0)
    if p.stuck_on > 0 or p.stuck_off > 0:
        u = rng(_FAULT).random(g.shape)
        on, off = u < p.stuck_on, (u >= p.stuck_on) & (u < p.stuck_on + p.stuck_off)
        g = np.where(on, p.g_max, np.where(off, p.g_min, g))
        if levels is not None:
            levels = np.where(on, p.levels - 1, np.where(off, 0, levels))
    if p.drifts:
        nu = np.maximum(p.drift_nu + p.drift_nu_std * rng(_DRIFT).standard_normal(g.shape), 0.0)
        g = g * (p.t_read / p.drift_t0) ** (-nu)
        levels = None
    if levels is None:
        return ProgrammedArray(g[0], g[1], None, None)
    return ProgrammedArray(g[0], g[1], levels[0], levels[1])
