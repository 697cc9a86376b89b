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
