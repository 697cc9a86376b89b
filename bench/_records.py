"""Benchmark result records: one JSON list per benchmark in ``bench/results/<name>.json``.

Each record is ``{"benchmark", "case", "metric", "value", "unit", "baseline", "baseline_value", "ratio",
"machine", "provenance"}``: ``ratio`` is ``value / baseline_value`` with the baseline measured in the same
run, and ``provenance`` (a tenth key, on every record so that a record copied alone still says where it
came from) is :func:`experiments.provenance.provenance` at the time the file was written: git sha and
dirty flag, command line, package and tool versions, machine, load average, seed and date.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments.provenance import machine, provenance  # noqa: E402

__all__ = ["RESULTS_DIR", "best_time", "best_times", "free_cores", "machine", "record", "write_records"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def record(benchmark: str, case: str, metric: str, value: float, unit: str,
           baseline: str, baseline_value: float) -> dict:
    """One record; ``ratio = value / baseline_value``."""
    return {
        "benchmark": benchmark, "case": case, "metric": metric, "value": float(value), "unit": unit,
        "baseline": baseline, "baseline_value": float(baseline_value),
        "ratio": float(value) / float(baseline_value) if baseline_value else None,
        "machine": machine(),
    }


def write_records(name: str, records: list[dict], seed: int | None = None) -> Path:
    """Write ``records`` atomically to ``bench/results/<name>.json``, each with its provenance, and return the path.

    A record that already carries a ``provenance`` (one kept from an earlier run) keeps it.
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    prov = provenance(seed=seed)
    out = [{**r, "provenance": r.get("provenance", prov)} for r in records]
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    os.replace(tmp, path)
    return path


def free_cores() -> float:
    """Cores other jobs leave free now: the core count minus the 1-minute load average (a multi-thread baseline
    on a busy machine measures the neighbours, not the library)."""
    return os.cpu_count() - os.getloadavg()[0]


def best_times(fns: dict, repeat: int = 30, rounds: int = 1) -> dict:
    """Seconds of the fastest call of each function of ``fns``: ``rounds`` rounds, in each a block of one warm-up
    call and ``repeat`` timed calls per function.

    With several rounds the blocks interleave, so a burst of load from other jobs on a shared CPU hits every
    candidate alike instead of spoiling one of them, while each block runs with its own data in cache.
    """
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(rounds):
        for key, fn in fns.items():
            fn()
            for _ in range(repeat):
                t0 = time.perf_counter()
                fn()
                best[key] = min(best[key], time.perf_counter() - t0)
    return best


def best_time(fn, repeat: int = 30) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``fn`` (after one warm-up call)."""
    return best_times({"fn": fn}, repeat)["fn"]
