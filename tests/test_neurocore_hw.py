"""The layer-top hardware: constructor checks (clear messages at elaboration time), load frames, and the
fixed-point expression builders against the number-format spec in Amaranth's simulator."""

import re

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

from hw.axi import AxiLiteRegisters
from hw.elementwise import BitLinearFront, Elementwise, GluCell, MlgruCell
from hw.fixed import bit_length, round_shift, saturate
from hw.neurocore_top import LOAD_TARGETS, ONCHIP_WEIGHT_BITS, NeurocoreTop, layer_load_frames
from hw.ternary_core import TernaryCore, pack_scale
from models.program import numformat as nf
from models.mmfree.config import preset
from models.program.integer_program import PROJECTIONS, IntegerProgram


def test_layer_weights_beyond_the_on_chip_memory_are_refused():
    need = 2 * (4 * 4096 * 4096 + 2 * 4096 * 11008 + 11008 * 4096)
    with pytest.raises(ValueError, match=re.escape(
            f"Layer weights need {need} bits, beyond the {ONCHIP_WEIGHT_BITS}-bit on-chip memory of the XCVC1902")):
        NeurocoreTop(hidden=4096, glu=11008, lanes=16)


def test_the_370m_layer_fits_on_chip():
    top = NeurocoreTop(hidden=1024, glu=2816, lanes=16)
    assert top.shapes["gate_proj"] == (1024, 5632)


@pytest.mark.parametrize("hidden,glu,lanes", [(30, 16, 4), (32, 15, 4), (32, 16, 12)])
def test_lanes_must_divide_the_widths(hidden, glu, lanes):
    with pytest.raises(ValueError, match=re.escape(
            f"Lane count {lanes} must divide the hidden size {hidden} and the gate projection width {2 * glu}")):
        NeurocoreTop(hidden=hidden, glu=glu, lanes=lanes)


def test_lanes_beyond_one_load_word_are_refused():
    with pytest.raises(ValueError, match="Lane count 32 exceeds 16: a weight word"):
        NeurocoreTop(hidden=64, glu=64, lanes=32)


@pytest.mark.parametrize("clock", [0, 9.9, 501, 1e4])
def test_a_clock_outside_the_constrainable_range_is_refused(clock):
    with pytest.raises(ValueError, match=re.escape(f"Clock frequency {clock} MHz is outside the 10-500 MHz")):
        NeurocoreTop(hidden=16, glu=16, lanes=4, clock_mhz=clock)


@pytest.mark.parametrize("clock", ["200", None, True])
def test_a_clock_that_is_not_a_number_is_refused(clock):
    with pytest.raises(TypeError, match="Clock frequency must be a number of MHz"):
        NeurocoreTop(hidden=16, glu=16, lanes=4, clock_mhz=clock)


@pytest.mark.parametrize("field,kw", [("Hidden size", dict(hidden=0)), ("GLU width", dict(glu=-2)),
                                      ("Lane count", dict(lanes=0))])
def test_non_positive_dimensions_are_refused(field, kw):
    args = {**dict(hidden=16, glu=16, lanes=4), **kw}
    with pytest.raises(ValueError, match=f"{field} must be a positive integer, not {list(kw.values())[0]}"):
        NeurocoreTop(**args)


def test_core_and_elementwise_constructors_validate():
    with pytest.raises(ValueError, match="Lane count 3 must divide the output feature count 16"):
        TernaryCore(lanes=3, fan_in=8, out_features=16)
    with pytest.raises(ValueError, match="Output width must be an integer of at least 2, not 1"):
        TernaryCore(lanes=4, fan_in=8, out_features=16, out_bits=1)
    with pytest.raises(ValueError, match="Channel count must be a positive integer, not 0"):
        MlgruCell(channels=0)
    with pytest.raises(TypeError, match="GLU width must be an integer, not 2.0"):
        GluCell(width=2.0)
    with pytest.raises(ValueError, match="Fan-in 4194305 exceeds the spec's largest BitLinear fan-in 4194304"):
        BitLinearFront(fan_in=(1 << 22) + 1)
    with pytest.raises(ValueError, match="Fan-in must be a positive integer, not 0"):
        Elementwise(channels=4, glu_width=4, fan_in=0)
    with pytest.raises(ValueError, match="AXI4-Lite address width must be an integer of at least 2, not 1"):
        AxiLiteRegisters(addr_width=1)


def test_scale_beat_packing():
    assert pack_scale(0x1FFFF, -1) == 0x1FFFF | (0xFF << 17)
    with pytest.raises(ValueError, match="Multiplier 131072 does not fit 17 unsigned bits"):
        pack_scale(1 << 17, 0)
    with pytest.raises(ValueError, match=r"Shift 128 is outside \[-128, 127\]"):
        pack_scale(1, 128)


def test_load_frames_cover_every_parameter_of_a_layer():
    program = IntegerProgram.random(preset("tiny"), seed=3)
    layer = program.layers[0]
    frames = layer_load_frames(layer, lanes=4)
    targets = [f[0] >> 24 for f in frames]
    assert sorted(targets) == sorted(set(LOAD_TARGETS.values()) - {LOAD_TARGETS["state"]})
    by_target = {f[0] >> 24: f[1:] for f in frames}
    d, m = program.hidden_size, program.intermediate_size
    assert len(by_target[LOAD_TARGETS["weights.gate_proj"]]) == (2 * m // 4) * d
    assert len(by_target[LOAD_TARGETS["gain.down_proj"]]) == m
    assert by_target[LOAD_TARGETS["static"]][:2] == [layer.proj["i_proj"].multiplier, layer.proj["i_proj"].shift]
    assert all(0 <= w < 1 << 32 for f in frames for w in f)
    assert len(frames) == 2 * len(PROJECTIONS) + 5


def test_fixed_point_builders_equal_the_spec():
    """round_shift, saturate and bit_length in Amaranth's simulator against numformat on random values."""
    m = Module()
    v = Signal(signed(40))
    s = Signal(range(40))
    u = Signal(unsigned(40))
    rs, rc = round_shift(m, v, s), round_shift(m, v, 7)
    sat, bl = saturate(m, v, 20), bit_length(m, u)
    rng = np.random.default_rng(5)
    cases = [(int(x), int(k), int(y)) for x, k, y in zip(
        rng.integers(-(1 << 39), 1 << 39, 300) >> rng.integers(0, 39, 300), rng.integers(0, 40, 300),
        rng.integers(0, 1 << 39, 300) >> rng.integers(0, 40, 300))]
    cases += [(-(1 << 39), 39, 0), ((1 << 39) - 1, 1, 1), (-1, 1, 1 << 39 - 1), (0, 0, 0), (-3, 1, 2), (3, 1, 3)]
    seen = []

    async def bench(ctx):
        for x, k, y in cases:
            ctx.set(v, x)
            ctx.set(s, k)
            ctx.set(u, y)
            seen.append((ctx.get(rs), ctx.get(rc), ctx.get(sat), ctx.get(bl)))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    for (x, k, y), got in zip(cases, seen):
        assert got == (nf.round_shift(x, k), nf.round_shift(x, 7), nf.saturate(x, 20), y.bit_length()), (x, k, y)
