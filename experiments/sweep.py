"""``nmllm sweep SPEC.yaml``: run a design-space sweep and write its store, exports, plots and report.

Outputs in ``--out`` (default ``build/sweep/<spec name>``): ``sweep.sqlite`` (the store),
``points.csv``, ``points.parquet``, one PNG per Pareto front and ``report.html``. :data:`PLOTS` lists the
fronts drawn when their columns exist in the results: energy per token vs perplexity, tokens/s vs
area (chips, Yosys LUTs), energy per token vs tokens/s, energy vs ADC bits.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["PLOTS", "plot_front", "plot_all", "register", "run", "finish"]

#: (file stem, x column, y column, minimise x?, minimise y?, title); drawn when both columns have data.
PLOTS = (
    ("energy_vs_perplexity", "perplexity", "energy_per_token_j", True, True, "Energy per token vs perplexity"),
    ("energy_vs_tokens_per_s", "tokens_per_s", "energy_per_token_j", False, True, "Energy per token vs tokens/s"),
    ("tokens_per_s_vs_chips", "chips", "tokens_per_s", True, False, "Tokens/s vs area (chips)"),
    ("tokens_per_s_vs_luts", "yosys_lut_total", "tokens_per_s", True, False, "Tokens/s vs area (Yosys LUTs, estimate)"),
    ("energy_vs_adc_bits", "knob.adc_bits", "energy_per_token_j", True, True, "Energy per token vs ADC bits"),
)


def _usable(rows: list[dict], col: str) -> list[dict]:
    import numpy as np

    return [r for r in rows if r.get("status") == "ok" and isinstance(r.get(col), (int, float))
            and not isinstance(r.get(col), bool) and np.isfinite(r[col])]


def plot_front(rows: list[dict], stem: str, xcol: str, ycol: str, min_x: bool, min_y: bool, title: str,
               out_dir: Path) -> Path | None:
    """Scatter every ok point (coloured by preset), draw the front; None when the columns have no data."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from sim.sweep.pareto import pareto_mask

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


def finish(spec, store, out: Path, result=None) -> dict:
    """Exports, plots and the HTML report of what the store holds; returns the paths."""
    from sim.sweep.report import write_report

    rows = store.rows()
    csv_path = store.export_csv(out / "points.csv")
    pq_path = store.export_parquet(out / "points.parquet")
    plots = plot_all(rows, out)
    summary = {"points": f"{len(rows)} of {len(spec.points())}",
               "ok": sum(r["status"] == "ok" for r in rows), "failed": sum(r["status"] != "ok" for r in rows),
               "models": ", ".join(Path(m).name for m in spec.models), "metrics": ", ".join(spec.metrics),
               "sampling": spec.sampling}
    if result is not None:
        summary["this run"] = (f"{result.computed} computed ({result.retried} failed before, retried), "
                               f"{result.skipped} resumed, {result.wall_s:.1f} s, {result.workers} workers")
    html = write_report(out / "report.html", spec, rows, plots, store.meta(), summary)
    return {"csv": csv_path, "parquet": pq_path, "plots": plots, "report": html}


def run(args) -> int:
    from sim.sweep.engine import run_sweep
    from sim.sweep.spec import load_spec
    from sim.sweep.store import Store

    spec = load_spec(args.spec)
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be a positive integer, got {args.workers}")
    out = Path(args.out or Path("build") / "sweep" / spec.name)
    store = Store(out / "sweep.sqlite")
    try:
        result = run_sweep(spec, store, scheduler=args.scheduler, workers=args.workers, processes=not args.threads,
                           resume=args.resume, progress=not args.no_progress, compute_log=args.compute_log)
        paths = finish(spec, store, out, result)
        print(f"sweep {spec.name}: {result.total} points, {result.skipped} already done, {result.retried} failed "
              f"before and retried, {result.ok} ok and {result.failed} failed in this run ({result.wall_s:.1f} s, "
              f"{result.computed / result.wall_s if result.wall_s and result.computed else 0:.2f} points/s)")
        print(f"  store   {store.path}")
        print(f"  export  {paths['csv']}, {paths['parquet']}")
        print(f"  plots   {', '.join(p.name for p in paths['plots']) or 'none (no ok points)'}")
        print(f"  report  {paths['report']}")
    finally:
        store.close()
    return 0


def register(subparsers) -> None:
    """Add the ``sweep`` subcommand."""
    p = subparsers.add_parser("sweep", help="design-space sweep on Dask: store, Pareto plots, HTML report")
    p.add_argument("spec", help="sweep spec YAML (see examples/sweep_370m.yaml and docs/sweep.md)")
    p.add_argument("--resume", action="store_true",
                   help="continue the sweep in --out: skip the points stored ok, run new and failed ones")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="run on an existing Dask cluster (default: a local cluster on this machine)")
    p.add_argument("--workers", type=int, default=None, help="local workers (default: min(2, CPU count))")
    p.add_argument("--threads", action="store_true",
                   help="run the local workers as threads of this process (fast start, small sweeps)")
    p.add_argument("--out", default=None, help="output folder (default build/sweep/<spec name>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--compute-log", default=None, metavar="FILE",
                   help="append the id of every point computed to FILE (audits that none is computed twice)")
    p.set_defaults(func=run)
