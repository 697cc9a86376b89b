"""``nmllm sweep SPEC.yaml``: run a design-space sweep and write its store, exports, plots and report.

Outputs in ``--out`` (default ``build/sweep/<spec name>``): ``sweep.sqlite`` (the store),
``points.csv``, ``points.parquet``, one PNG per Pareto front and ``report.html``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["register", "run", "finish"]


def finish(spec, store, out: Path, result=None) -> dict:
    """Exports, plots and the HTML report of what the store holds; returns the paths."""
    from sim.sweep.pareto import plot_all
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
        summary["this run"] = (f"{result.computed} computed, {result.skipped} resumed, {result.wall_s:.1f} s, "
                               f"{result.workers} workers")
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
        print(f"sweep {spec.name}: {result.total} points, {result.skipped} already done, {result.ok} ok and "
              f"{result.failed} failed in this run ({result.wall_s:.1f} s, "
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
    p.add_argument("--resume", action="store_true", help="continue the sweep in --out, skipping finished points")
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
