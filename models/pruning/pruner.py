"""Adaptive synaptic pruning of an integer program from the activation statistics it produces while it runs.

Pruning a synapse sets its ternary weight code to 0; every scale of the program stays as it is (the
hardware's static multiplier and shift are fixed), so a pruned program is still a program of the spec
and runs unchanged — and bit-exactly alike — on the torch integer view and the golden model.

Method
------
1. **Statistics while the model runs.** :func:`gather_stats` runs the torch integer view on token
   windows and records, for every projection (``layers.{l}.{proj}``, ``lm_head``) and every input
   channel ``i``, the mean square, mean magnitude and non-zero rate of the int8 activation code that
   enters the ternary accumulation, and for every output ``o`` the mean square of its accumulator.
   :meth:`ActivationStats.blend` mixes two such records with an exponential moving average — how the
   statistics follow a drifting input distribution.
2. **Saliency.** Removing synapse ``(o, i)`` takes ``code[o, i] * x_i`` out of accumulator ``o``.
   ``wanda`` (the default when the checkpoint is at hand): ``|code| * |w_latent| * rms(x_i)``, Wanda's
   ``|W| * ||X||`` with the latent float weight that absmean ternarization rounded (relative to its
   mean, :func:`latent_magnitudes`). ``activation``: ``|code| * rms(x_i)`` (a bare program: every live
   ternary synapse has ``|code| = 1``, so this ranks input channels only). ``magnitude`` (latent
   ``|w|`` alone) and ``random`` are the baselines; ``docs/pruning.md`` compares them.
3. **Granularity.** ``synapse``: single synapses, each output neuron losing the same fraction of its
   live synapses (Wanda's per-output comparison group; ``balance_rows=False``: one threshold per
   projection). ``input``: the whole fan-out of an input neuron (a column of
   ``codes``, a synapse row of the golden model: its events then reach nothing and an event-driven
   core can drop them). ``output``: the whole fan-in of an output neuron (a row of ``codes``, ranked
   by ``rms(acc_o)``).
4. **Per-layer thresholds.** Each projection ``p`` gets a sparsity ``s_p`` (the fraction of its
   non-zero synapses to remove) and a saliency threshold: everything below it is pruned, ties broken
   deterministically, so the achieved count is the target to within one synapse (``synapse``) or one
   neuron's synapses (``input``/``output``). Synapses in the ``essential`` mask are never candidates.
5. **Allocation across layers.** ``uniform``: ``s_p = s``. ``adaptive``: :func:`probe_sensitivity`
   prunes each projection alone at two probe sparsities and measures the rise of the calibration NLL;
   a power law ``d_p(s) = c_p * s**b_p`` through the two points is the projection's cost curve, and the
   allocation minimising ``sum_p d_p(s_p)`` for the global count ``s * N`` (``n_p`` live synapses per
   projection) solves ``b_p c_p s_p**(b_p - 1) = lam * n_p``, clipped to ``[0, max_layer_sparsity]``
   and water-filled to the exact global count: layers whose output matters less lose more.
6. **Quality budget.** :func:`fit_budget` bisects the global sparsity for the largest one whose
   calibration perplexity stays within ``(1 + budget)`` of the unpruned program's.
7. **Domain shift.** :meth:`SynapticPruner.update` blends new statistics in (EMA factor ``ema``) and
   re-thresholds every projection at its sparsity; synapses pruned before may come back (the base
   program is kept), others go. The change is reported per projection.

``python -m models.pruning.pruner`` (``nmllm prune``) sweeps pruned fractions on the bundled model and writes
perplexity, golden-model event counts and system-model energy per token to ``docs/pruning/``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from nmllm.command import add_command, run_module
from models.program.integer_program import IntegerProgram, Projection

__all__ = ["GRANULARITIES", "ALLOCATIONS", "SALIENCIES", "projection_names", "get_projection", "ActivationStats",
           "Sensitivity", "gather_stats", "latent_magnitudes", "SynapticPruner", "calibration_nll", "probe_sensitivity", "fit_budget"]

GRANULARITIES = ("synapse", "input", "output")
ALLOCATIONS = ("uniform", "adaptive")
SALIENCIES = ("wanda", "magnitude", "activation", "random")


# ------------------------------------------------------------------------------ validation helpers
def _check_sparsity(s, what: str = "sparsity") -> float:
    if isinstance(s, bool) or not isinstance(s, (int, float, np.floating, np.integer)) or not math.isfinite(float(s)) \
            or not 0.0 <= float(s) < 1.0:
        raise ValueError(f"{what} must be a fraction in [0, 1) of the non-zero synapses to remove, got {s!r}: "
                         f"use for example 0.3 (1 would remove every synapse)")
    return float(s)


def _check_ema(ema) -> float:
    if isinstance(ema, bool) or not isinstance(ema, (int, float, np.floating)) or not math.isfinite(float(ema)) \
            or not 0.0 < float(ema) <= 1.0:
        raise ValueError(f"ema must be in (0, 1] (the weight of the new statistics; 1 replaces the old ones), got {ema!r}")
    return float(ema)


def _check_choice(value, choices: Sequence[str], what: str) -> str:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")
    return value


# ------------------------------------------------------------------------------ program access
def projection_names(program: IntegerProgram) -> list[str]:
    """``layers.{l}.{proj}`` for every block projection in execution order, then ``lm_head``."""
    return [f"layers.{li}.{n}" for li in range(len(program.layers)) for n in program.projections] + ["lm_head"]


def get_projection(program: IntegerProgram, name: str) -> Projection:
    """The :class:`Projection` called ``name`` (see :func:`projection_names`)."""
    if name == "lm_head":
        return program.lm_head
    parts = name.split(".")
    if len(parts) == 3 and parts[0] == "layers" and parts[1].isdigit() and int(parts[1]) < len(program.layers) \
            and parts[2] in program.projections:
        return program.layers[int(parts[1])].proj[parts[2]]
    raise ValueError(f"unknown projection {name!r}: names are layers.{{0..{len(program.layers) - 1}}}."
                     f"{{{','.join(program.projections)}}} and lm_head")


def latent_magnitudes(model) -> dict[str, np.ndarray]:
    """``|w| / mean|w|`` of every projection's latent float weight (the scale absmean ternarization
    divides by): how far each synapse's weight is from the rounding threshold 0.5 of its ternary code."""
    import torch

    from models.program.integer_program import layer_projections

    out = {}
    with torch.no_grad():
        for li, blk in enumerate(model.model.layers):
            for n in layer_projections(model.config.token_mixer):
                owner = blk.mlp if n in ("gate_proj", "down_proj") else blk.attn
                w = getattr(owner, n).weight.detach().double().cpu().numpy()
                out[f"layers.{li}.{n}"] = np.abs(w) / max(float(np.abs(w).mean()), 1e-5)
        w = model.lm_head.weight.detach().double().cpu().numpy()
        out["lm_head"] = np.abs(w) / max(float(np.abs(w).mean()), 1e-5)
    return out


