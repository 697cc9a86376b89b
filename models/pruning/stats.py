"""What an integer program's projections do while it runs (``models/pruning/stats.py``).

:func:`gather_stats` runs the torch integer view on token windows and records, for every projection
(``layers.{l}.{proj}``, ``lm_head``) and every input channel ``i``, the mean square, mean magnitude and
non-zero rate of the int8 activation code that enters the ternary accumulation, and for every output
``o`` the mean square of its accumulator. :meth:`ActivationStats.blend` mixes two such records with an
exponential moving average — how the statistics follow a drifting input distribution.
:func:`latent_magnitudes` reads the latent float weights of a checkpoint, :func:`event_counts` the
golden model's events per token. The pruner that uses them is ``models/pruning/pruner.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from models.program.integer_program import IntegerProgram, Projection

__all__ = ["projection_names", "get_projection", "check_ema", "latent_magnitudes", "ActivationStats", "as_windows",
           "gather_stats", "event_counts"]


def check_ema(ema) -> float:
    """``ema`` as a float; ValueError unless it is in (0, 1]."""
    if isinstance(ema, bool) or not isinstance(ema, (int, float, np.floating)) or not math.isfinite(float(ema)) \
            or not 0.0 < float(ema) <= 1.0:
        raise ValueError(f"ema must be in (0, 1] (the weight of the new statistics; 1 replaces the old ones), got {ema!r}")
    return float(ema)


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
        ema = check_ema(ema)
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


def as_windows(sequences) -> list[list[int]]:
    """Token sequences as lists of ints; ValueError if there is none or one is empty."""
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

    seqs = as_windows(sequences)
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
