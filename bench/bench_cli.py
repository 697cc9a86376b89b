"""``nmllm --help`` wall time: the command registry against importing every library the commands run.

Median of five ``nmllm --help`` process runs (the whole parser is built) vs a process that only imports
torch, numba, amaranth, scipy, matplotlib and dask — what every ``--help`` cost when each subcommand imported
its libraries at the top. Run: ``python bench/bench_cli.py`` → ``bench/results/cli.json``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import record, write_records  # noqa: E402

NMLLM = Path(sys.executable).with_name("nmllm")
HEAVY = "import torch, numba, amaranth, scipy, matplotlib, dask"


def median_wall(cmd: list[str], runs: int = 5) -> float:
    """Median wall seconds of ``runs`` runs of ``cmd`` (after one warm-up run)."""
    subprocess.run(cmd, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    t_help = median_wall([str(NMLLM), "--help"])
    t_heavy = median_wall([sys.executable, "-c", HEAVY])
    print(f"nmllm --help: median {t_help:.3f} s; importing the heavy libraries: {t_heavy:.3f} s")
    print(write_records("cli", [record("cli", "nmllm --help, median of 5", "wall_s", t_help, "s",
                                       "python -c '" + HEAVY + "'", t_heavy)]))


if __name__ == "__main__":
    main()
