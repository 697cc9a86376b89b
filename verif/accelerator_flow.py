"""Run the accelerator's testbench at any configuration (beyond the registry's), e.g. another bus width or the
bundled model's shape, with given stimulus; :func:`measure` returns its counters as a record."""

from __future__ import annotations

import json
import os
import time

from hw.accelerator.top import Accelerator
from hw.verilog import emit

from verif.flow import BUILD_ROOT
from verif.simulators import TestbenchResult, run_testbench

__all__ = ["run_accelerator", "measure"]


def _name(cfg: dict) -> str:
    return "d{hidden}_m{glu}_l{layers}_v{vocab}_p{lanes}_w{data_width}".format(**{"data_width": 128, **cfg})


def run_accelerator(cfg: dict, simulator: str, vectors, *, seed: int = 1) -> TestbenchResult:
    """Build ``Accelerator(**cfg)`` and run ``verif.tb_accelerator`` on ``simulator`` with ``vectors``
    (a stimulus dict, or a function of the unit returning one)."""
    unit = Accelerator(**cfg)
    spec = vectors(unit) if callable(vectors) else vectors
    build_dir = BUILD_ROOT / "accelerator" / _name(cfg) / simulator
    build_dir.mkdir(parents=True, exist_ok=True)
    path = build_dir / "vectors.json"
    path.write_text(json.dumps(spec))
    return run_testbench(unit="accelerator", config=_name(cfg), verilog=emit(unit, "accelerator"),
                         toplevel="accelerator", test_module="verif.tb_accelerator", simulator=simulator,
                         build_dir=build_dir, extra_env={"NMLLM_TB_VECTORS": str(path), "NMLLM_TB_SEED": str(seed)})


def measure(cfg: dict, simulator: str, vectors) -> dict:
    """One run as a record: configuration, simulator, pass, words compared, counters per phase, wall times
    and the load average around it."""
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    r = run_accelerator(cfg, simulator, vectors)
    return {"config": {"data_width": 128, **cfg}, "simulator": simulator, "passed": r.passed,
            "words_compared": r.vectors, "cycles": r.cycles, "phases": r.summary.get("phases", {}),
            "build_s": round(r.build_s, 1), "run_s": round(r.run_s, 1),
            "total_s": round(time.perf_counter() - t0, 1),
            "load_average_before": [round(x, 2) for x in load0],
            "load_average_after": [round(x, 2) for x in os.getloadavg()]}
