"""The Amaranth ternary matrix-vector unit: constructor checks, memory image, Verilog reproducibility."""

import json
from pathlib import Path

import numpy as np
import pytest

from hw.ternary_matvec import TernaryMatVec, weight_memory_image
from hw.verilog import UNITS, emit, port_list, write_all

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("lanes", [0, -4])
def test_non_positive_lane_count_is_refused(lanes):
    with pytest.raises(ValueError, match=f"Lane count must be a positive integer, not {lanes}"):
        TernaryMatVec(lanes=lanes, fan_in=16, out_features=8)


def test_lanes_must_divide_outputs():
    with pytest.raises(ValueError, match="Lane count 3 must divide the output feature count 8"):
        TernaryMatVec(lanes=3, fan_in=16, out_features=8)


@pytest.mark.parametrize("act_bits", [1, 6, 16])
def test_activation_width_outside_the_spec_is_refused(act_bits):
    with pytest.raises(ValueError, match=f"Activation width {act_bits} is not allowed by the number-format spec"):
        TernaryMatVec(lanes=4, fan_in=16, out_features=8, act_bits=act_bits)


def test_output_wider_than_accumulator_is_refused():
    with pytest.raises(ValueError, match="Output width 40 must be between 2 and the accumulator width 13"):
        TernaryMatVec(lanes=4, fan_in=16, out_features=8, out_bits=40)


def test_weight_code_outside_ternary_is_refused():
    w = np.zeros((8, 16), dtype=np.int8)
    w[3, 5] = 2
    with pytest.raises(ValueError, match=r"Weight 2 at index \(3, 5\) is not ternary"):
        weight_memory_image(w, lanes=4)


def test_weight_memory_image_packs_lanes_low_bits_first():
    w = np.array([[1, 0], [-1, 1], [0, -1], [1, 1]], dtype=np.int8)  # (out=4, fan_in=2)
    # group 0 = outputs 0,1; group 1 = outputs 2,3; word g*fan_in + k, lane p at bits [2p, 2p+2)
    assert weight_memory_image(w, lanes=2) == [0b11_01, 0b01_00, 0b01_00, 0b01_11]


@pytest.mark.slow
def test_verilog_is_byte_identical_across_runs(tmp_path):
    a = write_all(tmp_path / "a")
    b = write_all(tmp_path / "b")
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    text = (tmp_path / "a" / "ternary_matvec.v").read_text()
    assert "module ternary_matvec(" in text and "src =" not in text


def test_verilog_emission_is_deterministic_in_process():
    unit = TernaryMatVec(lanes=2, fan_in=8, out_features=4)
    assert emit(unit, "u") == emit(TernaryMatVec(lanes=2, fan_in=8, out_features=4), "u")


@pytest.mark.parametrize("name", sorted(UNITS))
def test_port_list_matches_checked_in_fixture(name):
    fixture = json.loads((FIXTURES / f"{name}.ports.json").read_text())
    assert port_list(UNITS[name]()) == fixture, (
        f"the ports of {name} changed; if intended, regenerate tests/fixtures/{name}.ports.json")
