"""Every RTL testbench, at every configuration, on every installed simulator (``nmllm sim``, ``make sim``)."""

from __future__ import annotations

from tqdm import tqdm

from verif.flow import run_bench
from verif.registry import BENCHES
from verif.simulators import TestbenchResult, available_simulators

__all__ = ["run_all", "format_table"]


def run_all(simulators: list[str] | None = None, units: list[str] | None = None,
            seed: int = 1, waves: bool = False) -> list[TestbenchResult]:
    """Run every (unit, configuration, simulator) and return the results in that order (``waves``: each
    run also dumps every signal, :func:`verif.simulators.waves_file`)."""
    sims = simulators or available_simulators()
    jobs = [(u, c, s) for u in (units or list(BENCHES)) for c in BENCHES[u].configs for s in sims]
    results = []
    for unit, config, sim in tqdm(jobs, desc="testbenches", unit="run"):
        results.append(run_bench(unit, config, sim, seed=seed, waves=waves))
    return results


def format_table(results: list[TestbenchResult]) -> str:
    """A plain-text table of ``results``; ``cycles/MVM`` is what a crossbar tile's bench measured per MVM
    (its summary's ``mvm_cycles``), ``-`` for other units."""
    head = ("unit", "config", "simulator", "vectors", "cycles", "cycles/MVM", "result", "build s", "run s")
    rows = [(r.unit, r.config, r.simulator, str(r.vectors), str(r.cycles), _mvm_cycles(r),
             "PASS" if r.passed else "FAIL", f"{r.build_s:.1f}", f"{r.run_s:.1f}") for r in results]
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(head), line(["-" * w for w in widths]), *map(line, rows)])


def _mvm_cycles(result: TestbenchResult) -> str:
    measured = result.summary.get("mvm_cycles", {}).get("measured")
    return "/".join(map(str, measured)) if measured else "-"
