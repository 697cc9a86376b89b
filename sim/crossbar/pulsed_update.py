"""Stochastic outer-product pulse updates (the resistive processing unit scheme, Gokmen & Vlasov 2016).

An SGD step ``W -= lr * d x^T`` is done in the array in ``bl`` pulse slots: in each slot row ``i`` fires
with probability ``c_d |d_i|`` and column ``j`` with ``c_x |x_j|``; a device whose row and column both fire
takes one pulse, signed ``-sign(d_i x_j)``. The expected change is ``bl * dw_min * c_x c_d |d_i x_j|``, so
``c_x c_d = lr / (bl * dw_min)``; update management (aihwkit's ``update_bl_management`` with
``update_management``) balances the two by the largest ``|x|`` and ``|d|``. A probability above 1 is
clipped (the slot cannot fire twice): :attr:`PulseStats.clipped` counts the rows and columns so limited.
Every firing of a row or column line in a slot is counted (:attr:`PulseStats.line_fires`): the line drives the
periphery pays for, apart from the pulses the devices take.

:class:`AnalogSGD` is plain SGD on one array; the backward pass, where a layer below needs it, is a
transposed read of the same array (:meth:`AnalogSGD.backward`, counted in :attr:`PulseStats.reads`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from sim.crossbar.pulsed_device import PulsedArray, PulsedDevice

__all__ = ["PulseUpdate", "PulseStats", "Pulses", "AnalogSGD", "pulse_trains", "pulse_counts"]


@dataclass(frozen=True)
class PulseUpdate:
    """Learning rate and pulse-train length of the stochastic update.

    A learning rate is refused when the pulse resolution cannot express it: one unit outer product
    (``|x| = |d| = 1``) must fit in ``bl`` pulses of ``dw_min``, i.e. ``lr <= bl * dw_min``; a train whose
    ``bl`` pulses could carry a weight beyond the device's conductance range in one update is refused too.
    """

    lr: float
    bl: int = 31

    def __post_init__(self):
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) \
                or self.lr <= 0:
            raise ValueError(f"learning rate must be a positive number, not {self.lr!r}")
        if isinstance(self.bl, bool) or not isinstance(self.bl, int) or self.bl < 1:
            raise ValueError(f"pulse-train length bl must be a positive integer, not {self.bl!r}")

    def check(self, device: PulsedDevice) -> None:
        """Refuse (one line) a learning rate ``device`` cannot express in ``bl`` pulses, or an update longer than
        the conductance range."""
        span = device.w_max - device.w_min
        if self.bl * device.dw_min > span:
            raise ValueError(f"one update of bl={self.bl} pulses of dw_min={device.dw_min:g} can move a weight by "
                             f"{self.bl * device.dw_min:g}, beyond the conductance range {span:g}: lower bl to "
                             f"<= {int(span / device.dw_min)}")
        if self.lr > self.bl * device.dw_min:
            need = math.ceil(self.lr / device.dw_min)
            raise ValueError(f"learning rate {self.lr:g} needs {need} pulses of dw_min={device.dw_min:g} per unit "
                             f"update, more than bl={self.bl}: lower it to <= {self.bl * device.dw_min:g} "
                             f"or raise bl to {need}")


@dataclass
class PulseStats:
    """What the updates cost: pulses, updates (each ``bl`` slots long), line firings, reads and clipped
    probabilities."""

    pulses: int = 0
    updates: int = 0
    slots: int = 0
    line_fires: int = 0
    reads: int = 0
    clipped: int = 0
    extra: dict = field(default_factory=dict)

    def add(self, p: "Pulses", applied: int, slots: int) -> None:
        """Count one pulsed update: ``applied`` pulses in ``slots`` slots, with ``p``'s firings and clips."""
        self.pulses += applied
        self.slots += slots
        self.line_fires += p.line_fires
        self.clipped += p.clipped


class Pulses(NamedTuple):
    """One stochastic update: the rows whose line fired, their signed pulses per device, the clipped
    probabilities and the row and column line firings over all slots."""

    rows: np.ndarray
    counts: np.ndarray
    clipped: int
    line_fires: int


def _probabilities(x: np.ndarray, d: np.ndarray, rule: PulseUpdate, dw_min: float):
    """Per-slot firing probabilities of the column and row lines (None if ``x`` or ``d`` is all zero)."""
    ax, ad = np.abs(x), np.abs(d)
    mx, md = float(ax.max(initial=0.0)), float(ad.max(initial=0.0))
    if mx == 0.0 or md == 0.0:
        return None
    k = rule.lr / (rule.bl * dw_min)
    return ax * math.sqrt(k * md / mx), ad * math.sqrt(k * mx / md)   # c_x mx == c_d md == sqrt(k mx md)


def pulse_trains(x: np.ndarray, d: np.ndarray, rule: PulseUpdate, dw_min: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Which column lines (``(bl, len(x))``) and row lines (``(bl, len(d))``) fire in each slot of the update
    ``W -= lr d x^T``; a device pulses where both of its lines fire, down where ``d_i x_j > 0``. The slots
    :func:`pulse_counts` sums (same random draws)."""
    p = _probabilities(x, d, rule, dw_min)
    if p is None:
        return np.zeros((rule.bl, x.size), dtype=bool), np.zeros((rule.bl, d.size), dtype=bool)
    return rng.random((rule.bl, x.size)) < p[0], rng.random((rule.bl, d.size)) < p[1]


def pulse_counts(x: np.ndarray, d: np.ndarray, rule: PulseUpdate, dw_min: float,
                 rng: np.random.Generator) -> Pulses:
    """The stochastic update ``W -= lr d x^T``: the rows whose line fired at least once, their signed pulses
    per device (shape ``(len(rows), len(x))``), the clipped probabilities and the line firings."""
    p = _probabilities(x, d, rule, dw_min)
    if p is None:
        return Pulses(np.zeros(0, dtype=np.int64), np.zeros((0, x.size), dtype=np.int32), 0, 0)
    clipped = int((p[0] > 1).sum() + (p[1] > 1).sum())
    fx, fd = pulse_trains(x, d, rule, dw_min, rng)
    rows = np.flatnonzero(fd.any(axis=0))
    coincide = (fd[:, rows].T.astype(np.float32) @ fx.astype(np.float32)).astype(np.int32)
    sign = -(np.sign(d[rows])[:, None] * np.sign(x)[None, :]).astype(np.int32)
    return Pulses(rows, coincide * sign, clipped, int(fx.sum()) + int(fd.sum()))


class AnalogSGD:
    """Plain SGD held in one array of ``device``: weights ``(out, in)``, updated by stochastic pulses."""

    def __init__(self, device: PulsedDevice, shape: tuple[int, int], rule: PulseUpdate, seed: int = 0):
        rule.check(device)
        self.rule, self.array = rule, PulsedArray(device, shape, seed)
        self.rng = np.random.default_rng((seed, 1))
        self.stats = PulseStats()

    @property
    def devices(self) -> list[PulsedArray]:
        return [self.array]

    def weights(self) -> np.ndarray:
        """The weights a forward read sees."""
        return self.array.read()

    def backward(self, d: np.ndarray) -> np.ndarray:
        """``W^T d``: the transposed read of the same array (one read)."""
        self.stats.reads += 1
        return self.weights().T @ d

    def update(self, x: np.ndarray, d: np.ndarray) -> None:
        """One SGD step ``W -= lr d x^T`` in pulses."""
        p = pulse_counts(x, d, self.rule, self.array.device.dw_min, self.rng)
        self.stats.add(p, self.array.pulse(p.counts, p.rows), self.rule.bl)
        self.stats.updates += 1