def _with_codes(program: IntegerProgram, codes: Mapping[str, np.ndarray]) -> IntegerProgram:
    """A copy of ``program`` whose projections named in ``codes`` carry those codes (scales unchanged)."""
    out = copy.copy(program)
    out.layers = [copy.copy(layer) for layer in program.layers]
    for layer in out.layers:
        layer.proj = dict(layer.proj)
    for name, c in codes.items():
        p = get_projection(program, name)
        q = Projection(codes=c, gain=p.gain, multiplier=p.multiplier, shift=p.shift)
        if name == "lm_head":
            out.lm_head = q
        else:
            _, li, pn = name.split(".")
            out.layers[int(li)].proj[pn] = q
    return out.validate()


# ------------------------------------------------------------------------------ statistics
@dataclass
class ActivationStats:
    """Per-projection activation statistics of a run (means over ``tokens`` token positions).

    ``act_sq[name][i]``, ``act_abs[name][i]``, ``act_rate[name][i]``: mean square, mean magnitude and
    non-zero rate of input channel ``i``'s int8 code; ``out_sq[name][o]``: mean square accumulator of
    output ``o``. ``source`` says what text they come from.
    """

    tokens: float
    act_sq: dict[str, np.ndarray]
    act_abs: dict[str, np.ndarray]
    act_rate: dict[str, np.ndarray]
    out_sq: dict[str, np.ndarray]
    source: str = ""

    def blend(self, new: "ActivationStats", ema: float) -> "ActivationStats":
        """``(1 - ema) * self + ema * new`` for every statistic (``ema`` in (0, 1]; 1 keeps only ``new``)."""
        ema = _check_ema(ema)
        if set(new.act_sq) != set(self.act_sq):
            raise ValueError("the two statistics records cover different projections: gather both from the same program shape")
        mix = {}
        for key in ("act_sq", "act_abs", "act_rate", "out_sq"):
            a, b = getattr(self, key), getattr(new, key)
            for n in a:
                if a[n].shape != b[n].shape:
                    raise ValueError(f"statistics of {n} have shapes {a[n].shape} and {b[n].shape}: "
                                     f"gather both from the same program shape")
            mix[key] = {n: (1.0 - ema) * a[n] + ema * b[n] for n in a}
        return ActivationStats(tokens=(1.0 - ema) * self.tokens + ema * new.tokens, **mix,
                               source=f"EMA({ema:g}) of [{self.source}] and [{new.source}]")

    def check(self, program: IntegerProgram) -> None:
        """Raise ValueError unless these statistics fit ``program``'s projections."""
        for n in projection_names(program):
            p = get_projection(program, n)
            if n not in self.act_sq:
                raise ValueError(f"statistics have no entry for {n}: gather them with gather_stats on this program")
            if self.act_sq[n].shape != (p.fan_in,) or self.out_sq[n].shape != (p.fan_out,):
                raise ValueError(f"statistics of {n} are for fan-in {self.act_sq[n].shape[0]} / fan-out "
                                 f"{self.out_sq[n].shape[0]}, the projection is {p.fan_in} -> {p.fan_out}")

    def summary(self) -> dict:
        """Mean non-zero rate and RMS code per projection (for reports)."""
        return {n: {"input_rate": float(self.act_rate[n].mean()), "input_rms": float(np.sqrt(self.act_sq[n].mean()))}
                for n in self.act_sq}


@dataclass
class Sensitivity:
    """Rise of the calibration NLL (nats per token) when one projection alone is pruned, at two probe
    sparsities: ``rise[name] = (d1, d2)`` at ``probes = (p1, p2)``. :meth:`curve` fits ``c * s**b``."""

    probes: tuple[float, float]
    rise: dict[str, tuple[float, float]]

    def __post_init__(self) -> None:
        p1, p2 = (float(v) for v in self.probes)
        if not 0.0 < p1 < p2 < 1.0:
            raise ValueError(f"probes must be two sparsities 0 < p1 < p2 < 1, got {self.probes!r}")
        for n, d in self.rise.items():
            if len(d) != 2 or not all(math.isfinite(float(v)) for v in d):
                raise ValueError(f"sensitivity of {n} must be two finite NLL rises, got {d!r}")
        self.probes = (p1, p2)
        self.rise = {n: (float(d[0]), float(d[1])) for n, d in self.rise.items()}

    def curve(self, floor: float) -> dict[str, tuple[float, float]]:
        """``(c, b)`` per projection with ``rise(s) ~ c * s**b``: ``b`` from the two probes (clipped to
        [1.25, 6]; a convex cost, so the optimum is interior), rises below ``floor`` taken as ``floor``."""
        p1, p2 = self.probes
        out = {}
        for n, (d1, d2) in self.rise.items():
            d1, d2 = max(d1, floor), max(d2, floor)
            b = min(6.0, max(1.25, math.log(max(d2, d1) / d1) / math.log(p2 / p1)))
            out[n] = (d2 / p2 ** b, b)
        return out

    def to_dict(self) -> dict:
        return {"probes": list(self.probes), "rise": {n: list(d) for n, d in self.rise.items()}}

    @classmethod
    def from_dict(cls, d: dict) -> "Sensitivity":
        return cls(probes=tuple(d["probes"]), rise={n: tuple(v) for n, v in d["rise"].items()})


class _Recorder:
    """The integer view's ``accumulate`` hook: computes the exact ternary accumulation (as the view does)
    and sums the statistics of its inputs and outputs on the way."""

    def __init__(self):
        self.sums: dict[str, list[np.ndarray]] = {}
        self.counts: dict[str, int] = {}
        self._w: dict[str, np.ndarray] = {}

    def __call__(self, name: str, codes: np.ndarray, x: np.ndarray) -> np.ndarray:
        w = self._w.get(name)
        if w is None:
            w = self._w[name] = np.ascontiguousarray(codes.T, dtype=np.float32)
        xf = x.astype(np.float32)
        acc = xf @ w  # exact: |acc| <= 127 * fan_in < 2**24
        x64 = x.astype(np.float64)
        a64 = acc.astype(np.float64)
        parts = [(x64 * x64).sum(0), np.abs(x64).sum(0), (x != 0).sum(0).astype(np.float64), (a64 * a64).sum(0)]
        if name in self.sums:
            for s, p in zip(self.sums[name], parts):
                s += p
            self.counts[name] += x.shape[0]
        else:
            self.sums[name], self.counts[name] = parts, x.shape[0]
        return acc.astype(np.int64)


def _as_windows(sequences) -> list[list[int]]:
    if hasattr(sequences, "tolist"):
        sequences = sequences.tolist()
    out = [list(map(int, s)) for s in sequences]
    if not out or not all(out):
        raise ValueError("give at least one non-empty token sequence")
    return out


def gather_stats(program: IntegerProgram, sequences, batch_size: int = 8, source: str = "") -> ActivationStats:
    """Run ``program`` on the torch integer view over ``sequences`` (token-id lists; each starts from an
    empty recurrent state) and return the :class:`ActivationStats` of every projection."""
    import torch

    from models.program.integer_view import IntegerView

    seqs = _as_windows(sequences)
    rec = _Recorder()
    view = IntegerView(program, accumulate=rec)
    by_len: dict[int, list[list[int]]] = {}
    for s in seqs:
        by_len.setdefault(len(s), []).append(s)
    for group in by_len.values():
        for b in range(0, len(group), batch_size):
            view.forward(torch.tensor(group[b:b + batch_size], dtype=torch.long))
    names = projection_names(program)
    st = {k: {} for k in ("act_sq", "act_abs", "act_rate", "out_sq")}
    for n in names:
        c = rec.counts[n]
        for k, v in zip(("act_sq", "act_abs", "act_rate", "out_sq"), rec.sums[n]):
            st[k][n] = v / c
    return ActivationStats(tokens=float(sum(len(s) for s in seqs)), **st,
                           source=source or f"{sum(len(s) for s in seqs)} tokens")


