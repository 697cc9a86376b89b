"""Pareto fronts of a sweep and their matplotlib plots (PNG).

:func:`pareto_mask` marks the points no other point beats on both axes. :data:`PLOTS` lists the
fronts drawn when their columns exist in the results: energy per token vs perplexity, tokens/s vs
area (chips, Yosys LUTs), energy per token vs tokens/s, energy vs ADC bits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["PLOTS", "pareto_mask", "plot_front", "plot_all"]

#: (file stem, x column, y column, minimise x?, minimise y?, title); drawn when both columns have data.
PLOTS = (
    ("energy_vs_perplexity", "perplexity", "energy_per_token_j", True, True, "Energy per token vs perplexity"),
    ("energy_vs_tokens_per_s", "tokens_per_s", "energy_per_token_j", False, True, "Energy per token vs tokens/s"),
    ("tokens_per_s_vs_chips", "chips", "tokens_per_s", True, False, "Tokens/s vs area (chips)"),
    ("tokens_per_s_vs_luts", "yosys_lut_total", "tokens_per_s", True, False, "Tokens/s vs area (Yosys LUTs, estimate)"),
    ("energy_vs_adc_bits", "knob.adc_bits", "energy_per_token_j", True, True, "Energy per token vs ADC bits"),
)


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


def _usable(rows: list[dict], col: str) -> list[dict]:
    return [r for r in rows if r.get("status") == "ok" and isinstance(r.get(col), (int, float))
            and not isinstance(r.get(col), bool) and np.isfinite(r[col])]


def plot_front(rows: list[dict], stem: str, xcol: str, ycol: str, min_x: bool, min_y: bool, title: str,
               out_dir: Path) -> Path | None:
    """Scatter every ok point (coloured by preset), draw the front; None when the columns have no data."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in _usable(_usable(rows, xcol), ycol)]
    if len(pts) < 1:
        return None
    x = np.array([r[xcol] for r in pts], dtype=float)
    y = np.array([r[ycol] for r in pts], dtype=float)
    mask = pareto_mask(x, y, min_x, min_y)
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
    groups = sorted({str(r.get("knob.preset", r.get("model", ""))) for r in pts})
    for g in groups:
        sel = np.array([str(r.get("knob.preset", r.get("model", ""))) == g for r in pts])
        ax.scatter(x[sel], y[sel], s=14, alpha=0.6, label=g)
    order = np.argsort(x[mask])
    ax.plot(x[mask][order], y[mask][order], "k-", lw=1.2, drawstyle="steps-post" if min_y == min_x else "default",
            label=f"Pareto front ({int(mask.sum())})")
    ax.scatter(x[mask], y[mask], s=40, facecolors="none", edgecolors="k")
    if y.min() > 0 and y.max() / y.min() > 50:
        ax.set_yscale("log")
    if x.min() > 0 and x.max() / x.min() > 50:
        ax.set_xscale("log")
    ax.set_xlabel(xcol.replace("knob.", "") + (" (lower is better)" if min_x else " (higher is better)"))
    ax.set_ylabel(ycol + (" (lower is better)" if min_y else " (higher is better)"))
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(out_dir) / f"{stem}.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_all(rows: list[dict], out_dir: str | Path) -> list[Path]:
    """Every plot of :data:`PLOTS` whose columns have data; returns the PNG paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, xcol, ycol, mx, my, title in PLOTS:
        p = plot_front(rows, stem, xcol, ycol, mx, my, title, out_dir)
        if p is not None:
            paths.append(p)
    return paths
