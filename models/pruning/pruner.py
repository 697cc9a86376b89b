"""Adaptive synaptic pruning of an integer program from the activation statistics it produces while it runs
(``models/pruning/pruner.py``).

Pruning a synapse sets its ternary weight code to 0; every scale of the program stays as it is (the
hardware's static multiplier and shift are fixed), so a pruned program is still a program of the spec
and runs unchanged — and bit-exactly alike — on the torch integer view and the golden model.

Method
------
1. **Statistics while the model runs.** :func:`models.pruning.stats.gather_stats` records, for every
   projection, the activation statistics of its int8 input codes and accumulators
   (:class:`~models.pruning.stats.ActivationStats`).
2. **Saliency.** Removing synapse ``(o, i)`` takes ``code[o, i] * x_i`` out of accumulator ``o``.
   ``wanda`` (the default when the checkpoint is at hand): ``|code| * |w_latent| * rms(x_i)``, Wanda's
   ``|W| * ||X||`` with the latent float weight that absmean ternarization rounded (relative to its
   mean, :func:`models.pruning.stats.latent_magnitudes`). ``activation``: ``|code| * rms(x_i)`` (a bare
   program: every live ternary synapse has ``|code| = 1``, so this ranks input channels only).
   ``magnitude`` (latent ``|w|`` alone) and ``random`` are the baselines; ``docs/pruning.md`` compares them.
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
5. **Allocation across layers.** ``uniform``: ``s_p = s``. ``adaptive``:
   :func:`models.pruning.budget.probe_sensitivity` prunes each projection alone at two probe sparsities
   and measures the rise of the calibration NLL;
   a power law ``d_p(s) = c_p * s**b_p`` through the two points is the projection's cost curve, and the
   allocation minimising ``sum_p d_p(s_p)`` for the global count ``s * N`` (``n_p`` live synapses per
   projection) solves ``b_p c_p s_p**(b_p - 1) = lam * n_p``, clipped to ``[0, max_layer_sparsity]``
   and water-filled to the exact global count: layers whose output matters less lose more.
6. **Quality budget.** :func:`models.pruning.budget.fit_budget` bisects the global sparsity for the
   largest one whose calibration perplexity stays within ``(1 + budget)`` of the unpruned program's.
7. **Domain shift.** :meth:`SynapticPruner.update` blends new statistics in (EMA factor ``ema``) and
   re-thresholds every projection at its sparsity; synapses pruned before may come back (the base
   program is kept), others go. The change is reported per projection.

``nmllm prune`` (``experiments/pruning_sweep.py``) sweeps pruned fractions on the bundled model and writes
perplexity, golden-model event counts and system-model energy per token to ``docs/pruning/``.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from models.program.integer_program import IntegerProgram, Projection
from models.pruning.stats import ActivationStats, check_ema, get_projection, projection_names

__all__ = ["GRANULARITIES", "ALLOCATIONS", "SALIENCIES", "check_sparsity", "check_choice", "with_codes",
           "Sensitivity", "SynapticPruner"]

GRANULARITIES = ("synapse", "input", "output")
ALLOCATIONS = ("uniform", "adaptive")
SALIENCIES = ("wanda", "magnitude", "activation", "random")


def check_sparsity(s, what: str = "sparsity") -> float:
    """``s`` as a float; ValueError (naming ``what``) unless it is a fraction in [0, 1)."""
    if isinstance(s, bool) or not isinstance(s, (int, float, np.floating, np.integer)) or not math.isfinite(float(s)) \
            or not 0.0 <= float(s) < 1.0:
        raise ValueError(f"{what} must be a fraction in [0, 1) of the non-zero synapses to remove, got {s!r}: "
                         f"use for example 0.3 (1 would remove every synapse)")
    return float(s)


def check_choice(value, choices: Sequence[str], what: str) -> str:
    """``value``; ValueError (naming ``what``) unless it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}: choose one of {', '.join(choices)}")
    return value


def with_codes(program: IntegerProgram, codes: Mapping[str, np.ndarray]) -> IntegerProgram:
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
    latent : ``{name: |w| / mean|w|}`` of the latent float weights (:func:`models.pruning.stats.latent_magnitudes`).
    balance_rows : with ``synapse`` granularity, every output loses the same fraction (default) or one
        threshold spans the projection.
    allocation : ``uniform`` or ``adaptive`` (needs ``sensitivity``, e.g. from
        :func:`models.pruning.budget.probe_sensitivity`).
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
        self.granularity = check_choice(granularity, GRANULARITIES, "granularity")
        if saliency is None:
            saliency = "wanda" if latent is not None else "activation"
        self.saliency_kind = check_choice(saliency, SALIENCIES, "saliency")
        self.balance_rows = balance_rows
        self.latent = self._check_latent(latent)
        if self.saliency_kind in ("wanda", "magnitude") and self.latent is None:
            raise ValueError(f"saliency {self.saliency_kind!r} needs the latent float weights: pass "
                             f"latent=latent_magnitudes(model), or use saliency='activation'")
        self.allocation = check_choice(allocation, ALLOCATIONS, "allocation")
        self.ema = check_ema(ema)
        self.max_layer_sparsity = check_sparsity(max_layer_sparsity, "max_layer_sparsity")
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
        s = check_sparsity(sparsity)
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
        self.sparsity = check_sparsity(sparsity)
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
        e = self.ema if ema is None else check_ema(ema)
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
        return with_codes(self.program, codes)

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
