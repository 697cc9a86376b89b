"""Every RTL testbench on every installed simulator (cocotb 2.1), as pytest cases.

Each run drives the unit with fixed-seed random stimulus and random valid/ready stalls and compares
every output word with the golden model; the named corner cases are phases of the same run.
"""

import copy

import pytest

from verif.flow import run_bench
from verif.registry import BENCHES
from verif.simulators import available_simulators, missing_simulators

SIMS = available_simulators()
CASES = [(u, c, s) for u in BENCHES for c in BENCHES[u].configs for s in SIMS]


def test_both_simulators_are_installed():
    """`make test` installs Icarus (nmllm/system_tools.py); every testbench must run on both simulators."""
    assert SIMS == ["verilator", "icarus"], f"missing: {missing_simulators()}"


@pytest.mark.cocotb
@pytest.mark.slow
@pytest.mark.parametrize("unit,config,simulator", CASES, ids=["-".join(c) for c in CASES])
def test_rtl_matches_golden_on_every_word(unit, config, simulator):
    result = run_bench(unit, config, simulator)
    assert result.passed, result.detail
    assert result.vectors > 1000 and result.cycles > 0


@pytest.mark.cocotb
@pytest.mark.slow
def test_testbench_fails_on_a_wrong_expected_word():
    """Negative control: the comparison is real — one corrupted golden word fails the run."""
    bench = BENCHES["ternary_matvec"]
    config = "p4_k64_n16"
    unit = bench.build(**bench.configs[config])
    vectors = bench.vectors(unit, 1)
    bad = copy.deepcopy(vectors)
    bad["phases"] = [p for p in bad["phases"] if p["name"] == "throughput_no_stalls"]
    bad["phases"][0]["expected"][3][2] += 1
    result = run_bench("ternary_matvec", config, SIMS[-1], vectors=bad)
    assert not result.passed
    assert "1 of 1 cocotb tests failed" in result.detail


@pytest.mark.cocotb
@pytest.mark.slow
@pytest.mark.parametrize("simulator", SIMS)
def test_waves_dump_every_signal_of_a_tiny_run(simulator):
    """`make sim WAVES=1` (`nmllm sim --waves`): a traced build of its own writes a non-empty VCD (Verilator)
    or FST (Icarus) waveform; one short phase of the ternary_matvec bench."""
    from verif.flow import BUILD_ROOT
    from verif.simulators import waves_file

    bench, config = BENCHES["ternary_matvec"], "p4_k64_n16"
    vectors = bench.vectors(bench.build(**bench.configs[config]), 1)
    vectors["phases"] = [p for p in vectors["phases"] if p["name"] == "throughput_no_stalls"]
    dump = waves_file(simulator, BUILD_ROOT / "ternary_matvec" / config / simulator, "ternary_matvec")
    dump.unlink(missing_ok=True)
    result = run_bench("ternary_matvec", config, simulator, vectors=vectors, waves=True)
    assert result.passed, result.detail
    head = dump.read_bytes()[:64]
    assert dump.stat().st_size > 10_000 and (head.startswith(b"$") if simulator == "verilator" else head), head


def test_make_sim_waves_asks_nmllm_sim_for_waveforms():
    import subprocess

    from verif.simulators import REPO_ROOT

    def sim_line(*extra):
        out = subprocess.run(["make", "-n", "sim", *extra], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
        return [line for line in out.stdout.splitlines() if "nmllm sim" in line][-1].split()

    assert sim_line("WAVES=1")[-1] == "--waves"
    assert "--waves" not in sim_line()

