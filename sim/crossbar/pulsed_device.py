"""Pulsed conductance updates of one array of analog devices: the device model in-situ learning writes through.

A weight lives on a device pair (``G+ - G-`` against a reference) and is kept here in normalised units, as
aihwkit keeps it: ``w`` in ``[w_min, w_max]`` with ``w_min <= 0 <= w_max``, one pulse moving it by about
``dw_min``. The step of one pulse follows the published behavioural models of aihwkit 1.2's pulsed devices
(the C++ update rules of ``ConstantStepDevice``, ``LinearStepDevice`` / ``SoftBoundsDevice`` and
``ExpStepDevice``):

- ``constant``: ``dw = +-scale``;
- ``linear`` (soft bounds when ``gamma = 1``): up ``dw = scale_up + slope_up * w`` with
  ``slope_up = -gamma_up * scale_up / w_max``, down ``dw = -(scale_down + slope_down * w)`` with
  ``slope_down = -gamma_down * scale_down / w_min``: the step shrinks linearly towards the bound;
- ``exp``: ``z = 2 a w / (b_max - b_min) + b``; up ``dw = scale_up * max(1 - A_up e^{gamma_up z}, 0)``, down
  ``dw = -scale_down * max(1 - A_down e^{-gamma_down z}, 0)``.

``scale_up``/``scale_down`` carry the up/down asymmetry: ``(1 + up_down) dw_min`` / ``dw_min`` for
``up_down < 0`` and ``dw_min`` / ``(1 - up_down) dw_min`` otherwise (aihwkit's ``up_bias``/``down_bias``).
Device-to-device variation (drawn once per device when the array is made): a gain ``1 + dw_min_dtod N``
on both steps, ``+-up_down_dtod N`` between them, and ``1 + w_max_dtod N`` / ``1 + w_min_dtod N`` on the bounds. Cycle-to-cycle
variation: every step times ``1 + dw_min_std N`` (``mult_noise``) or its constant part so (additive).
Write noise: the value the array reads is ``w + write_noise_std * dw_min * N``, drawn anew at every write
of that device. Drift after the last write: ``w (t / drift_t0)^-nu`` with ``nu ~ N(drift_nu,
drift_nu_std)`` per device. Finite states: ``(w_max - w_min) / dw_min`` pulse steps span the range.

Every pulse is counted per device (endurance) and priced with ``pulse_energy_j`` and ``pulse_time_s``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

__all__ = ["MODELS", "PulsedDevice", "PulsedArray"]

#: Update-step shapes (the aihwkit device each follows is named in the module docstring).
MODELS = ("constant", "linear", "exp")


def _number(name: str, value, low: float | None = None, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, not {value!r}")
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low:g}, not {value:g}")
    return float(value)


@dataclass(frozen=True)
class PulsedDevice:
    """One device kind: update-step shape, variations, and what a pulse costs (see the module docstring).

    ``pulse_energy_j`` is the energy of one programming pulse on one device, ``pulse_time_s`` its width,
    ``endurance`` the pulses a device survives; ``source`` names the publication of the step parameters.
    """

    name: str
    model: str
    dw_min: float
    w_min: float = -1.0
    w_max: float = 1.0
    up_down: float = 0.0
    gamma_up: float = 0.0
    gamma_down: float = 0.0
    es_a: float = 0.0
    es_b: float = 0.0
    es_A_up: float = 0.0
    es_A_down: float = 0.0
    mult_noise: bool = True
    dw_min_dtod: float = 0.0
    up_down_dtod: float = 0.0
    w_max_dtod: float = 0.0
    w_min_dtod: float = 0.0
    dw_min_std: float = 0.0
    write_noise_std: float = 0.0
    drift_nu: float = 0.0
    drift_nu_std: float = 0.0
    drift_t0: float = 1.0
    pulse_energy_j: float = 0.0
    pulse_time_s: float = 1e-9
    endurance: float = math.inf
    source: str = ""

    def __post_init__(self):
        if self.model not in MODELS:
            raise ValueError(f"device model {self.model!r} is not one of {', '.join(MODELS)}")
        _number("dw_min", self.dw_min, 0.0, low_open=True)
        _number("w_min", self.w_min)
        _number("w_max", self.w_max)
        if not self.w_min <= 0.0 <= self.w_max or self.w_min == self.w_max:
            raise ValueError(f"weight range [{self.w_min:g}, {self.w_max:g}] must contain 0 and be non-empty")
        if self.dw_min > self.w_max - self.w_min:
            raise ValueError(f"one pulse step dw_min={self.dw_min:g} is beyond the conductance range "
                             f"{self.w_max - self.w_min:g}: choose dw_min below w_max - w_min")
        if not -1.0 < _number("up_down", self.up_down) < 1.0:
            raise ValueError(f"up_down must lie in (-1, 1), not {self.up_down:g}")
        for name in ("gamma_up", "gamma_down", "dw_min_dtod", "up_down_dtod", "w_max_dtod", "w_min_dtod", "dw_min_std",
                     "write_noise_std", "drift_nu", "drift_nu_std"):
            _number(name, getattr(self, name), 0.0)
        for name in ("es_a", "es_b", "es_A_up", "es_A_down"):
            _number(name, getattr(self, name))
        _number("drift_t0", self.drift_t0, 0.0, low_open=True)
        _number("pulse energy (J)", self.pulse_energy_j, 0.0)
        _number("pulse time (s)", self.pulse_time_s, 0.0, low_open=True)
        if not (isinstance(self.endurance, (int, float)) and self.endurance > 0):
            raise ValueError(f"endurance must be a positive number of pulses, not {self.endurance!r}")

    @property
    def states(self) -> int:
        """Pulse steps across the weight range: the device's number of distinguishable states."""
        return int(round((self.w_max - self.w_min) / self.dw_min))

    def replace(self, **changes) -> "PulsedDevice":
        """A copy with ``changes`` applied (validated again)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return PulsedDevice(**values)


class PulsedArray:
    """The weights of one ``(rows, cols)`` array of ``device``, written only by pulses.

    ``w`` is the persistent state, :meth:`read` what a read sees (write noise, drift); ``pulses`` counts the
    pulses every device has taken. Every random draw comes from ``np.random.default_rng(seed)``.
    """

    def __init__(self, device: PulsedDevice, shape: tuple[int, int], seed: int = 0):
        d = self.device = device
        self.rng = rng = np.random.default_rng(seed)
        gain = np.maximum(1.0 + d.dw_min_dtod * rng.standard_normal(shape), 0.0)
        r = d.up_down_dtod * rng.standard_normal(shape)
        up_bias, down_bias = (0.0, -d.up_down) if d.up_down > 0 else (d.up_down, 0.0)
        self.scale_up = np.abs(up_bias + gain + r) * d.dw_min
        self.scale_down = np.abs(down_bias + gain - r) * d.dw_min
        self.w_max = np.abs(d.w_max * (1.0 + d.w_max_dtod * rng.standard_normal(shape)))
        self.w_min = -np.abs(d.w_min * (1.0 + d.w_min_dtod * rng.standard_normal(shape)))
        # aihwkit's mean-bound reference: slopes relative to the nominal bounds
        self.slope_up = -d.gamma_up * self.scale_up / d.w_max if d.w_max else np.zeros(shape)
        self.slope_down = -d.gamma_down * self.scale_down / d.w_min if d.w_min else np.zeros(shape)
        self.nu = (np.maximum(d.drift_nu + d.drift_nu_std * rng.standard_normal(shape), 0.0)
                   if d.drift_nu or d.drift_nu_std else None)
        self.w = np.zeros(shape)
        self.noise = np.zeros(shape)
        self.pulses = np.zeros(shape, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, int]:
        return self.w.shape

    def set(self, w: np.ndarray) -> None:
        """Program the state directly (the starting point of a learning run; no pulses are counted)."""
        w = np.asarray(w, dtype=np.float64)
        if w.shape != self.shape:
            raise ValueError(f"weights of shape {w.shape} do not fit an array of shape {self.shape}")
        if (w > self.w_max).any() or (w < self.w_min).any():
            raise ValueError(f"weights in [{w.min():g}, {w.max():g}] are beyond the conductance range "
                             f"[{self.device.w_min:g}, {self.device.w_max:g}] of {self.device.name}")
        self.w = w.copy()

    def step(self, w: np.ndarray, up: np.ndarray, idx) -> np.ndarray:
        """The state after one pulse on the devices ``idx`` (flat indices) from state ``w``; ``up``: direction."""
        d, rng = self.device, self.rng
        su, sd = self.scale_up.flat[idx], self.scale_down.flat[idx]
        noise = rng.standard_normal(w.shape) * d.dw_min_std if d.dw_min_std else 0.0
        if d.model == "exp":
            z = 2.0 * w / (self.w_max.flat[idx] - self.w_min.flat[idx]) * d.es_a + d.es_b
            y_up = np.maximum(1.0 - d.es_A_up * np.exp(d.gamma_up * z), 0.0)
            y_down = np.maximum(1.0 - d.es_A_down * np.exp(-d.gamma_down * z), 0.0)
            dw = np.where(up, y_up * su, -y_down * sd) * (1.0 + noise)
        else:
            scale = np.where(up, su, -sd)
            if d.model == "linear":
                slope = np.where(up, self.slope_up.flat[idx], -self.slope_down.flat[idx]) * w
            else:
                slope = 0.0
            dw = (slope + scale) * (1.0 + noise) if d.mult_noise else slope + scale * (1.0 + noise)
        return np.clip(w + dw, self.w_min.flat[idx], self.w_max.flat[idx])

    def pulse(self, counts: np.ndarray, rows: np.ndarray | None = None) -> int:
        """Apply ``counts`` pulses to every device (positive: up, negative: down), one at a time; returns the
        number of pulses applied. With ``rows``, ``counts`` holds only those rows (the others take none)."""
        counts = np.asarray(counts)
        want = self.shape if rows is None else (len(rows), self.shape[1])
        if counts.shape != want:
            raise ValueError(f"pulse counts of shape {counts.shape} do not fit {want} devices of the array")
        sub = np.flatnonzero(counts)
        if not sub.size:
            return 0
        c = counts.flat[sub]
        idx = sub if rows is None else np.asarray(rows)[sub // want[1]] * want[1] + sub % want[1]
        n, up = np.abs(c), c > 0
        w = self.w.flat[idx]
        for k in range(1, int(n.max()) + 1):
            live = n >= k
            w[live] = self.step(w[live], up[live], idx[live])
        self.w.flat[idx] = w
        if self.device.write_noise_std:
            self.noise.flat[idx] = self.device.write_noise_std * self.device.dw_min * \
                self.rng.standard_normal(idx.size)
        self.pulses.flat[idx] += n
        return int(n.sum())

    def pulse_all(self, up: bool) -> int:
        """One pulse on every device of the array, all up or all down; returns the number of pulses."""
        flat = self.w.reshape(-1)
        flat[:] = self.step(flat, np.full(flat.size, up), slice(None))
        if self.device.write_noise_std:
            self.noise = self.device.write_noise_std * self.device.dw_min * self.rng.standard_normal(self.shape)
        self.pulses += 1
        return flat.size

    def read(self, t: float | None = None, column: int | None = None) -> np.ndarray:
        """The weights a read sees (of one ``column`` only, if given): state plus write noise, drifted to ``t``
        seconds after the last write (``None`` or ``t <= drift_t0``: no drift)."""
        at = np.s_[:] if column is None else np.s_[:, column]
        w = self.w[at] + self.noise[at]
        if t is not None and self.nu is not None and t > self.device.drift_t0:
            w = w * (t / self.device.drift_t0) ** -self.nu[at]
        return w

    def energy_j(self) -> float:
        """Write energy of every pulse applied so far."""
        return float(self.pulses.sum()) * self.device.pulse_energy_j