# ------------------------------------------------------------------------------ the pruner
class SynapticPruner:
    """Activation-aware, per-layer-thresholded pruning of an :class:`IntegerProgram` (see the module docstring).

    Parameters
    ----------
    program : the unpruned program (kept unchanged: :meth:`pruned` returns a new one).
    stats : :class:`ActivationStats` gathered on ``program`` (calibration text).
    sparsity : fraction in [0, 1) of the non-zero synapses to remove (globally; per projection when uniform).
    granularity : ``synapse``, ``input`` or ``output``.
    saliency : ``wanda`` (default with ``latent``), ``magnitude`` (both need ``latent``), ``activation``
        (default without), or ``random``.
    latent : ``{name: |w| / mean|w|}`` of the latent float weights (:func:`latent_magnitudes`).
    balance_rows : with ``synapse`` granularity, every output loses the same fraction (default) or one
        threshold spans the projection.
    allocation : ``uniform`` or ``adaptive`` (needs ``sensitivity``, e.g. from :func:`probe_sensitivity`).
    sensitivity : :class:`Sensitivity`, the rise of the calibration NLL when each projection alone is pruned.
    essential : ``{name: bool array (out, in)}`` — synapses that are never pruned.
    ema : weight of new statistics in :meth:`update`, in (0, 1].
    max_layer_sparsity : the most any projection may lose under adaptive allocation, in [sparsity, 1).
    """

    def __init__(self, program: IntegerProgram, stats: ActivationStats, sparsity: float = 0.0, *,
                 granularity: str = "synapse", saliency: Optional[str] = None, allocation: str = "uniform",
                 latent: Optional[Mapping[str, np.ndarray]] = None, balance_rows: bool = True,
                 sensitivity: Optional["Sensitivity"] = None,
                 essential: Optional[Mapping[str, np.ndarray]] = None, ema: float = 0.5,
                 max_layer_sparsity: float = 0.95, seed: int = 0):
        program.validate()
        self.program = program
        self.names = projection_names(program)
        self.granularity = _check_choice(granularity, GRANULARITIES, "granularity")
        if saliency is None:
            saliency = "wanda" if latent is not None else "activation"
        self.saliency_kind = _check_choice(saliency, SALIENCIES, "saliency")
        self.balance_rows = balance_rows
        self.latent = self._check_latent(latent)
        if self.saliency_kind in ("wanda", "magnitude") and self.latent is None:
            raise ValueError(f"saliency {self.saliency_kind!r} needs the latent float weights: pass "
                             f"latent=latent_magnitudes(model), or use saliency='activation'")
        self.allocation = _check_choice(allocation, ALLOCATIONS, "allocation")
        self.ema = _check_ema(ema)
        self.max_layer_sparsity = _check_sparsity(max_layer_sparsity, "max_layer_sparsity")
        self.seed = seed
        stats.check(program)
        self.stats = stats
        self.essential = self._check_essential(essential or {})
        self.live = {n: get_projection(program, n).codes != 0 for n in self.names}
        self.candidates = {n: self.live[n] & ~self.essential[n] for n in self.names}
        self.sensitivity = None if sensitivity is None else self._check_sensitivity(sensitivity)
        if self.allocation == "adaptive" and self.sensitivity is None:
            raise ValueError("adaptive allocation needs per-projection sensitivities: pass "
                             "sensitivity=probe_sensitivity(uniform_pruner, calibration_windows)")
        self.thresholds: dict[str, float] = {}
        self.masks: dict[str, np.ndarray] = {}
        self.layer_sparsity: dict[str, float] = {}
        self.set_sparsity(sparsity)

    # -------------------------------------------------------------- checks
    def _check_essential(self, essential: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = {}
        for n in essential:
            if n not in self.names:
                raise ValueError(f"essential mask names unknown projection {n!r}: names are layers.{{l}}.{{proj}} and lm_head")
        for n in self.names:
            shape = get_projection(self.program, n).codes.shape
            m = essential.get(n)
            if m is None:
                out[n] = np.zeros(shape, dtype=bool)
                continue
            m = np.asarray(m)
            if m.shape != shape:
                raise ValueError(f"essential mask for {n} has shape {m.shape}, expected {shape} "
                                 f"(the projection's codes, outputs x inputs)")
            if m.dtype != bool:
                raise ValueError(f"essential mask for {n} must be a bool array, got {m.dtype}")
            out[n] = m.copy()
        return out

    def _check_latent(self, latent: Optional[Mapping[str, np.ndarray]]) -> Optional[dict[str, np.ndarray]]:
        if latent is None:
            return None
        out = {}
        for n in self.names:
            if n not in latent:
                raise ValueError(f"latent weights have no entry for {n}: build them with latent_magnitudes(model)")
            shape = get_projection(self.program, n).codes.shape
            w = np.abs(np.asarray(latent[n], dtype=np.float64))
            if w.shape != shape:
                raise ValueError(f"latent weights of {n} have shape {w.shape}, expected {shape}")
            out[n] = w
        return out

    def _check_sensitivity(self, sens: "Sensitivity") -> "Sensitivity":
        if not isinstance(sens, Sensitivity):
            raise ValueError(f"sensitivity must be a Sensitivity (from probe_sensitivity), got {type(sens).__name__}")
        missing = [n for n in self.names if n not in sens.rise]
        if missing:
            raise ValueError(f"sensitivity has no value for {missing[0]}: probe every projection (probe_sensitivity)")
        return sens

    # -------------------------------------------------------------- saliency
    def saliency(self, name: str) -> np.ndarray:
        """Saliency of every synapse of projection ``name`` (out, in), float64; 0 where the code is 0."""
        p = get_projection(self.program, name)
        mag = np.abs(p.codes).astype(np.float64)
        if self.saliency_kind == "random":
            rng = np.random.default_rng([self.seed, self.names.index(name)])
            return mag * rng.random(mag.shape)
        a = np.sqrt(self.stats.act_sq[name])[None, :]
        if self.saliency_kind == "wanda":
            return mag * self.latent[name] * a
        if self.saliency_kind == "magnitude":
            return mag * self.latent[name]
        return mag * a

    # -------------------------------------------------------------- allocation
    def allocate(self, sparsity: float) -> dict[str, float]:
        """Per-projection sparsities whose synapse-weighted mean is ``sparsity`` (see the module docstring)."""
        s = _check_sparsity(sparsity)
        n = {k: int(self.live[k].sum()) for k in self.names}
        cap = {k: (int(self.candidates[k].sum()) / n[k] if n[k] else 0.0) for k in self.names}
        if self.allocation == "uniform" or s == 0.0:   # the essential mask is the only limit
            return {k: min(s, cap[k]) for k in self.names}
        cap = {k: min(cap[k], self.max_layer_sparsity) for k in self.names}
        if s > self.max_layer_sparsity:
            raise ValueError(f"sparsity {s} exceeds max_layer_sparsity {self.max_layer_sparsity}: raise max_layer_sparsity")
        # minimise sum_p c_p s_p**b_p subject to sum_p n_p s_p = s N: b_p c_p s_p**(b_p - 1) = lam n_p
        d2 = np.array([self.sensitivity.rise[k][1] for k in self.names])
        pos = d2[d2 > 0]
        floor = 0.05 * float(np.median(pos)) if pos.size else 1e-6  # rises below 5% of the median: noise
        fit = self.sensitivity.curve(floor)
        c = np.array([fit[k][0] for k in self.names])
        b = np.array([fit[k][1] for k in self.names])
        nn = np.array([n[k] for k in self.names], dtype=np.float64)
        cp = np.array([cap[k] for k in self.names])
        target = s * nn.sum()
        if (cp * nn).sum() < target:
            raise ValueError(f"sparsity {s} is unreachable: the essential mask and max_layer_sparsity leave "
                             f"{(cp * nn).sum() / nn.sum():.3f} at most")

        def alloc(log_lam: float) -> np.ndarray:
            return np.minimum(cp, np.exp((log_lam + np.log(nn / (b * c))) / (b - 1.0)))

        lo, hi = -50.0, 50.0
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if (alloc(mid) * nn).sum() < target:
                lo = mid
            else:
                hi = mid
        return {k: float(v) for k, v in zip(self.names, alloc(hi))}

    # -------------------------------------------------------------- thresholds and masks
    def _select(self, name: str, s: float) -> tuple[np.ndarray, float]:
        """(pruned mask, threshold) of projection ``name`` at sparsity ``s``."""
        live, cand = self.live[name], self.candidates[name]
        k = min(int(round(s * live.sum())), int(cand.sum()))
        mask = np.zeros(live.shape, dtype=bool)
        if k == 0:
            return mask, 0.0
        sal = self.saliency(name)
        if self.granularity == "synapse":
            # rank within each output row (each output loses the same fraction), then by saliency
            o_idx, i_idx = np.nonzero(cand)
            v = sal[o_idx, i_idx]
            order = np.lexsort((i_idx, v, o_idx))          # by row, then saliency, then input index
            rank = np.empty(len(order), dtype=np.int64)
            starts = np.searchsorted(o_idx[order], o_idx[order])
            rank[order] = np.arange(len(order)) - starts
            nnz_row = np.maximum(live.sum(1), 1)
            q = (rank + 0.5) / nnz_row[o_idx]                  # fractional position in its row
            if not self.balance_rows:
                q = np.zeros_like(q)
            pick = np.lexsort((i_idx, o_idx, v, q))[:k]
            mask[o_idx[pick], i_idx[pick]] = True
            return mask, float(v[pick].max())
        axis = 0 if self.granularity == "input" else 1        # input: columns of codes; output: rows
        if axis == 0 or self.saliency_kind == "random":
            score = (sal * cand).sum(axis=axis) / np.maximum(cand.sum(axis=axis), 1)  # mean saliency of a neuron
        else:  # an output neuron's removal takes its whole accumulator away
            score = np.sqrt(self.stats.out_sq[name])
        count = cand.sum(axis=axis)
        order = np.lexsort((np.arange(len(score)), score))
        order = order[count[order] > 0]
        cum = np.cumsum(count[order])
        # the whole neurons whose cumulative synapse count lands nearest k
        j = int(np.searchsorted(cum, k))
        if j >= len(cum) or (j > 0 and abs(cum[j - 1] - k) <= abs(cum[j] - k)):
            j -= 1
        chosen = order[:j + 1]
        if axis == 0:
            mask[:, chosen] = cand[:, chosen]
        else:
            mask[chosen, :] = cand[chosen, :]
        return mask, float(score[chosen].max()) if len(chosen) else 0.0

    def set_sparsity(self, sparsity: float) -> "SynapticPruner":
        """Re-threshold every projection for the global ``sparsity``; returns self."""
        self.sparsity = _check_sparsity(sparsity)
        self.layer_sparsity = self.allocate(self.sparsity)
        self._rethreshold()
        return self

    def _rethreshold(self) -> None:
        for n in self.names:
            self.masks[n], self.thresholds[n] = self._select(n, self.layer_sparsity[n])

    def update(self, new_stats: ActivationStats, ema: Optional[float] = None,
               sensitivity: Optional["Sensitivity"] = None) -> dict:
        """Blend ``new_stats`` in (EMA factor ``ema``, default the pruner's), re-allocate if new
        ``sensitivity`` is given, and re-threshold at the current sparsity. Returns, per projection, the
        threshold before and after and how many synapses were restored and newly pruned."""
        e = self.ema if ema is None else _check_ema(ema)
        new_stats.check(self.program)
        if sensitivity is not None:
            self.sensitivity = self._check_sensitivity(sensitivity)
        old_t, old_m = dict(self.thresholds), {n: m.copy() for n, m in self.masks.items()}
        self.stats = self.stats.blend(new_stats, e)
        self.layer_sparsity = self.allocate(self.sparsity)
        self._rethreshold()
        return {n: {"threshold_before": old_t[n], "threshold_after": self.thresholds[n],
                    "restored": int((old_m[n] & ~self.masks[n]).sum()),
                    "newly_pruned": int((~old_m[n] & self.masks[n]).sum())} for n in self.names}

    # -------------------------------------------------------------- results
    def pruned(self) -> IntegerProgram:
        """A new program with the pruned synapses' codes set to 0 (every scale unchanged)."""
        codes = {}
        for n in self.names:
            c = get_projection(self.program, n).codes.copy()
            c[self.masks[n]] = 0
            codes[n] = c
        return _with_codes(self.program, codes)

    def achieved(self) -> dict[str, float]:
        """Fraction of each projection's non-zero synapses removed."""
        return {n: float(self.masks[n].sum() / max(self.live[n].sum(), 1)) for n in self.names}

    def report(self) -> dict:
        """Target and achieved sparsities, thresholds, synapse counts."""
        live = sum(int(self.live[n].sum()) for n in self.names)
        removed = sum(int(self.masks[n].sum()) for n in self.names)
        return {"sparsity": self.sparsity, "granularity": self.granularity, "saliency": self.saliency_kind,
                "allocation": self.allocation, "live_synapses": live, "removed_synapses": removed,
                "achieved_sparsity": removed / max(live, 1),
                "layers": {n: {"target": self.layer_sparsity[n], "achieved": a, "threshold": self.thresholds[n]}
                           for n, a in self.achieved().items()}}


# ------------------------------------------------------------------------------ quality on calibration text
def calibration_nll(program: IntegerProgram, windows, batch_size: int = 8) -> float:
    """Mean next-token NLL (nats) of ``program`` (integer view) over token ``windows``: each window is
    one sequence from an empty state, every prediction inside it scored."""
    import torch
    import torch.nn.functional as F

    from models.program import numformat as nf
    from models.program.integer_view import IntegerView

    seqs = _as_windows(windows)
    view = IntegerView(program)
    total, count = 0.0, 0
    by_len: dict[int, list[list[int]]] = {}
    for s in seqs:
        if len(s) < 2:
            raise ValueError("calibration windows need at least 2 tokens")
        by_len.setdefault(len(s), []).append(s)
    for group in by_len.values():
        for b in range(0, len(group), batch_size):
            ids = torch.tensor(group[b:b + batch_size], dtype=torch.long)
            logits = view.forward(ids[:, :-1])[0].double() / (1 << nf.OUT_FRAC)
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum")
            total += float(nll)
            count += ids[:, 1:].numel()
    return total / count


def probe_sensitivity(pruner: "SynapticPruner", windows, probes: tuple[float, float] = (0.3, 0.6),
                      progress: bool = False) -> Sensitivity:
    """Rise of the calibration NLL (nats per token) when each projection alone is pruned at each of the
    two ``probes`` sparsities with ``pruner``'s saliency, granularity and essential mask."""
    p1, p2 = (_check_sparsity(p, "probe") for p in probes)
    if not 0.0 < p1 < p2:
        raise ValueError(f"probes must be two sparsities 0 < p1 < p2 < 1, got {probes!r}")
    program = pruner.program
    base = calibration_nll(program, windows)
    it: Iterable[str] = pruner.names
    if progress:
        from tqdm import tqdm
        it = tqdm(pruner.names, desc="sensitivity", unit="proj", dynamic_ncols=True)
    rise = {}
    for n in it:
        d = []
        for p in (p1, p2):
            mask, _ = pruner._select(n, p)
            c = get_projection(program, n).codes.copy()
            c[mask] = 0
            d.append(calibration_nll(_with_codes(program, {n: c}), windows) - base)
        rise[n] = tuple(d)
    return Sensitivity(probes=(p1, p2), rise=rise)


def fit_budget(pruner: SynapticPruner, windows, budget: float, tol: float = 0.01, base_nll: Optional[float] = None,
               progress: bool = False) -> dict:
    """Set ``pruner`` to the largest global sparsity (within ``tol``) whose calibration perplexity is at
    most ``(1 + budget)`` times the unpruned program's; returns the search record."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not math.isfinite(budget) or budget <= 0:
        raise ValueError(f"budget must be > 0 (the allowed relative perplexity increase, e.g. 0.05 for 5%), got {budget!r}")
    if not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    base = calibration_nll(pruner.program, windows) if base_nll is None else base_nll
    limit = base + math.log1p(budget)
    lo, hi = 0.0, pruner.max_layer_sparsity
    trials = []
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        nll = calibration_nll(pruner.set_sparsity(mid).pruned(), windows)
        trials.append({"sparsity": mid, "ppl": math.exp(nll), "ok": nll <= limit})
        if progress:
            print(f"  budget search: sparsity {mid:.3f} -> calibration ppl {math.exp(nll):.2f} "
                  f"({'within' if nll <= limit else 'over'} {math.exp(limit):.2f})", file=sys.stderr)
        if nll <= limit:
            lo = mid
        else:
            hi = mid
    pruner.set_sparsity(lo)
    return {"budget": budget, "base_ppl": math.exp(base), "limit_ppl": math.exp(limit), "sparsity": lo, "trials": trials}


# ------------------------------------------------------------------------------ text domains
def heldout_corpus_text(domain: str, max_chars: int, root=None) -> str:
    """Held-out text of one corpus domain (``wikipedia`` or ``gutenberg``): the last 1% of the lines of
    every file, the part ``models.mmfree.train`` keeps out of training (``val_fraction`` 0.01), files in order."""
    from models.text.corpus import data_root

    sub = {"wikipedia": "wikipedia_enwiki2015", "gutenberg": "gutenberg"}.get(domain)
    if sub is None:
        raise ValueError(f"unknown corpus domain {domain!r}: choose wikipedia or gutenberg")
    files = sorted((data_root(root) / "corpus" / sub).glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no corpus files under {data_root(root) / 'corpus' / sub}; set NMLLM_DATA")
    parts, n = [], 0
    for f in files:
        lines = f.read_text(encoding="utf-8").splitlines(keepends=True)
        n_val = min(int(math.ceil(len(lines) * 0.01)), max(len(lines) - 1, 0))
        text = "".join(lines[len(lines) - n_val:])
        parts.append(text)
        n += len(text)
        if n >= max_chars:
            break
    return "".join(parts)[:max_chars]


def news_text(first: int, max_chars: int, root=None) -> tuple[str, int]:
    """CNN/DailyMail test articles from index ``first`` on (one per line), up to ``max_chars``; returns
    the text and the index after the last article read."""
    from models.text.corpus import data_root

    path = data_root(root) / "cnn_dailymail" / "cnndm_test_see2017_first2000.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"no {path}; set NMLLM_DATA to the folder holding cnn_dailymail/")
    parts, n, i = [], 0, first
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if i < first:
                continue
            a = json.loads(line)["article"].strip() + "\n"
            parts.append(a)
            n += len(a)
            if n >= max_chars:
                break
    return "".join(parts)[:max_chars], i + 1


def token_windows(tokenizer, text: str, tokens: int, window: int = 256) -> list[list[int]]:
    """The first ``tokens`` tokens of ``text`` in windows of ``window`` ids, each led by ``</s>`` as context."""
    from models.text.tokenizer import EOS_ID, encode

    ids = encode(tokenizer, text)
    if len(ids) < tokens:
        raise ValueError(f"the text gives only {len(ids)} tokens, fewer than the {tokens} asked for: give more text")
    ids = ids[:tokens]
    step = window - 1
    return [[EOS_ID] + ids[b:b + step] for b in range(0, len(ids), step)]


# ------------------------------------------------------------------------------ measurement: events and cost
def event_counts(program: IntegerProgram, ids: Sequence[int]) -> tuple[dict, list]:
    """Golden-model counts per token of ``program`` on ``ids`` (from an empty state), with the input
    events that reach no synapse (the input neuron's whole fan-out pruned: an event-driven core could
    drop them; the golden model still counts them) from the integer view's identical codes."""
    from models.program.golden import GoldenModel

    _, events = GoldenModel(program).run(list(ids))
    total = events[0]
    for e in events[1:]:
        total = total + e
    n = len(ids)
    st = gather_stats(program, [list(ids)])
    dead = 0.0
    for name in projection_names(program):
        empty = ~(get_projection(program, name).codes != 0).any(axis=0)
        dead += float(st.act_rate[name][empty].sum())
    per = {k: v / n for k, v in total.as_dict().items()}
    per["events_to_no_synapse"] = dead
    return per, events


def system_cost(events: list, shape, tokens: int, presets: Sequence[str], cache: dict) -> dict:
    """Energy per token and token latency from the system model on the golden model's measured activity."""
    from sim.system.activity import activity_from_layer_events
    from sim.system.compiler import auto_chips, compile_model
    from sim.system.energy import load_preset
    from sim.system.model import SystemModel

    act = activity_from_layer_events(events, shape, tokens, what="golden model of the pruned program")
    out = {}
    for name in presets:
        if name not in cache:
            preset = auto_chips(shape, load_preset(name))
            cache[name] = (preset, compile_model(shape, preset))
        preset, mapping = cache[name]
        r = SystemModel(mapping, preset, act).run(prompt_tokens=500)
        dyn = sum(v for k, v in r.energy_j.items() if k not in ("static", "total"))
        out[name] = {"energy_per_token_j": r.energy_per_token_j, "dynamic_energy_per_token_j": dyn,
                     "synaptic_op_energy_per_token_j": r.energy_j["synaptic_ops"],
                     "token_latency_s": r.token_latency_s, "tokens_per_s": r.tokens_per_s,
                     "estimate": r.estimate, "chips": r.chips}
    out["activity"] = act.to_dict()
    return out


# ------------------------------------------------------------------------------ CLI
def _ppl(program: IntegerProgram, ids: Sequence[int], window: int, stride: int) -> float:
    from models.program.integer_view import IntegerView
    from models.eval.perplexity import sequence_nll

    r = sequence_nll(IntegerView(program).logits_float, ids, window, stride)
    return math.exp(r["nll"] / r["tokens"])


def _fractions(text: str) -> list[float]:
    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--fractions must be comma-separated numbers, got {text!r}") from None
    if not vals:
        raise ValueError("--fractions is empty: give for example 0,0.1,0.3,0.5")
    return [_check_sparsity(v, "each pruned fraction") for v in vals]


def run_sweep(args: argparse.Namespace) -> dict:
    """The measurement behind ``nmllm prune``: see :func:`add_prune_arguments` for the knobs."""
    import torch

    from models.mmfree.checkpoint import load_checkpoint
    from models.eval.perplexity import default_data_path
    from models.text.tokenizer import encode, load_tokenizer

    fractions = _fractions(args.fractions)
    allocations = [_check_choice(a, ALLOCATIONS, "allocation") for a in args.allocations.split(",")]
    if args.budget is not None and args.budget <= 0:
        raise ValueError(f"--budget must be > 0 (the allowed relative perplexity increase, e.g. 0.1), got {args.budget}")
    _check_sparsity(args.shift_sparsity, "--shift-sparsity")
    _check_ema(args.ema)
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    log = (lambda *a: None) if args.no_progress else (lambda *a: print(*a, file=sys.stderr, flush=True))
    model = load_checkpoint(args.model)
    tok = load_tokenizer(args.model)
    program = IntegerProgram.from_model(model)
    latent = latent_magnitudes(model) if args.saliency in (None, "wanda", "magnitude") else None
    from sim.system.shapes import model_shape
    shape = model_shape(args.model)

    # the two domains: calibration text (never a test set) and evaluation text
    wiki_test = Path(args.data) if args.data else default_data_path()
    chars = 8 * max(args.eval_tokens, args.calib_tokens, args.golden_tokens)
    news_calib, news_calib_end = news_text(0, 8 * args.calib_tokens)
    if args.news_eval_first < news_calib_end:
        raise ValueError(f"--news-eval-first {args.news_eval_first} overlaps the calibration articles 0..{news_calib_end - 1}: "
                         f"use {news_calib_end} or more")
    eval_ids = {"wikipedia": encode(tok, wiki_test.read_text(encoding="utf-8")[:chars])[:args.eval_tokens],
                "news": encode(tok, news_text(args.news_eval_first, chars)[0])[:args.eval_tokens]}
    for d, ids in eval_ids.items():
        if len(ids) < args.eval_tokens:
            raise ValueError(f"the {d} evaluation text gives only {len(ids)} tokens, fewer than --eval-tokens {args.eval_tokens}")
    calib = {"wikipedia": token_windows(tok, heldout_corpus_text("wikipedia", chars), args.calib_tokens),
             "news": token_windows(tok, news_calib, args.calib_tokens)}
    golden_ids = eval_ids["wikipedia"][:args.golden_tokens]
    data = {
        "wikipedia": {"calibration": f"held-out last 1% of the lines of the corpus's Wikipedia files (not trained on), "
                                     f"first {args.calib_tokens} tokens in windows of 256",
                      "evaluation": f"WikiText-2 test ({wiki_test.name}), first {args.eval_tokens} tokens"},
        "news": {"calibration": f"CNN/DailyMail test articles 0..{news_calib_end - 1}, first {args.calib_tokens} tokens "
                                f"in windows of 256",
                 "evaluation": f"CNN/DailyMail test articles {args.news_eval_first}.., first {args.eval_tokens} tokens"},
        "events": f"golden model on the first {args.golden_tokens} tokens of the WikiText-2 evaluation text",
        "perplexity": f"integer view, token perplexity, window {args.window}, stride {args.stride}",
    }
    log(f"prune: calibrating on {args.calib_tokens} Wikipedia tokens")
    stats = {d: gather_stats(program, w, source=data[d]["calibration"]) for d, w in calib.items()}
    kw = dict(granularity=args.granularity, saliency=args.saliency, latent=latent, ema=args.ema)
    uniform = SynapticPruner(program, stats["wikipedia"], 0.0, **kw)
    sens = None
    if "adaptive" in allocations or not args.no_shift:
        log(f"prune: probing each projection's sensitivity at {args.probes} ({2 * len(uniform.names)} runs)")
        sens = probe_sensitivity(uniform, calib["wikipedia"], probes=tuple(args.probes), progress=not args.no_progress)
    pruners = {"uniform": uniform}
    if sens is not None:
        pruners["adaptive"] = SynapticPruner(program, stats["wikipedia"], 0.0, allocation="adaptive",
                                             sensitivity=sens, **kw)
    cache: dict = {}
    rows = []
    points = [(a, s) for a in allocations for s in fractions]
    it = points
    if not args.no_progress:
        from tqdm import tqdm
        it = tqdm(points, desc="sweep", unit="point", dynamic_ncols=True)
    base_row = None
    for alloc, s in it:
        if s == 0.0 and base_row is not None:
            rows.append({**base_row, "allocation": alloc})
            continue
        pr = pruners[alloc].set_sparsity(s)
        prog = pr.pruned()
        counts, events = event_counts(prog, golden_ids)
        row = {"allocation": alloc, "target": s, "achieved": pr.report()["achieved_sparsity"],
               "layer_sparsity": {n: round(v, 4) for n, v in pr.achieved().items()},
               "ppl": {d: _ppl(prog, ids, args.window, args.stride) for d, ids in eval_ids.items()},
               "events_per_token": counts,
               "system": system_cost(events, shape, len(golden_ids), args.presets, cache)}
        if s == 0.0:
            base_row = row
        rows.append(row)
        log(f"  {alloc:8s} {s:.2f}: ppl wiki {row['ppl']['wikipedia']:.2f} news {row['ppl']['news']:.2f}, "
            f"synaptic ops/token {counts['synaptic_ops']:,.0f}")
    record = {"model": str(args.model), "method": {"granularity": args.granularity, "saliency": uniform.saliency_kind,
                                                   "ema": args.ema, "probes": list(args.probes)},
              "data": data, "presets": list(args.presets), "sweep": rows,
              "sensitivity": None if sens is None else sens.to_dict(),
              "calibration_stats": {d: {"mean_input_rate": float(np.mean([v.mean() for v in st.act_rate.values()]))}
                                    for d, st in stats.items()}}
    if not args.no_shift:
        record["domain_shift"] = _domain_shift(program, stats, calib, eval_ids, sens, kw, args, log)
    record["wall_s"] = time.perf_counter() - t_start
    return record


def _domain_shift(program, stats, calib, eval_ids, sens, kw, args, log) -> dict:
    """Calibrate on Wikipedia, then update the statistics (and thresholds) on news; perplexity on both."""
    s = args.shift_sparsity
    out: dict = {"sparsity": s, "allocation": "adaptive (sensitivities probed on Wikipedia)", "steps": []}

    def step(label: str, pr: SynapticPruner, changes: Optional[dict] = None, budget: Optional[dict] = None) -> None:
        prog = pr.pruned()
        rec = {"step": label, "sparsity": pr.sparsity,
               "ppl": {d: _ppl(prog, ids, args.window, args.stride) for d, ids in eval_ids.items()}}
        if changes is not None:
            rec["restored"] = sum(c["restored"] for c in changes.values())
            rec["newly_pruned"] = sum(c["newly_pruned"] for c in changes.values())
            rec["thresholds_changed"] = sum(c["threshold_before"] != c["threshold_after"] for c in changes.values())
            rec["removed"] = pr.report()["removed_synapses"]
        if budget is not None:
            rec["budget"] = {k: v for k, v in budget.items() if k != "trials"}
        out["steps"].append(rec)
        log(f"  shift {label}: sparsity {pr.sparsity:.3f}, ppl wiki {rec['ppl']['wikipedia']:.2f} news {rec['ppl']['news']:.2f}")

    a = {d: stats[d].act_sq for d in stats}
    out["stats_shift"] = {
        "mean_rank_correlation": float(np.mean([_spearman(a["wikipedia"][n], a["news"][n]) for n in a["wikipedia"]])),
        "mean_input_rate": {d: float(np.mean([v.mean() for v in stats[d].act_rate.values()])) for d in stats}}
    step("unpruned", SynapticPruner(program, stats["wikipedia"], 0.0, **kw))
    for ema in (0.5, 1.0):
        pr = SynapticPruner(program, stats["wikipedia"], s, allocation="adaptive", sensitivity=sens, **kw)
        if ema == 0.5:
            step("calibrated on wikipedia", pr)
        step(f"updated on news, ema {ema:g}", pr, changes=pr.update(stats["news"], ema=ema))
    if args.budget is not None:
        pr = SynapticPruner(program, stats["wikipedia"], 0.0, allocation="adaptive", sensitivity=sens, **kw)
        step(f"budget {args.budget:g}: fitted on wikipedia", pr, budget=fit_budget(pr, calib["wikipedia"], args.budget))
        changes = pr.update(stats["news"], ema=args.ema)
        step(f"budget {args.budget:g}: news blended in (ema {args.ema:g})", pr, changes=changes)
        step(f"budget {args.budget:g}: re-fitted on news", pr, budget=fit_budget(pr, calib["news"], args.budget))
    return out


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def plot_sweep(record: dict, out_dir: Path) -> list[Path]:
    """Perplexity vs pruned fraction (both domains), golden-model events and system-model energy and
    latency per token vs pruned fraction; the domain-shift steps as bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = record["sweep"]
    allocs = sorted({r["allocation"] for r in rows}, key=["uniform", "adaptive"].index)
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.3))
    for alloc in allocs:
        rs = [r for r in rows if r["allocation"] == alloc]
        x = [r["achieved"] for r in rs]
        ls = "-" if alloc == "adaptive" else "--"
        for d, c in (("wikipedia", "C0"), ("news", "C3")):
            ax[0].plot(x, [r["ppl"][d] for r in rs], ls, marker="o", color=c, label=f"{d}, {alloc}")
        ax[1].plot(x, [r["events_per_token"]["synaptic_ops"] / 1e6 for r in rs], ls, marker="o", color="C2",
                   label=f"synaptic ops (M), {alloc}")
        ax[1].plot(x, [r["events_per_token"]["input_events"] / 1e4 for r in rs], ls, marker="s", color="C1",
                   label=f"input events (10k), {alloc}")
        ax[1].plot(x, [r["events_per_token"]["weight_bytes_read"] / 1e6 for r in rs], ls, marker="^", color="C7",
                   label=f"weight bytes read (MB), {alloc}")
        base = rs[0]["system"]
        for k, pname in enumerate(record["presets"]):
            ax[2].plot(x, [r["system"][pname]["energy_per_token_j"] / base[pname]["energy_per_token_j"] for r in rs], ls,
                       marker="o", color=f"C{4 + k}", label=f"energy/token, {pname}, {alloc}")
        p0 = record["presets"][0]
        ax[2].plot(x, [r["system"][p0]["token_latency_s"] / base[p0]["token_latency_s"] for r in rs], ls, marker="s",
                   color="C9", label=f"token latency, {p0}, {alloc}")
    ax[0].set_yscale("log")
    ax[0].set_xlabel("pruned fraction of the non-zero synapses")
    ax[0].set_ylabel("token perplexity (integer view)")
    ax[0].set_title("quality (pruning calibrated on Wikipedia)")
    ax[1].set_xlabel("pruned fraction")
    ax[1].set_ylabel("per token")
    ax[1].set_title("golden-model events per token")
    ax[1].set_ylim(bottom=0)
    ax[2].set_xlabel("pruned fraction")
    ax[2].set_ylabel("relative to the unpruned program")
    ax[2].set_title("system model, measured activity")
    for a in ax:
        a.grid(alpha=0.3)
        a.legend(fontsize=6.5)
    fig.tight_layout()
    paths = [out_dir / "pruning_sweep.png"]
    fig.savefig(paths[0], dpi=80)
    plt.close(fig)
    if "domain_shift" in record:
        steps = record["domain_shift"]["steps"]
        fig, ax = plt.subplots(figsize=(9, 4.2))
        xs = np.arange(len(steps))
        for k, (d, c) in enumerate((("wikipedia", "C0"), ("news", "C3"))):
            ax.bar(xs + (k - 0.5) * 0.38, [st["ppl"][d] for st in steps], 0.38, color=c, label=f"{d} evaluation text")
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{st['step'].replace(': ', chr(10))}\n(s={st['sparsity']:.2f})" for st in steps],
                           fontsize=6.5)
        ax.set_ylabel("token perplexity")
        ax.set_title("domain shift: pruning calibrated on Wikipedia, then updated on news")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        paths.append(out_dir / "pruning_domain_shift.png")
        fig.savefig(paths[-1], dpi=80)
        plt.close(fig)
    return paths


ABLATION = (("random", "synapse", True), ("activation", "synapse", True), ("magnitude", "synapse", True),
            ("wanda", "synapse", True), ("wanda", "synapse", False), ("wanda", "input", True),
            ("wanda", "output", True))


def run_ablation(args: argparse.Namespace) -> dict:
    """Saliency and granularity compared at each fraction (uniform allocation, calibrated on Wikipedia):
    perplexity over non-overlapping windows of the first ``--eval-tokens`` WikiText-2 test tokens."""
    import torch

    from models.mmfree.checkpoint import load_checkpoint
    from models.eval.perplexity import default_data_path
    from models.text.tokenizer import load_tokenizer

    fractions = _fractions(args.fractions)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = load_checkpoint(args.model)
    tok = load_tokenizer(args.model)
    program = IntegerProgram.from_model(model)
    latent = latent_magnitudes(model)
    wiki_test = Path(args.data) if args.data else default_data_path()
    chars = 8 * max(args.eval_tokens, args.calib_tokens)
    ev = token_windows(tok, wiki_test.read_text(encoding="utf-8")[:chars], args.eval_tokens)
    cal = token_windows(tok, heldout_corpus_text("wikipedia", chars), args.calib_tokens)
    stats = gather_stats(program, cal)
    rows = [{"saliency": "none", "granularity": "-", "balance_rows": True, "sparsity": 0.0,
             "ppl": math.exp(calibration_nll(program, ev))}]
    points = [(v, s) for v in ABLATION for s in fractions if s > 0]
    it = points
    if not args.no_progress:
        from tqdm import tqdm
        it = tqdm(points, desc="ablation", unit="point", dynamic_ncols=True)
    for (sal, gran, bal), s in it:
        pr = SynapticPruner(program, stats, s, saliency=sal, granularity=gran, balance_rows=bal, latent=latent)
        rows.append({"saliency": sal, "granularity": gran, "balance_rows": bal, "sparsity": s,
                     "achieved": pr.report()["achieved_sparsity"], "ppl": math.exp(calibration_nll(pr.pruned(), ev))})
    return {"model": str(args.model), "rows": rows, "wall_s": time.perf_counter() - t0,
            "data": {"calibration": f"held-out Wikipedia lines of the corpus, first {args.calib_tokens} tokens",
                     "evaluation": f"WikiText-2 test, first {args.eval_tokens} tokens in non-overlapping windows of "
                                   f"256 (each from an empty state; not the window/stride method of the sweep)"}}


def _cmd_prune(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.ablation:
        record = run_ablation(args)
        out.mkdir(parents=True, exist_ok=True)
        (out / "pruning_ablation.json").write_text(json.dumps(record, indent=1) + "\n")
        print(f"{'saliency':10s} {'granularity':11s} {'rows':5s} " + " ".join(f"{'s=' + format(s, 'g'):>8s}"
                                                                            for s in _fractions(args.fractions) if s > 0))
        for v in ABLATION:
            r = [x for x in record["rows"] if (x["saliency"], x["granularity"], x["balance_rows"]) == v]
            print(f"{v[0]:10s} {v[1]:11s} {'bal' if v[2] else 'glob':5s} " + " ".join(f"{x['ppl']:8.2f}" for x in r))
        print(f"unpruned {record['rows'][0]['ppl']:.2f}; {record['data']['evaluation']}")
        print(f"wrote {out / 'pruning_ablation.json'} in {record['wall_s']:.0f} s")
        return 0
    record = run_sweep(args)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pruning_sweep.json").write_text(json.dumps(record, indent=1) + "\n")
    paths = plot_sweep(record, out)
    preset = args.presets[0]
    print(f"{'alloc':8s} {'target':>6s} {'pruned':>6s} {'ppl wiki':>9s} {'ppl news':>9s} {'syn ops/tok':>12s} "
          f"{'in ev/tok':>9s} {'kB w/tok':>8s} {'uJ/tok':>8s} {'ms/tok':>7s}")
    for r in record["sweep"]:
        e, c = r["events_per_token"], r["system"][preset]
        print(f"{r['allocation']:8s} {r['target']:6.2f} {r['achieved']:6.3f} {r['ppl']['wikipedia']:9.2f} "
              f"{r['ppl']['news']:9.2f} {e['synaptic_ops']:12,.0f} {e['input_events']:9,.0f} "
              f"{e['weight_bytes_read'] / 1e3:8,.0f} {c['energy_per_token_j'] * 1e6:8.1f} {c['token_latency_s'] * 1e3:7.3f}")
    for st in record.get("domain_shift", {}).get("steps", []):
        print(f"shift  {st['step']:55s} s={st['sparsity']:.3f}  ppl wiki {st['ppl']['wikipedia']:.2f}  news {st['ppl']['news']:.2f}")
    print(f"(perplexity: {record['data']['perplexity']}; wikipedia: {record['data']['wikipedia']['evaluation']}; "
          f"news: {record['data']['news']['evaluation']}; energy: {preset}, static included)")
    print(f"wrote {out / 'pruning_sweep.json'}, " + ", ".join(str(p) for p in paths) + f" in {record['wall_s']:.0f} s")
    return 0


def add_prune_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``nmllm prune``."""
    p.add_argument("--model", default="models/bundled", help="checkpoint directory (default models/bundled)")
    p.add_argument("--data", default=None, help="WikiText-2 test raw text (default ../shared/data/wikitext-2/wiki.test.raw)")
    p.add_argument("--fractions", default="0,0.1,0.2,0.3,0.5,0.7",
                   help="pruned fractions of the non-zero synapses, each in [0, 1) (default 0,0.1,0.2,0.3,0.5,0.7)")
    p.add_argument("--allocations", default="uniform,adaptive", help="per-layer allocations to sweep (uniform, adaptive)")
    p.add_argument("--granularity", choices=GRANULARITIES, default="synapse", help="what is pruned (default synapse)")
    p.add_argument("--saliency", choices=SALIENCIES, default=None,
                   help="synapse saliency (default wanda: latent |w| x RMS of the input code)")
    p.add_argument("--calib-tokens", type=int, default=2048, help="calibration tokens per domain (default 2048)")
    p.add_argument("--eval-tokens", type=int, default=8192, help="evaluation tokens per domain (default 8192)")
    p.add_argument("--golden-tokens", type=int, default=256, help="tokens the golden model counts events on (default 256)")
    p.add_argument("--news-eval-first", type=int, default=1000, help="first CNN/DailyMail article of the news evaluation text")
    p.add_argument("--probes", type=float, nargs=2, default=[0.3, 0.6], help="probe sparsities of the sensitivity fit")
    p.add_argument("--ema", type=float, default=0.5, help="weight of new statistics on a domain update, in (0, 1]")
    p.add_argument("--shift-sparsity", type=float, default=0.5, help="sparsity of the domain-shift experiment")
    p.add_argument("--budget", type=float, default=0.1,
                   help="quality budget of the domain-shift experiment: allowed relative perplexity rise (default 0.1)")
    p.add_argument("--no-shift", action="store_true", help="skip the domain-shift experiment")
    p.add_argument("--ablation", action="store_true",
                   help="instead of the sweep: compare saliencies and granularities (uniform allocation) at each "
                        "fraction on non-overlapping windows; writes pruning_ablation.json")
    p.add_argument("--presets", nargs="+", default=["loihi2-estimate", "loihi1"], help="system-model presets")
    p.add_argument("--window", type=int, default=256, help="perplexity window (default 256)")
    p.add_argument("--stride", type=int, default=128, help="perplexity stride (default 128)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", default="docs/pruning", help="output folder for the JSON and PNGs (default docs/pruning)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or log lines")


def register(subparsers) -> argparse.ArgumentParser:
    """Add the ``prune`` subcommand."""
    return add_command(subparsers, "prune", "adaptive synaptic pruning: perplexity, events and energy vs pruned fraction",
                       __doc__, add_prune_arguments, _cmd_prune)


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m models.pruning.pruner [...]``."""
    return run_module("python -m models.pruning.pruner", __doc__, add_prune_arguments, _cmd_prune, argv)


if __name__ == "__main__":
    sys.exit(main())
