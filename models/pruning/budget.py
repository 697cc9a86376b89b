"""Quality of a pruned program on calibration text (``models/pruning/budget.py``): the calibration NLL,
each projection's sensitivity to pruning (the input of adaptive allocation in
``models/pruning/pruner.py``) and the largest sparsity within a perplexity budget.
"""

from __future__ import annotations

import math
import sys
from typing import Iterable, Optional

from models.program.integer_program import IntegerProgram
from models.pruning.pruner import Sensitivity, SynapticPruner, check_sparsity, with_codes
from models.pruning.stats import as_windows, get_projection

__all__ = ["calibration_nll", "check_probes", "probe_projection", "probe_sensitivity", "fit_budget"]


def calibration_nll(program: IntegerProgram, windows, batch_size: int = 8) -> float:
    """Mean next-token NLL (nats) of ``program`` (integer view) over token ``windows``: each window is
    one sequence from an empty state, every prediction inside it scored."""
    import torch
    import torch.nn.functional as F

    from models.program import numformat as nf
    from models.program.integer_view import IntegerView

    seqs = as_windows(windows)
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


def check_probes(probes) -> tuple[float, float]:
    """The two probe sparsities ``0 < p1 < p2 < 1`` of a sensitivity fit (ValueError otherwise)."""
    p1, p2 = (check_sparsity(p, "probe") for p in probes)
    if not 0.0 < p1 < p2:
        raise ValueError(f"probes must be two sparsities 0 < p1 < p2 < 1, got {probes!r}")
    return p1, p2


def probe_projection(pruner: SynapticPruner, name: str, windows, probes: tuple[float, float],
                     base_nll: float) -> tuple[float, float]:
    """Rise of the calibration NLL over ``base_nll`` when projection ``name`` alone is pruned at each probe."""
    rise = []
    for p in check_probes(probes):
        mask, _ = pruner._select(name, p)
        c = get_projection(pruner.program, name).codes.copy()
        c[mask] = 0
        rise.append(calibration_nll(with_codes(pruner.program, {name: c}), windows) - base_nll)
    return rise[0], rise[1]


def probe_sensitivity(pruner: SynapticPruner, windows, probes: tuple[float, float] = (0.3, 0.6),
                      progress: bool = False) -> Sensitivity:
    """Rise of the calibration NLL (nats per token) when each projection alone is pruned at each of the
    two ``probes`` sparsities with ``pruner``'s saliency, granularity and essential mask."""
    probes = check_probes(probes)
    base = calibration_nll(pruner.program, windows)
    it: Iterable[str] = pruner.names
    if progress:
        from tqdm import tqdm
        it = tqdm(pruner.names, desc="sensitivity", unit="proj", dynamic_ncols=True)
    return Sensitivity(probes=probes, rise={n: probe_projection(pruner, n, windows, probes, base) for n in it})


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
