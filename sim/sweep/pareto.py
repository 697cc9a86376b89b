"""Pareto fronts of a sweep: :func:`pareto_mask` marks the points no other point beats on both axes.

The fronts are drawn by ``nmllm sweep`` (:data:`experiments.sweep.PLOTS`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["pareto_mask"]


def pareto_mask(x, y, minimize_x: bool = True, minimize_y: bool = True) -> np.ndarray:
    """True for each point not dominated (no other point at least as good on both axes and better on one)."""
    x = np.asarray(x, dtype=float) * (1 if minimize_x else -1)
    y = np.asarray(y, dtype=float) * (1 if minimize_y else -1)
    n = len(x)
    mask = np.zeros(n, dtype=bool)
    order = np.lexsort((y, x))
    best = np.inf
    for i in order:                       # sweep in x order: a point is on the front if it improves y
        if y[i] < best:
            mask[i] = True
            best = y[i]
    # equal points both stay on the front
    for i in np.nonzero(~mask)[0]:
        if np.any(mask & (x == x[i]) & (y == y[i])):
            mask[i] = True
    return mask
