"""Build one unit configuration, write its golden stimulus, and run its cocotb testbench."""

from __future__ import annotations

import json
from pathlib import Path

from hw.verilog import emit

from verif.registry import BENCHES
from verif.simulators import REPO_ROOT, TestbenchResult, run_testbench

__all__ = ["BUILD_ROOT", "run_bench"]

#: Each (unit, configuration, simulator) builds in its own folder below this one.
BUILD_ROOT = REPO_ROOT / "build" / "sim"


def run_bench(unit: str, config: str, simulator: str, *, seed: int = 1,
              vectors: dict | None = None, waves: bool = False) -> TestbenchResult:
    """Run the testbench of ``unit`` at configuration ``config`` on ``simulator`` with stall seed ``seed``.

    ``vectors`` replaces the unit's generated stimulus (the tests use it to show that a wrong
    expected word fails the run). ``waves`` traces every signal (:func:`verif.simulators.waves_file`).
    """
    if unit not in BENCHES:
        raise ValueError(f"No testbench for unit {unit!r}; known units: {', '.join(BENCHES)}")
    bench = BENCHES[unit]
    if config not in bench.configs:
        raise ValueError(f"Unit {unit} has no configuration {config!r}; known: {', '.join(bench.configs)}")
    component = bench.build(**bench.configs[config])
    build_dir = BUILD_ROOT / unit / config / simulator
    build_dir.mkdir(parents=True, exist_ok=True)
    vectors_file = build_dir / "vectors.json"
    vectors_file.write_text(json.dumps(vectors if vectors is not None else bench.vectors(component, seed)))
    return run_testbench(unit=unit, config=config, verilog=emit(component, unit), toplevel=unit,
                         test_module=bench.tb_module, simulator=simulator, build_dir=build_dir,
                         extra_env={"NMLLM_TB_VECTORS": str(vectors_file), "NMLLM_TB_SEED": str(seed)},
                         waves=waves)
