"""Sweep throughput: a 1,000-point system-only sweep of the 370M model on a local Dask cluster.

Runs the same random 1,000 points (presets, router mesh, memory fill, placement, static power) with
1 and then 2 worker processes; wall time includes starting the cluster and writing every point to the
SQLite store, i.e. what ``nmllm sweep`` costs a user. Goal: <= 10 minutes. Scaling efficiency is
``(points/s with 2 workers) / (2 x points/s with 1 worker)``.

Run: ``python bench/bench_sweep.py [--points N]`` → ``bench/results/sweep.json`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import record, write_records  # noqa: E402

GOAL_S = 600.0


def spec_doc(points: int) -> dict:
    return {"name": "bench_sweep", "models": ["370m"],
            "sampling": {"method": "random", "points": points, "seed": 0},
            "knobs": {"preset": ["loihi1", "loihi2-estimate", "vck190", "crossbar"], "mesh": ["8x4", "4x4", "8x8"],
                      "fill": {"min": 0.25, "max": 1.0}, "placement": ["snake", "random"],
                      "static_per_chip": {"min": 0.02, "max": 1.0, "log": True}},
            "metrics": ["system"]}


def main() -> None:
    from sim.sweep.engine import run_sweep
    from sim.sweep.spec import load_spec
    from sim.sweep.store import Store

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    spec = load_spec(spec_doc(args.points))
    n = len(spec.points())
    runs = {}
    for w in args.workers:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Path(tmp) / "sweep.sqlite")
            res = run_sweep(spec, store, workers=w, processes=True, progress=True)
            assert store.count() == n, (store.count(), n)
            store.close()
        runs[w] = res
        print(f"{w} worker(s): {n} points ({res.ok} ok, {res.failed} failed) in {res.wall_s:.1f} s = "
              f"{res.computed / res.wall_s:.2f} points/s", flush=True)
    case = f"{n}-point 370M system-only sweep (random over 4 presets, mesh, fill, placement, static power)"
    w1 = runs[min(runs)]
    records = []
    for w, res in runs.items():
        pps = res.computed / res.wall_s
        records.append(record("sweep", f"{case}, {w} worker(s)", "wall_time", res.wall_s, "s", "goal", GOAL_S))
        records.append(record("sweep", f"{case}, {w} worker(s)", "points_per_s", pps, "points/s",
                              f"{min(runs)} worker(s)", w1.computed / w1.wall_s))
    if len(runs) > 1:
        wmax = max(runs)
        speedup = (runs[wmax].computed / runs[wmax].wall_s) / (w1.computed / w1.wall_s)
        records.append(record("sweep", f"{case}, {wmax} vs {min(runs)} worker(s)", "scaling_efficiency",
                              speedup / (wmax / min(runs)), "fraction", "ideal linear scaling", 1.0))
        print(f"speed-up {speedup:.2f}x with {wmax} workers: scaling efficiency {speedup / (wmax / min(runs)):.0%}")
    print(write_records("sweep", records))


if __name__ == "__main__":
    main()
