"""Tiki-Taka: SGD that tolerates asymmetric devices (Gokmen & Haensch, Front. Neurosci. 14:103, 2020).

Two arrays of the same device: ``A`` takes every gradient step as stochastic pulses
(:func:`sim.crossbar.pulsed_update.pulse_counts`), ``C`` holds the weights. Every ``transfer_every``
updates one column of ``A`` is read (a forward read with a one-hot input) and added to ``C`` by a pulsed
update with learning rate ``lr_transfer``, columns in turn. The weights read as ``C + gamma * A``.

Its symmetry-point handling: an asymmetric device relaxes towards the conductance where an up and a down
pulse cancel (its symmetry point), which plain SGD feels as a bias and Tiki-Taka uses as a decay of ``A``
— but only if ``A`` reads zero there. :meth:`TikiTaka.find_symmetry_point` therefore drives every device
of ``A`` there with ``sp_pulses`` alternating up/down pulses and programs a reference array to the point
reached, by write-verify costed as one nominal pulse per ``dw_min`` of distance; ``A`` is read against it.
Every pulse of the three (``A``, ``C``, the reference) and every transfer read is counted.
"""

from __future__ import annotations

import numpy as np

from sim.crossbar.pulsed_device import PulsedArray, PulsedDevice
from sim.crossbar.pulsed_update import PulseStats, PulseUpdate, pulse_counts

__all__ = ["TikiTaka"]


class TikiTaka:
    """Tiki-Taka on two arrays of ``device`` with weights ``(out, in)`` (see the module docstring)."""

    def __init__(self, device: PulsedDevice, shape: tuple[int, int], rule: PulseUpdate, lr_transfer: float,
                 transfer_every: int = 1, gamma: float = 0.0, sp_pulses: int = 0, seed: int = 0):
        rule.check(device)
        transfer = PulseUpdate(lr_transfer, rule.bl)
        transfer.check(device)
        if isinstance(transfer_every, bool) or not isinstance(transfer_every, int) or transfer_every < 1:
            raise ValueError(f"transfer_every must be a positive integer, not {transfer_every!r}")
        if isinstance(sp_pulses, bool) or not isinstance(sp_pulses, int) or sp_pulses < 0:
            raise ValueError(f"sp_pulses must be a non-negative integer, not {sp_pulses!r}")
        self.rule, self.transfer, self.transfer_every, self.gamma = rule, transfer, transfer_every, float(gamma)
        self.fast = PulsedArray(device, shape, seed)
        self.slow = PulsedArray(device, shape, seed + 1_000_003)
        self.reference = np.zeros(shape)
        self.rng = np.random.default_rng((seed, 2))
        self.stats = PulseStats(extra={"transfers": 0, "sp_pulses": 0, "reference_pulses": 0})
        self.column = 0
        if sp_pulses:
            self.find_symmetry_point(sp_pulses)

    @property
    def devices(self) -> list[PulsedArray]:
        return [self.fast, self.slow]

    def find_symmetry_point(self, pulses: int) -> None:
        """Drive ``A`` to its symmetry point with ``pulses`` alternating up/down pulses per device, then
        program the reference to the point reached (write-verify, costed in nominal pulses)."""
        for k in range(pulses):
            self.stats.pulses += self.fast.pulse_all(up=k % 2 == 0)
        self.stats.extra["sp_pulses"] += pulses * self.fast.w.size
        self.reference = self.fast.read()
        ref_pulses = int(np.rint(np.abs(self.reference) / self.fast.device.dw_min).sum())
        self.stats.extra["reference_pulses"] += ref_pulses
        self.stats.pulses += ref_pulses

    def fast_weights(self) -> np.ndarray:
        """``A`` read against its reference."""
        return self.fast.read() - self.reference

    def weights(self) -> np.ndarray:
        """The weights a forward read sees: ``C + gamma * A``."""
        w = self.slow.read()
        return w + self.gamma * self.fast_weights() if self.gamma else w

    def update(self, x: np.ndarray, d: np.ndarray) -> None:
        """One SGD step into ``A``; every ``transfer_every`` steps one column of ``A`` moves into ``C``."""
        p = pulse_counts(x, d, self.rule, self.fast.device.dw_min, self.rng)
        self.stats.add(p, self.fast.pulse(p.counts, p.rows), self.rule.bl)
        self.stats.updates += 1
        if self.stats.updates % self.transfer_every == 0:
            self._transfer()

    def _transfer(self) -> None:
        k = self.column
        self.column = (k + 1) % self.fast.shape[1]
        col = self.fast.read(column=k) - self.reference[:, k]     # one forward read with input e_k
        self.stats.reads += 1
        onehot = np.zeros(self.fast.shape[1])
        onehot[k] = 1.0
        p = pulse_counts(onehot, -col, self.transfer, self.slow.device.dw_min, self.rng)
        self.stats.add(p, self.slow.pulse(p.counts, p.rows), self.transfer.bl)
        self.stats.extra["transfers"] += 1
