"""The crossbar tile as a crossbar macro: its cycle formula, device noise, refusals, and the RTL against the model.

The cocotb runs of every configuration on both simulators are in ``tests/test_rtl.py``; here the negative
controls (a wrong noise sample, a wrong cycle count) and a quick Amaranth-simulator run of a small tile.
"""

import copy
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.crossbar_tile import CrossbarTile, cell_memory_image
from models.program.crossbar import (NOISE_PORT, DeviceNoise, Periphery, adc_range, check_adc_sharing, mvm_cycles,
                                     timing_cycles, tile_mvm_integer)
from verif.crossbar_tile_vectors import make_vectors, pack_noise


def test_cycle_formula_takes_the_longer_of_read_and_conversions_per_slice():
    # ISAAC: 128 x 128, 8 one-bit slices, 128 columns per 1.28 GS/s ADC, 100 ns read at a 1.28 GHz clock
    read, conv = timing_cycles(100.0, 1 / 1.28, 1 / 1.28)
    assert (read, conv) == (128, 1)
    assert mvm_cycles(128, 128, 8, 128, read, conv) == 128 + 128 + 128 + 7 * 128 + 128
    # conversion-bound (8 columns x 3 cycles > 2) and read-bound (4 x 1 < 5)
    assert mvm_cycles(8, 8, 8, 2, 2, 3) == 8 + 2 + 6 + 7 * 6 + 8
    assert mvm_cycles(16, 12, 4, 4, 5, 1) == 16 + 5 + 4 + 3 * 5 + 12
    tile = CrossbarTile(rows=8, cols=8, cols_per_adc=2, read_cycles=2, conv_cycles=3)
    tile._MustUse__silence = True  # built for its cycle formula only
    assert tile.cycles_per_vector == 66


@pytest.mark.parametrize("call", [
    lambda: check_adc_sharing(12, 5),
    lambda: mvm_cycles(8, 12, 8, 5, 1, 1),
    lambda: CrossbarTile(rows=8, cols=12, cols_per_adc=5),
])
def test_adc_sharing_that_does_not_divide_the_columns_is_refused_in_one_line(call):
    with pytest.raises(ValueError, match=r"^5 columns per ADC do not divide the tile's 12 columns: every ADC must "
                                         r"serve as many columns, so use a divisor of 12$"):
        call()


def test_noise_sample_outside_the_adc_range_is_refused_in_one_line():
    per = Periphery(adc_bits=4, adc_shift=1)
    assert adc_range(4, 1) == (-16, 14)
    cells, xs = np.ones((4, 2), dtype=np.int64), np.zeros((1, 4), dtype=np.int64)
    noise = np.zeros((1, 8, 2), dtype=np.int64)
    noise[0, 3, 1] = 15
    with pytest.raises(ValueError, match=r"^Noise sample 15 at \(vector, slice, column\) \(0, 3, 1\) lies outside "
                                         r"the ADC's range \[-16, 14\] \(4 bits, step 2\*\*1\): lower the device "
                                         r"noise or widen the ADC step$"):
        tile_mvm_integer(cells, xs, per, 1, 1, noise=noise)
    noise[0, 3, 1] = 14  # the range's end is accepted
    tile_mvm_integer(cells, xs, per, 1, 1, noise=noise)


def test_device_noise_is_the_programmed_array_minus_the_target():
    """Without read noise, target cells plus the samples are exactly the programmed devices' tile."""
    dev = DeviceNoise(levels=5, prog_noise=0.2, stuck_on=0.1, stuck_off=0.1, seed=4)
    w = np.random.default_rng(0).choice([-1, 0, 1], size=(32, 16))
    target, devices = dev.program(w)
    assert np.array_equal(target, 4 * w) and devices.min() >= 0 and devices.max() <= 4
    assert (devices[0] - devices[1] != target).mean() > 0.1
    xs = np.random.default_rng(1).integers(-128, 128, size=(20, 32))
    per = Periphery(adc_bits=8, adc_shift=4)
    noise = dev.samples(target, devices, xs, 8, 1, None)
    via_noise, state = tile_mvm_integer(target, xs, per, 4, 7, noise=noise)
    direct, _ = tile_mvm_integer(devices[0] - devices[1], xs, per, 4, 7)
    assert np.array_equal(via_noise, direct) and state == 7


def test_read_noise_is_seeded_and_grows_with_its_sigma():
    dev = DeviceNoise(levels=5, read_noise=0.05, seed=1)
    target, devices = dev.program(np.ones((64, 4), dtype=np.int64))
    xs = np.full((200, 64), -1)
    a = dev.samples(target, devices, xs, 8, 1, np.random.default_rng(3))
    assert np.array_equal(a, dev.samples(target, devices, xs, 8, 1, np.random.default_rng(3)))
    # each column: 64 rows of slice 1, G+ = 4 + 4/99, G- = 4/99 levels: sigma = 0.05 * sqrt(64 * (G+^2 + G-^2))
    sigma = 0.05 * np.sqrt(64 * ((4 + 4 / 99) ** 2 + (4 / 99) ** 2))
    assert abs(a.std() - sigma) < 0.1 * sigma


