"""Benchmark result records: one JSON list per benchmark in ``bench/results/<name>.json``.

Each record is ``{"benchmark", "case", "metric", "value", "unit", "baseline", "baseline_value",
"ratio", "machine"}``; ``ratio`` is ``value / baseline_value`` with the baseline measured in the same run.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

__all__ = ["RESULTS_DIR", "best_time", "machine", "record", "write_records"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def machine() -> str:
    """A short description of the machine the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python {platform.python_version()}"


def record(benchmark: str, case: str, metric: str, value: float, unit: str,
           baseline: str, baseline_value: float) -> dict:
    """One record; ``ratio = value / baseline_value``."""
    return {
        "benchmark": benchmark, "case": case, "metric": metric, "value": float(value), "unit": unit,
        "baseline": baseline, "baseline_value": float(baseline_value),
        "ratio": float(value) / float(baseline_value) if baseline_value else None,
        "machine": machine(),
    }


def write_records(name: str, records: list[dict]) -> Path:
    """Write ``records`` to ``bench/results/<name>.json`` and return the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(records, indent=2) + "\n")
    return path


def best_time(fn, repeat: int = 30) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``fn`` (after one warm-up call)."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
