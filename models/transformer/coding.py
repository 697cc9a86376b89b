"""Spike coding of activations: encoders to binary spike trains, decoders back, and their closed forms.

Every coding maps a real activation ``x`` and a per-layer threshold ``theta > 0`` to a **signed binary
spike train** of ``T`` timesteps (values in {-1, 0, +1}: a spike of the positive or the negative
neuron of a sign-split pair) and decodes a train back to a real value. Each coding is also given in
closed form — an integer **code** per activation (:meth:`Coding.quantize`), its value
(:meth:`Coding.dequantize`) and its spike count (:meth:`Coding.spike_count`) — which is what the
converter runs; the tests prove that the closed form and the literal spike trains agree.

Codings (``T`` = timesteps; rounding is the number-format spec's one rule, half away from zero)
--------------------------------------------------------------------------------------------------
``rate``
    Integrate-and-fire neuron, reset by subtraction, membrane starting at ``theta / 2``, driven by the
    constant input ``|x|`` for ``T`` steps; ``k`` spikes decode to ``sign(x) * k * theta / T``. The count
    is ``k = min(T, floor(T |x| / theta + 1/2))``. Resolution ``theta / T``; values on that grid in
    ``[-theta, theta]`` round-trip exactly; others go to the nearest grid point (ties away from zero),
    clipped at ``±theta``.
``ttfs``
    Time to first spike with a base-2 exponential kernel: at most one spike, at step ``t``, decoding to
    ``sign(x) * theta * 2**-t`` (no spike decodes to 0). ``|x|`` goes to the nearest of
    ``{0} ∪ {theta 2**-t : t < T}`` (ties towards the larger magnitude). A logarithmic code: dynamic
    range ``2**(T-1)`` with ``T`` steps and one spike. Values of that set round-trip exactly.
``ttfs-linear``
    Time to first spike with a linear kernel: one spike at step ``t`` decodes to
    ``sign(x) * theta * (T - t) / T``; the same levels as ``rate`` with at most one spike.
``unary``
    Integer spike counts as binary spikes: the integer ``q = round(x D / theta)`` clipped to ``[-D, D]``
    (``D = T``) is emitted as ``|q|`` spikes in the first ``|q|`` steps (a thermometer code). Same codes
    as ``rate`` (so the same quality and spike count); the spikes come as a burst instead of spread out.
``bitplane``
    Integer spike counts as bit-planes: ``q = round(x D / theta)``, ``D = 2**T - 1``, clipped to
    ``[-D, D]``; step ``t`` carries bit ``T-1-t`` of ``|q|`` (most significant first) with weight
    ``2**(T-1-t)``. ``T + 1`` bits of signed integer in ``T`` steps: ``T = 7`` is the int8 activation of
    the number-format spec; resolution ``theta / (2**T - 1)``; spikes = popcount(``|q|``), the bit
    spikes of the event vocabulary (:func:`models.program.events.bit_spikes`; ``-1`` costs one spike).

``decode(encode(x)) == dequantize(quantize(x))`` holds exactly for every coding, and for inputs on a
coding's grid both equal ``x`` (the promised resolution). The IF simulation of ``rate`` runs in float64;
for inputs whose ``T |x| / theta`` lies within float64 rounding of a half-integer tie, the simulated
count and the closed form can differ by one spike (the tests use dyadic inputs, exact in float64).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from models.program.events import bit_spikes

__all__ = ["CODINGS", "MAX_TIMESTEPS", "Coding", "round_half_away", "bits_of_resolution"]

#: Every coding name.
CODINGS = ("rate", "ttfs", "ttfs-linear", "unary", "bitplane")

#: Largest timestep count a coding accepts (bit-planes of more than 30 bits do not fit an int32 code).
MAX_TIMESTEPS = 30


def round_half_away(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer, halves away from zero (the number-format spec's rule)."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


@dataclass(frozen=True)
class Coding:
    """One spike coding at ``timesteps`` steps (see the module docstring)."""

    name: str
    timesteps: int

    def __post_init__(self) -> None:
        if self.name not in CODINGS:
            raise ValueError(f"unknown spike coding {self.name!r}; choose one of {', '.join(CODINGS)}")
        if not isinstance(self.timesteps, int) or isinstance(self.timesteps, bool):
            raise TypeError(f"timesteps must be an integer, not {self.timesteps!r}")
        if not 1 <= self.timesteps <= MAX_TIMESTEPS:
            raise ValueError(f"timesteps must be between 1 and {MAX_TIMESTEPS}, not {self.timesteps}")

    # ------------------------------------------------------------------ properties
    @property
    def max_code(self) -> int:
        """Largest code magnitude: ``T`` (rate, unary, ttfs-linear), ``2**T - 1`` (bitplane), ``T`` (ttfs:
        codes are ``T - t`` for a spike at step ``t``, 0 for none)."""
        if self.name == "bitplane":
            return (1 << self.timesteps) - 1
        return self.timesteps

    @property
    def max_spikes_per_value(self) -> int:
        """Most spikes one activation can emit."""
        if self.name in ("ttfs", "ttfs-linear"):
            return 1
        return self.timesteps

    def step_weights(self) -> list[float]:
        """Decoded value of one spike at each step, in units of ``theta``."""
        T = self.timesteps
        if self.name in ("rate", "unary"):
            return [1.0 / T] * T
        if self.name == "ttfs":
            return [2.0 ** -t for t in range(T)]
        if self.name == "ttfs-linear":
            return [(T - t) / T for t in range(T)]
        D = float((1 << T) - 1)
        return [(1 << (T - 1 - t)) / D for t in range(T)]

    # ------------------------------------------------------------------ closed form
    def quantize(self, x: torch.Tensor, theta) -> torch.Tensor:
        """Signed integer codes (int32) of ``x``; ``theta`` broadcasts against ``x``."""
        T = self.timesteps
        a = x.abs().double() / torch.as_tensor(theta, dtype=torch.float64)
        sign = torch.sign(x).to(torch.int32)
        if self.name == "ttfs":
            # nearest of {0} ∪ {2**-t}: frexp gives a = f 2**e, f in [0.5, 1); candidates 2**e, 2**(e-1)
            a = a.clamp(max=1.0)
            f, e = torch.frexp(a)
            up = f >= 0.75                         # nearer (or tied) to 2**e than to 2**(e-1)
            t = torch.where(up, -e, 1 - e).to(torch.int64)
            t = torch.where(a >= 1.0, torch.zeros_like(t), t)
            last = T - 1
            keep = (t <= last) | (a >= 0.5 * 2.0 ** -last)   # below half the smallest level: no spike
            t = t.clamp(max=last)
            code = torch.where(keep & (a > 0), T - t, torch.zeros_like(t)).to(torch.int32)
            return sign * code
        D = self.max_code
        if self.name == "bitplane":
            k = torch.floor(a * D + 0.5)
        else:  # rate, unary, ttfs-linear: nearest of k/T, ties away from zero (IF neuron from theta/2)
            k = torch.floor(a * T + 0.5)
        return sign * k.clamp(max=D).to(torch.int32)

    def dequantize(self, codes: torch.Tensor, theta) -> torch.Tensor:
        """Real values (float32) of integer codes."""
        T = self.timesteps
        c = codes.to(torch.float32)
        theta = torch.as_tensor(theta, dtype=torch.float32)
        if self.name == "ttfs":
            mag = c.abs()
            val = torch.where(mag > 0, torch.exp2(mag - T), torch.zeros_like(mag))   # 2**-(T - code)
            return torch.sign(c) * val * theta
        return c * (theta / float(self.max_code))

    def spike_count(self, codes: torch.Tensor) -> torch.Tensor:
        """Spikes (int32) each code emits: its input events (:mod:`models.program.events`); for ``bitplane``
        the sign-magnitude bit spikes of the code."""
        if self.name == "bitplane":
            return self.bit_spikes(codes)
        m = codes.abs()
        if self.name in ("ttfs", "ttfs-linear"):
            return (m > 0).to(torch.int32)
        return m.to(torch.int32)

    def levels(self, codes: torch.Tensor) -> torch.Tensor:
        """Signed values (int64) of ``codes`` in units of the coding's finest step: the codes themselves,
        except ``ttfs`` (value ``theta 2**(c - T)``: ``sign(c) 2**(|c| - 1)`` steps of ``theta 2**(1 - T)``)."""
        c = codes.to(torch.int64)
        if self.name == "ttfs":
            return torch.sign(c) * (torch.ones_like(c) << (c.abs() - 1).clamp(min=0))
        return c

    def bit_spikes(self, codes: torch.Tensor) -> torch.Tensor:
        """Spikes (int32) of each value sent as sign-magnitude bit planes of its :meth:`levels`:
        :func:`models.program.events.bit_spikes` (``popcount(|level|)``)."""
        n = bit_spikes(self.levels(codes).cpu().numpy())
        return torch.from_numpy(n).to(device=codes.device, dtype=torch.int32)

    def quantize_value(self, x: torch.Tensor, theta) -> torch.Tensor:
        """``dequantize(quantize(x))``: what the spike train of ``x`` decodes to."""
        return self.dequantize(self.quantize(x, theta), theta)

    # ------------------------------------------------------------------ literal spike trains
    def encode(self, x: torch.Tensor, theta) -> torch.Tensor:
        """Spike train of ``x``: int8 tensor ``(T, *x.shape)`` with values in {-1, 0, +1}."""
        T = self.timesteps
        sign = torch.sign(x).to(torch.int8)
        if self.name == "rate":
            thr = torch.as_tensor(theta, dtype=torch.float64)
            drive = x.abs().double()
            v = (thr / 2).expand_as(drive).clone()      # membrane potential, starts at theta / 2
            out = []
            for _ in range(T):
                v = v + drive
                s = v >= thr
                v = torch.where(s, v - thr, v)           # reset by subtraction
                out.append(s.to(torch.int8) * sign)
            return torch.stack(out)
        codes = self.quantize(x, theta)
        m = codes.abs()
        steps = torch.arange(T).view(T, *([1] * x.dim()))
        if self.name in ("ttfs", "ttfs-linear"):
            t_fire = T - m                                # code T - t  <->  one spike at step t
            s = (m > 0).unsqueeze(0) & (steps == t_fire.unsqueeze(0))
        elif self.name == "unary":
            s = steps < m.unsqueeze(0)
        else:  # bitplane, most significant plane first
            s = ((m.unsqueeze(0) >> (T - 1 - steps)) & 1) > 0
        return s.to(torch.int8) * sign.unsqueeze(0)

    def decode(self, train: torch.Tensor, theta) -> torch.Tensor:
        """Real values (float32) of a spike train ``(T, ...)``: the sum of its spikes times the step weights."""
        if train.shape[0] != self.timesteps:
            raise ValueError(f"spike train has {train.shape[0]} steps, the {self.name} coding has {self.timesteps}")
        if self.name == "ttfs":   # exact powers of two: sum in float64, then scale
            w = torch.tensor([2.0 ** -t for t in range(self.timesteps)], dtype=torch.float64)
            v = (train.double() * w.view(-1, *([1] * (train.dim() - 1)))).sum(0)
            return (v * torch.as_tensor(theta, dtype=torch.float64)).to(torch.float32)
        if self.name == "ttfs-linear":
            w = torch.arange(self.timesteps, 0, -1, dtype=torch.float64)     # T - t
        elif self.name == "bitplane":
            w = torch.tensor([float(1 << (self.timesteps - 1 - t)) for t in range(self.timesteps)], dtype=torch.float64)
        else:
            w = torch.ones(self.timesteps, dtype=torch.float64)
        k = (train.double() * w.view(-1, *([1] * (train.dim() - 1)))).sum(0)   # the integer code
        return self.dequantize(k.to(torch.int32), theta)

    def train_weights(self, theta) -> torch.Tensor:
        """Per-step decode weights times ``theta`` (float32, shape ``(T, *theta.shape)``)."""
        w = torch.tensor(self.step_weights(), dtype=torch.float64)
        th = torch.as_tensor(theta, dtype=torch.float64)
        return (w.view(-1, *([1] * th.dim())) * th).to(torch.float32)


def bits_of_resolution(coding: Coding) -> float:
    """log2 of the number of distinct magnitudes (levels above zero) a coding represents."""
    return math.log2(coding.max_code)
