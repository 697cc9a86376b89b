"""The crossbar tile's update port (issue 25, item 4): the integer pulse update against its reference and the
float pulsed rule, in the Amaranth simulator (the cocotb bench on Verilator and Icarus is ``tests/test_rtl.py``)."""

import copy
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.crossbar_tile import CrossbarTile, apply_pulse_slot, cell_memory_image, pack_pulse_slot
from models.program.crossbar import NOISE_OFF, Periphery, tile_mvm_integer
from sim.crossbar.pulsed_device import PulsedDevice
from sim.crossbar.pulsed_update import AnalogSGD, PulseUpdate, pulse_trains


def test_a_slot_moves_fired_cells_one_level_and_saturates():
    cells = np.array([[15, -15, 0], [-16, 3, 15]])
    out = apply_pulse_slot(cells, [1, 1], [0, 1], [1, 1, 0], [0, 1, 0], 5)
    # row 0 up, row 1 down; column 1 flips the direction; column 2 does not fire
    np.testing.assert_array_equal(out, [[15, -15, 0], [-16, 4, 15]])
    np.testing.assert_array_equal(apply_pulse_slot(cells, [0, 0], [0, 0], [1, 1, 1], [0, 0, 0], 5), cells)


def test_the_integer_rule_is_the_float_rule_on_a_finite_state_ideal_device():
    """The float pulsed SGD on an ideal device of 15 steps a side, slot masks applied one by one to integer
    levels: the same weights, saturation included."""
    dev = PulsedDevice(name="levels", model="constant", dw_min=1 / 15)
    rule = PulseUpdate(lr=0.5, bl=8)
    sgd = AnalogSGD(dev, (5, 7), rule, seed=3)
    rng, cells = np.random.default_rng(1), np.zeros((5, 7), dtype=np.int64)
    twin = np.random.default_rng((3, 1))   # AnalogSGD's pulse stream
    for _ in range(60):
        x, d = rng.uniform(-1, 1, 7), rng.uniform(-1, 1, 5) * 3
        fx, fd = pulse_trains(x, d, rule, dev.dw_min, twin)
        for s in range(rule.bl):
            cells = apply_pulse_slot(cells, fd[s], d > 0, fx[s], x < 0, 5)
        sgd.update(x, d)
    np.testing.assert_array_equal(np.rint(sgd.weights() * 15).astype(int), cells)
    assert np.abs(cells).max() == 15


def _run(tile, cells, slots, xs):
    """Cells written, pulse slots streamed (a vector queued behind them), then ``xs`` read: the result words."""
    got = []

    async def bench(ctx):
        for i, word in enumerate(cell_memory_image(cells, tile.cell_bits)):
            ctx.set(tile.cells.addr, i)
            ctx.set(tile.cells.data, word)
            ctx.set(tile.cells.en, 1)
            await ctx.tick()
        ctx.set(tile.cells.en, 0)
        ctx.set(tile.noise_sel, NOISE_OFF)
        ctx.set(tile.res.ready, 1)
        acts, beats = [int(v) for v in xs.ravel()], list(slots)
        while len(got) < xs.shape[0] * tile.cols:
            ctx.set(tile.update.payload.as_value(), beats[0] if beats else 0)
            ctx.set(tile.update.valid, int(bool(beats)))
            ctx.set(tile.act.payload, acts[0] if acts else 0)
            ctx.set(tile.act.valid, int(bool(acts)))
            took_update = bool(beats) and ctx.get(tile.update.ready)
            took_act = bool(acts) and ctx.get(tile.act.ready)
            assert not (took_update and took_act)
            if ctx.get(tile.res.valid):
                got.append(ctx.get(tile.res.payload))
            if took_update:
                beats.pop(0)
            if took_act:
                acts.pop(0)
            await ctx.tick()

    sim = Simulator(tile)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


def test_update_port_applies_slots_before_the_next_vector():
    tile = CrossbarTile(rows=4, cols=3, cols_per_adc=3, cell_bits=4, adc_bits=8)
    rng = np.random.default_rng(0)
    cells = rng.integers(-7, 8, size=(4, 3))
    cells[0, 0], cells[1, 1] = 7, -8
    masks = [(rng.random(4) < 0.6, rng.random(4) < 0.5, rng.random(3) < 0.6, rng.random(3) < 0.5) for _ in range(12)]
    masks += [(np.ones(4), np.zeros(4), np.ones(3), np.zeros(3))] * 2 + [(np.ones(4), np.ones(4), np.ones(3), np.zeros(3))]
    want = cells
    for m in masks:
        want = apply_pulse_slot(want, *m, 4)
    xs = np.vstack([np.eye(4, dtype=int), rng.integers(-128, 128, size=(2, 4))])
    ref, _ = tile_mvm_integer(want, xs, Periphery(adc_bits=8), 0, 1)
    got = _run(tile, cells, [pack_pulse_slot(*m) for m in masks], xs)
    assert got == ref.ravel().tolist()
    np.testing.assert_array_equal(np.array(got[:12]).reshape(4, 3), want)   # one-hot reads: every cell


def _flip_one_fire_bit(vectors):
    vectors["phases"][0]["updates"][7] ^= 1   # row 0 fires (or not) in slot 7; the expected words stay


@pytest.mark.cocotb
@pytest.mark.slow
def test_crossbar_testbench_fails_on_a_wrong_pulse_slot():
    """Negative control: the update port feeds the cells the bench reads back."""
    from verif.flow import run_bench
    from verif.registry import BENCHES
    from verif.simulators import available_simulators

    bench = BENCHES["crossbar_tile"]
    config = next(iter(bench.configs))
    vectors = copy.deepcopy(bench.vectors(bench.build(**bench.configs[config]), 1))
    vectors["phases"] = [p for p in vectors["phases"] if p["name"] == "update_random_slots"]
    _flip_one_fire_bit(vectors)
    result = run_bench("crossbar_tile", config, available_simulators()[-1], vectors=vectors)
    assert not result.passed and "1 of 1 cocotb tests failed" in result.detail
    log = Path(result.detail.split("log: ")[-1]).read_text()
    assert "phase update_random_slots: res vector" in log