@pytest.mark.parametrize("kwargs,message", [
    (dict(levels=1), "Device levels must be an integer >= 2, not 1"),
    (dict(read_noise=-0.1), "Read noise must be a finite number >= 0, not -0.1"),
    (dict(stuck_on=0.7, stuck_off=0.5), "Stuck-on and stuck-off rates must sum to at most 1, not 1.2"),
    (dict(on_off=1.0), r"On/off ratio must be > 1, not 1.0"),
])
def test_impossible_devices_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeviceNoise(**kwargs)


def test_rtl_tile_equals_the_model_and_the_cycle_formula_in_amaranths_simulator():
    """A 4 x 4 tile, 2-bit DAC, two ADCs, device noise on the port: every word and every vector's cycles."""
    tile = CrossbarTile(rows=4, cols=4, dac_bits=2, cell_bits=5, adc_bits=6, cols_per_adc=2, read_cycles=2,
                        conv_cycles=2)
    dev = DeviceNoise(levels=9, prog_noise=0.1, stuck_on=0.05, read_noise=0.05, seed=2)
    rng = np.random.default_rng(9)
    target, devices = dev.program(rng.choice([-1, 0, 1], size=(4, 4)))
    xs = rng.integers(-128, 128, size=(3, 4))
    noise = dev.samples(target, devices, xs, 8, 2, rng)
    assert noise.any()
    want, _ = tile_mvm_integer(target, xs, Periphery(dac_bits=2, adc_bits=6), 3, 1, noise=noise)
    beats = pack_noise(noise, tile.noise_port_bits)
    got, took = [], []

    async def bench(ctx):
        for i, word in enumerate(cell_memory_image(target, 5)):
            ctx.set(tile.cells.addr, i)
            ctx.set(tile.cells.data, word)
            ctx.set(tile.cells.en, 1)
            await ctx.tick()
        ctx.set(tile.cells.en, 0)
        ctx.set(tile.adc_shift, 3)
        ctx.set(tile.noise_sel, NOISE_PORT)
        ctx.set(tile.res.ready, 1)
        ctx.set(tile.noise.valid, 1)
        acts, cycle, first = [int(v) for v in xs.ravel()], 0, None
        while len(got) < xs.size:
            ctx.set(tile.act.payload, acts[0] if acts else 0)
            ctx.set(tile.act.valid, int(bool(acts)))
            ctx.set(tile.noise.payload.as_value(), beats[0] if beats else 0)
            took_act = bool(acts) and ctx.get(tile.act.ready)
            if ctx.get(tile.noise.ready):
                beats.pop(0)
            if ctx.get(tile.res.valid):
                got.append(ctx.get(tile.res.payload))
                if len(got) % 4 == 0:
                    took.append(cycle - first + 1)
            if took_act:
                if len(acts) % 4 == 0:
                    first = cycle
                acts.pop(0)
            await ctx.tick()
            cycle += 1

    sim = Simulator(tile)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert got == want.ravel().tolist()
    assert took == [tile.cycles_per_vector] * 3 == [mvm_cycles(4, 4, 4, 2, 2, 2)] * 3


def _bad_run(phase_name, corrupt):
    from verif.flow import run_bench
    from verif.registry import BENCHES
    from verif.simulators import available_simulators

    bench = BENCHES["crossbar_tile"]
    config = next(iter(bench.configs))
    vectors = copy.deepcopy(bench.vectors(bench.build(**bench.configs[config]), 1))
    vectors["phases"] = [p for p in vectors["phases"] if p["name"] == phase_name]
    corrupt(vectors)
    result = run_bench("crossbar_tile", config, available_simulators()[-1], vectors=vectors)
    log = result.detail.split("log: ")[-1]
    return result, (Path(log).read_text() if not result.passed else "")


def _wrong_noise_sample(vectors):
    vectors["phases"][0]["noise_beats"][5] ^= 1 << 3  # one column's sample in one slice; the expected words stay


def _wrong_cycle_count(vectors):
    vectors["cycles_per_vector"] += 1


@pytest.mark.cocotb
@pytest.mark.slow
@pytest.mark.parametrize("phase,corrupt,message", [
    ("device_noise_no_stalls", _wrong_noise_sample, "phase device_noise_no_stalls: res vector 0 word"),
    ("noise_reseeded_no_stalls", _wrong_cycle_count, "phase noise_reseeded_no_stalls: cycles per vector"),
], ids=["noise_sample", "cycles"])
def test_crossbar_testbench_fails_on_a_wrong_noise_sample_or_cycle_count(phase, corrupt, message):
    """Negative controls: the noise port feeds the result, and the cycle check is real."""
    result, log = _bad_run(phase, corrupt)
    assert not result.passed and "1 of 1 cocotb tests failed" in result.detail
    assert message in log


def test_sim_summary_shows_the_measured_cycles_per_mvm():
    from verif.run_all import format_table
    from verif.simulators import TestbenchResult

    tile = TestbenchResult("crossbar_tile", "r8_c8_d1_cpa2_rd2_cv3", "icarus", True, 1066, 90000, 1.0, 2.0,
                           summary={"mvm_cycles": {"measured": [66], "formula": 66, "timed_vectors": 24}})
    other = TestbenchResult("elementwise", "default", "icarus", True, 10, 50, 1.0, 2.0)
    head, _, row_tile, row_other = format_table([tile, other]).splitlines()
    col = head.index("cycles/MVM")
    assert row_tile[col:].split()[0] == "66" and row_other[col:].split()[0] == "-"
