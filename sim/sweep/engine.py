"""The sweep engine: every design point one Dask task, results written to the store as they finish.

By default a :class:`distributed.LocalCluster` on this machine (``workers`` processes, one thread
each; ``processes=False`` runs the workers as threads of this process); ``scheduler="tcp://HOST:PORT"``
submits the same tasks to an existing cluster unchanged (its workers must have this project
installed). A point that raises is recorded with its error; a worker that dies is recorded the same way.
A resumed sweep skips the points stored ok and runs the failed ones again (a point that fails again stays
failed, with its new error).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable, Optional

from sim.sweep.point import evaluate_point
from sim.sweep.spec import Spec
from sim.sweep.store import Store

__all__ = ["SweepResult", "run_sweep"]


@dataclass
class SweepResult:
    """Counts of one run: ``skipped`` points were stored ok before it, ``retried`` of the ``ok + failed``
    it computed had failed before."""

    total: int
    skipped: int
    ok: int
    failed: int
    wall_s: float
    workers: int
    retried: int

    @property
    def computed(self) -> int:
        return self.ok + self.failed


def _client(scheduler: Optional[str], workers: Optional[int], processes: bool):
    from distributed import Client, LocalCluster
    if scheduler:
        return Client(scheduler, timeout="30s"), None
    n = workers or max(1, min(2, os.cpu_count() or 1))
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=None,
                           silence_logs=40)
    return Client(cluster), cluster


def run_sweep(spec: Spec, store: Store, *, scheduler: Optional[str] = None, workers: Optional[int] = None,
              processes: bool = True, resume: bool = False, progress: bool = True,
              compute_log: Optional[str] = None, on_result: Optional[Callable[[dict, dict], None]] = None) -> SweepResult:
    """Run every point of ``spec`` not stored ok in ``store`` (new or failed before); returns the counts and
    the wall time."""
    from distributed import as_completed
    from tqdm import tqdm

    store.bind(spec, resume)
    points = spec.points()
    done, stored = store.ids("ok"), store.ids()
    todo = [p.to_dict() for p in points if p.id not in done]
    retried = sum(p["id"] in stored for p in todo)
    ctx = {"metrics": spec.metrics, "quality": spec.quality, "yosys": spec.yosys,
           "prompt_tokens": spec.prompt_tokens, "activity": spec.activity, "compute_log": compute_log}
    t0 = time.perf_counter()
    ok = failed = 0
    bar = tqdm(total=len(points), initial=len(points) - len(todo), desc=f"sweep {spec.name}", unit="pt",
               disable=not progress, dynamic_ncols=True)
    bar.set_postfix(resumed=len(points) - len(todo), retrying=retried, failed=0)
    n_workers = 0
    if todo:
        client, cluster = _client(scheduler, workers, processes)
        try:
            n_workers = len(client.scheduler_info().get("workers", {})) or (workers or 0)
            by_key = {}
            futures = []
            for p in todo:
                f = client.submit(evaluate_point, p, ctx, key=f"sweep-point-{p['id']}", pure=False, retries=0)
                by_key[f.key] = p
                futures.append(f)
            for fut in as_completed(futures):
                p = by_key[fut.key]
                if fut.status == "finished":
                    result = fut.result()
                else:   # the task itself died (a worker killed, an unpicklable result)
                    exc = fut.exception()
                    result = {"status": "failed", "error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                              "metrics": {}, "wall_s": None, "worker": None}
                store.write(p, result)
                if on_result:
                    on_result(p, result)
                if result["status"] == "ok":
                    ok += 1
                else:
                    failed += 1
                bar.update(1)
                bar.set_postfix(resumed=len(points) - len(todo), retrying=retried, failed=failed)
                fut.release()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    bar.close()
    return SweepResult(total=len(points), skipped=len(points) - len(todo), ok=ok, failed=failed,
                       wall_s=time.perf_counter() - t0, workers=n_workers, retried=retried)
