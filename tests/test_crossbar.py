"""The crossbar model: ideal-mode identity with the golden model, device effects, LFSR, IR drop, costs,
and the refusal of impossible parameters."""

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from models.program import numformat
from models.mmfree.config import preset
from models.program.crossbar import (LFSR_BITS, LFSR_MASK, Periphery, lfsr_next, lfsr_noise, slice_inputs,
                                     tile_mvm_integer)
from models.program.ternary_kernels import ternary_matvec
from sim.crossbar.costs import (PeripheryCosts, accuracy_sweep, model_layers, mvm_cost, mvm_events,
                                tile_cycles, token_report)
from sim.crossbar.device import DeviceParams, program
from sim.crossbar.ir_drop import WireParams, column_currents, transfer_matrix
from sim.crossbar.tile import CrossbarConfig, CrossbarExecutor, CrossbarLayer


def random_layer(rng, fan_in, out, act_bits=8, n=40):
    w = rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=(fan_in, out), p=[0.3, 0.4, 0.3])
    lo, hi = numformat.act_range(act_bits)
    xs = rng.integers(lo, hi + 1, size=(n, fan_in))
    xs[: n // 4] = np.where(rng.random((n // 4, fan_in)) < 0.7, 0, xs[: n // 4])  # some sparse vectors
    xs[-1] = lo  # the most negative activation everywhere
    return w, numformat.encode_ternary(w), xs


def golden(codes, xs, act_bits=8):
    return np.stack([ternary_matvec(codes, x, act_bits=act_bits)[0] for x in xs])


# ------------------------------------------------------------------ ideal mode == golden model
@pytest.mark.parametrize("dac_bits", [1, 2, 4, 8])
@pytest.mark.parametrize("shape,tile", [((64, 32), (64, 32)), ((200, 90), (64, 32)), ((130, 70), (128, 64))])
def test_ideal_mode_equals_the_golden_model(dac_bits, shape, tile):
    rng = np.random.default_rng(dac_bits * 100 + shape[0])
    _, codes, xs = random_layer(rng, *shape)
    layer = CrossbarLayer(codes, tile_rows=tile[0], tile_cols=tile[1],
                          periphery=Periphery(dac_bits=dac_bits, adc_bits=16))
    assert layer.exact and layer.adc_shift == 0
    assert np.array_equal(layer.matvec(xs), golden(codes, xs))
    assert layer.events["adc_clipped"] == 0


@pytest.mark.parametrize("levels", [2, 4, 5, 16])
def test_ideal_multilevel_cells_rescale_exactly(levels):
    """Cells of ``levels - 1`` steps per weight (a non-power-of-two scale included) come back exactly."""
    rng = np.random.default_rng(levels)
    _, codes, xs = random_layer(rng, 96, 48)
    layer = CrossbarLayer(codes, tile_rows=48, tile_cols=48, device=DeviceParams(levels=levels),
                          periphery=Periphery(adc_bits=16))
    assert layer.cell_scale == levels - 1 and layer.exact
    assert np.array_equal(layer.matvec(xs), golden(codes, xs))


@pytest.mark.parametrize("act_bits,dac_bits", [(4, 1), (4, 2), (2, 1), (2, 2)])
def test_ideal_mode_at_narrow_activations(act_bits, dac_bits):
    rng = np.random.default_rng(act_bits + 10 * dac_bits)
    _, codes, xs = random_layer(rng, 40, 24, act_bits=act_bits)
    layer = CrossbarLayer(codes, tile_rows=20, tile_cols=24,
                          periphery=Periphery(act_bits=act_bits, dac_bits=dac_bits, adc_bits=10))
    assert np.array_equal(layer.matvec(xs), golden(codes, xs, act_bits))


def test_analog_path_with_negligible_noise_equals_the_golden_model():
    """The real-valued path (taken when read noise is on) normalises currents to the same integers."""
    rng = np.random.default_rng(5)
    _, codes, xs = random_layer(rng, 100, 40)
    layer = CrossbarLayer(codes, tile_rows=50, tile_cols=40, device=DeviceParams(read_noise=1e-12),
                          periphery=Periphery(adc_bits=12))
    assert not layer.exact
    assert np.array_equal(layer.matvec(xs), golden(codes, xs))


def test_executor_hook_takes_out_by_in_weights_and_saturates_like_golden():
    rng = np.random.default_rng(6)
    w, codes, xs = random_layer(rng, 64, 80)
    ex = CrossbarExecutor(CrossbarConfig(tile_rows=256, tile_cols=256, periphery=Periphery(adc_bits=12)))
    got = ex("proj", w.T, xs)
    assert np.array_equal(got, golden(codes, xs))
    assert ex.layers["proj"].tile_rows == 64 and ex.adc_conversions()["proj"] == len(xs) * 8 * 80
    assert np.array_equal(ex("proj", w.T, xs[0]), golden(codes, xs[:1])[0])
    # out_bits saturates as the golden model does
    layer = ex.layers["proj"]
    assert np.array_equal(layer.matvec(xs, out_bits=10), np.stack([ternary_matvec(codes, x, 10)[0] for x in xs]))


def test_slices_recompose_the_twos_complement_value():
    x = np.arange(-128, 128)
    for d in (1, 2, 4, 8):
        sl = slice_inputs(x, 8, d)
        assert np.array_equal((sl * (1 << (np.arange(8 // d) * d))[:, None]).sum(0), x)
        assert ((sl[:-1] >= 0) & (sl[:-1] <= (1 << d) - 1)).all()


# ------------------------------------------------------------------ device effects
EFFECTS = {"prog_noise": dict(prog_noise=0.03), "d2d": dict(d2d=0.05), "read_noise": dict(read_noise=0.2),
           "drift": dict(drift_nu=0.05, drift_nu_std=0.01, t_read=3600.0), "stuck_on": dict(stuck_on=0.01),
           "stuck_off": dict(stuck_off=0.01)}


@pytest.mark.parametrize("effect", sorted(EFFECTS))
def test_each_effect_is_switchable_and_seeded(effect):
    rng = np.random.default_rng(7)
    _, codes, xs = random_layer(rng, 128, 64)
    kw = EFFECTS[effect]

    def run(seed, **extra):
        layer = CrossbarLayer(codes, tile_rows=64, tile_cols=64, device=DeviceParams(seed=seed, **extra),
                              periphery=Periphery(adc_bits=14))
        return layer.matvec(xs)

    ideal = golden(codes, xs)
    assert np.array_equal(run(1), ideal)                       # off: exact
    on = run(1, **kw)
    assert not np.array_equal(on, ideal)                       # on: the outputs move
    assert np.array_equal(run(1, **kw), on)                    # same seed: same outputs
    assert not np.array_equal(run(2, **kw), on)                # another seed: other outputs


def test_effects_draw_from_independent_streams():
    """Turning faults on leaves the programming-noise samples of the healthy devices unchanged."""
    w = np.random.default_rng(8).choice([-1, 0, 1], size=(64, 64))
    a = program(w, DeviceParams(prog_noise=0.05, seed=3))
    b = program(w, DeviceParams(prog_noise=0.05, stuck_on=0.2, seed=3))
    healthy = (b.g_pos != 10e-6) & (b.g_neg != 10e-6)
    assert healthy.mean() > 0.5
    assert np.array_equal(a.g_pos[healthy], b.g_pos[healthy])


def test_finite_levels_and_fault_statistics():
    p = DeviceParams(levels=8, prog_noise=0.05, stuck_on=0.1, stuck_off=0.05, seed=4)
    w = np.random.default_rng(9).choice([-1, 0, 1], size=(256, 256))
    arr = program(w, p)
    step = p.g_range / 7
    assert np.allclose((arr.g_pos - p.g_min) / step, arr.level_pos)
    assert arr.cells().min() >= -7 and arr.cells().max() <= 7
    on = np.mean(np.concatenate([arr.level_pos.ravel(), arr.level_neg.ravel()]) == 7)
    assert 0.1 <= on <= 0.1 + 1 / 3 + 0.02  # stuck-on devices plus the programmed "on" ones
    # with no noise, stuck-at rates are seen exactly as drawn: a fraction stuck_on of off devices read on
    arr = program(np.zeros((256, 256), dtype=int), DeviceParams(stuck_on=0.1, stuck_off=0.05, seed=4))
    assert abs(np.mean(arr.g_pos == p.g_max) - 0.1) < 0.01


def test_drift_follows_the_power_law():
    p = DeviceParams(drift_nu=0.06, t_read=2000.0)
    arr = program(np.ones((8, 8), dtype=int), p)
    assert np.allclose(arr.g_pos, p.g_max * (2000.0 / 20.0) ** -0.06)
    assert arr.level_pos is None


def test_read_noise_varies_per_read_and_averages_out():
    rng = np.random.default_rng(10)
    _, codes, xs = random_layer(rng, 128, 32, n=4)
    layer = CrossbarLayer(codes, tile_rows=128, tile_cols=32, device=DeviceParams(read_noise=0.1, seed=1),
                          periphery=Periphery(adc_bits=14))
    x = np.repeat(xs[1:2], 400, axis=0)
    ys = layer.matvec(x)
    assert len({tuple(r) for r in ys[:20]}) > 1                     # cycle to cycle
    assert np.abs(ys.mean(0) - golden(codes, xs[1:2])[0]).max() < 0.05 * np.abs(ys).max()


def test_adc_clips_outside_its_range():
    rng = np.random.default_rng(11)
    _, codes, xs = random_layer(rng, 128, 16)
    layer = CrossbarLayer(codes, tile_rows=128, tile_cols=16, periphery=Periphery(adc_bits=4, adc_shift=1))
    layer.matvec(xs)
    assert layer.events["adc_clipped"] > 0
    # the auto range never clips an ideal tile
    layer = CrossbarLayer(codes, tile_rows=128, tile_cols=16, periphery=Periphery(adc_bits=4))
    layer.matvec(xs)
    assert layer.events["adc_clipped"] == 0 and layer.adc_shift == 5  # 128 rows x 1 x 1 <= 7 * 2**5


# ------------------------------------------------------------------ LFSR and the integer tile (RTL twin)
def _gf2_matrix_power_is_identity(exponent: int) -> bool:
    """Does ``exponent`` steps of the LFSR (a linear map over GF(2)^32) map every state to itself?"""
    cols = [lfsr_next(1 << k) for k in range(LFSR_BITS)]  # the step's matrix, column k = image of bit k

    def apply(m, v):
        out, k = 0, 0
        while v:
            if v & 1:
                out ^= m[k]
            v >>= 1
            k += 1
        return out

    def mul(a, b):  # a after b
        return [apply(a, c) for c in b]

    result, base, e = [1 << k for k in range(LFSR_BITS)], cols, exponent
    while e:
        if e & 1:
            result = mul(base, result)
        base = mul(base, base)
        e >>= 1
    return result == [1 << k for k in range(LFSR_BITS)]


def test_lfsr_has_maximal_period():
    period = (1 << LFSR_BITS) - 1
    assert LFSR_MASK == 0x80200003
    assert _gf2_matrix_power_is_identity(period)
    for q in (3, 5, 17, 257, 65537):  # the prime factors of 2**32 - 1
        assert not _gf2_matrix_power_is_identity(period // q)


def slow_tile(cells, xs, act_bits, dac_bits, adc_bits, adc_shift, noise_bits, state):
    """The integer tile read literally: vector by vector, slice by slice, column by column."""
    out = []
    for x in xs:
        raw = [0] * cells.shape[1]
        for j in range(act_bits // dac_bits):
            top = j == act_bits // dac_bits - 1
            s = [(int(v) >> (j * dac_bits)) if top else (int(v) >> (j * dac_bits)) & ((1 << dac_bits) - 1) for v in x]
            for c in range(cells.shape[1]):
                acc = sum(si * int(cells[i, c]) for i, si in enumerate(s))
                if noise_bits:
                    state = lfsr_next(state)
                    acc += lfsr_noise(state, noise_bits)
                code = numformat.saturate(numformat.round_shift(acc, adc_shift), adc_bits)
                raw[c] += code << (j * dac_bits)
        out.append(raw)
    return np.array(out), state


@pytest.mark.parametrize("noise_bits", [0, 3])
@pytest.mark.parametrize("dac_bits", [1, 2])
def test_integer_tile_matches_a_literal_reading(noise_bits, dac_bits):
    rng = np.random.default_rng(12)
    cells = rng.integers(-8, 9, size=(12, 5))
    xs = rng.integers(-128, 128, size=(6, 12))
    per = Periphery(dac_bits=dac_bits, adc_bits=5, adc_shift=2, noise_bits=noise_bits, lfsr_seed=0xACE1)
    got, state = tile_mvm_integer(cells, xs, per, 2, per.lfsr_seed)
    want, want_state = slow_tile(cells, xs, 8, dac_bits, 5, 2, noise_bits, per.lfsr_seed)
    assert np.array_equal(got, want) and state == want_state


def test_quantised_noisy_layer_is_the_integer_tile():
    """A one-tile layer with static effects on finite levels runs exactly the integer tile on its cells."""
    rng = np.random.default_rng(13)
    _, codes, xs = random_layer(rng, 16, 8)
    dev = DeviceParams(levels=9, prog_noise=0.06, d2d=0.05, stuck_on=0.02, stuck_off=0.02, seed=5)
    per = Periphery(adc_bits=6, adc_shift=2, noise_bits=3, lfsr_seed=77)
    layer = CrossbarLayer(codes, tile_rows=16, tile_cols=8, device=dev, periphery=per)
    want, _ = tile_mvm_integer(layer.tiles[0].cells, xs, per, 2, 77)
    assert layer.exact and np.array_equal(layer.raw(xs), want)
    layer.reset_noise()
    assert np.array_equal(layer.raw(xs), want)


# ------------------------------------------------------------------ IR drop
def test_ir_drop_solvers_agree_and_are_linear():
    rng = np.random.default_rng(14)
    g = rng.uniform(1e-6, 1e-4, size=(24, 40))
    v = rng.uniform(0, 0.2, size=(24, 3))
    wires = WireParams(r_wl=3.0, r_bl=2.0)
    direct = column_currents(g, v, wires, method="direct")
    pcg = column_currents(g, v, wires, method="pcg")
    assert np.abs(direct - pcg).max() < 1e-6 * np.abs(direct).max()
    m = transfer_matrix(g, wires)
    assert np.abs(v.T @ m - direct.T).max() < 1e-9 * np.abs(direct).max()
    ideal = v.T @ g
    assert (direct.T < ideal).all() and (direct.T > 0.5 * ideal).all()  # IR drop lowers every current


def test_ir_drop_changes_a_layer_and_is_deterministic():
    rng = np.random.default_rng(15)
    _, codes, xs = random_layer(rng, 32, 16, n=8)
    kw = dict(tile_rows=32, tile_cols=16, device=DeviceParams(g_max=1e-4, g_min=1e-6),
              periphery=Periphery(adc_bits=12), wires=WireParams(r_wl=5.0, r_bl=5.0))
    a = CrossbarLayer(codes, **kw).matvec(xs)
    assert not np.array_equal(a, golden(codes, xs))
    assert np.array_equal(a, CrossbarLayer(codes, **kw).matvec(xs))


# ------------------------------------------------------------------ costs
def test_cost_table_cites_a_source_for_every_constant():
    costs = PeripheryCosts.load()
    assert set(costs.sources) >= {"dac_1bit", "cell_read", "sample_hold", "adc", "shift_add", "input_buffer_bit",
                                  "output_buffer_bit", "crossbar_cycle_ns", "columns_per_adc", "add_ns"}
    assert all(len(s) > 20 for s in costs.sources.values())
    assert costs.adc_energy_pj(8) == pytest.approx(1.5625)
    assert costs.adc_energy_pj(4) == pytest.approx(1.5625 / 16)
    assert costs.adc_rate_gsps == 1.28


def test_mvm_events_and_cost_per_event():
    costs = PeripheryCosts.load()
    per = Periphery(dac_bits=2, adc_bits=6)
    ev = mvm_events(640, 256, 256, 128, per, costs.columns_per_adc)
    assert (ev.slices, ev.row_tiles, ev.col_tiles) == (4, 3, 2)
    assert ev.adc_conversions == 4 * 256 * 3 and ev.dac_events == 4 * 640 * 2
    assert ev.cell_reads == 2 * 4 * 640 * 256 and ev.partial_sum_adds == 2 * 256
    c = mvm_cost(ev, per, costs)
    assert c["energy_pj"]["adc"] == pytest.approx(ev.adc_conversions * 1.5625 / 4)
    assert c["energy_pj"]["dac"] == pytest.approx(ev.dac_events * 0.39 * 3)
    # the RTL tile at one conversion per 1/1.28 ns: 256 in + 128 read + 128 conversions + 3 x 128 + 128 out
    assert c["tile_cycles"] == 1024 and c["latency_ns"] == pytest.approx(1024 / 1.28 + 2 * 1.0)


def test_mvm_latency_of_the_crossbar_preset_is_the_rtl_tiles():
    """128 rows x 64 pairs, 8 columns per ADC, 1-bit DAC: 1,224 cycles at 1.28 GHz (the old model said 900 ns)."""
    costs = PeripheryCosts.load()
    c = mvm_cost(mvm_events(128, 64, 128, 64, Periphery(), 8), Periphery(), costs)
    assert c["tile_cycles"] == 1224 and c["latency_ns"] == pytest.approx(956.25)
    with pytest.raises(ValueError, match="columns per ADC do not divide"):
        mvm_events(128, 60, 128, 60, Periphery(), 8)


_RTL_CASE = re.compile(r"\((\d+)x(\d+), (\d+)-bit DAC, (\d+) columns per ADC, read (\d+) \+ conversion (\d+) cycles\)")


def test_cost_model_cycles_equal_the_rtl_measurements():
    """Every configuration of bench/results/crossbar_rtl.json: the cost model's cycles are the measured ones."""
    records = json.loads((Path(__file__).resolve().parent.parent / "bench/results/crossbar_rtl.json").read_text())
    measured = [r for r in records if r["metric"].startswith("mvm_cycles_")]
    assert len({r["case"] for r in measured}) >= 4
    base = PeripheryCosts.load()
    for r in measured:
        rows, cols, dac, per_adc, read, conv = map(int, _RTL_CASE.search(r["case"]).groups())
        clock = 1.0 / (base.adc_rate_gsps * conv)          # conversions of ``conv`` clock cycles
        costs = replace(base, cycle_ns=read * clock)
        per = Periphery(dac_bits=dac)
        ev = mvm_events(rows, cols, rows, cols, per, per_adc)
        assert tile_cycles(ev, costs, clock) == r["value"], r["case"]
        if conv == 1:
            assert mvm_cost(ev, per, costs)["tile_cycles"] == r["value"]


def test_token_report_counts_adc_conversions_per_layer():
    cfg = CrossbarConfig(tile_rows=128, tile_cols=128)
    layers = model_layers(preset("bundled"))
    report = token_report(layers, cfg)
    by = {r["layer"]: r for r in report["layers"]}
    assert by["layers.0.attn.i_proj"]["adc_conversions"] == 8 * 256 * 2      # 2 row tiles of 128
    assert by["layers.0.mlp.down_proj"]["adc_conversions"] == 8 * 256 * 5    # fan-in 640
    assert by["lm_head"]["adc_conversions"] == 8 * 4096 * 2
    assert report["adc_conversions"] == sum(r["adc_conversions"] for r in report["layers"])
    assert len(layers) == 5 * 6 + 1


def test_accuracy_sweep_finds_the_cheapest_setting_within_budget():
    """The sweep on a real (small) workload: the relative error of one layer, as exp(error) 'perplexity'."""
    rng = np.random.default_rng(16)
    w, codes, xs = random_layer(rng, 128, 64, n=16)
    want = golden(codes, xs)

    def evaluate(executor):
        if executor is None:
            return 1.0
        got = executor("layer", w.T, xs)
        return math.exp(np.abs(got - want).mean() / np.abs(want).mean())

    base = CrossbarConfig(tile_rows=128, tile_cols=64)
    result = accuracy_sweep(evaluate, base, {"adc_bits": [3, 6, 9], "read_noise": [0.0, 0.5]},
                            {"layer": (128, 64)}, tolerance=0.01)
    pts = {(p["knob"], p["value"]): p for p in result["points"]}
    assert pts[("adc_bits", 3)]["perplexity"] > pts[("adc_bits", 9)]["perplexity"] == 1.0
    assert not pts[("adc_bits", 3)]["within_budget"] and pts[("adc_bits", 9)]["within_budget"]
    ok = [p for p in result["points"] if p["within_budget"]]
    assert all(p["perplexity"] <= 1.01 for p in ok)
    assert result["cheapest"] in ok
    assert result["cheapest"]["energy_pj_per_token"] == min(p["energy_pj_per_token"] for p in ok)


# ------------------------------------------------------------------ impossible parameters
@pytest.mark.parametrize("kwargs,message", [
    (dict(adc_bits=0), "ADC bits must be at least 1, not 0"),
    (dict(adc_bits=-3), "ADC bits must be at least 1, not -3"),
    (dict(dac_bits=3), "DAC bits 3 must divide the activation width 8"),
    (dict(dac_bits=0), "DAC bits 0 must divide the activation width 8"),
    (dict(act_bits=6), "Activation width 6 is not allowed by the number-format spec"),
    (dict(noise_bits=17), r"Noise bits must be in \[0, 16\], not 17"),
    (dict(lfsr_seed=0), "LFSR seed must be in"),
    (dict(adc_shift=-1), "ADC shift must be None or an integer in"),
])
def test_impossible_periphery_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Periphery(**kwargs)


@pytest.mark.parametrize("kwargs,message", [
    (dict(g_min=1e-5, g_max=1e-5), r"G_min \(1e-05 S\) must be below G_max \(1e-05 S\)"),
    (dict(g_min=2e-5, g_max=1e-5), r"G_min \(2e-05 S\) must be below G_max \(1e-05 S\)"),
    (dict(g_min=-1e-6), "G_min must be >= 0, not -1e-06"),
    (dict(stuck_on=1.5), r"Stuck-at-on fault rate 1.5 is outside \[0, 1\]"),
    (dict(stuck_off=-0.1), r"Stuck-at-off fault rate -0.1 is outside \[0, 1\]"),
    (dict(stuck_on=0.6, stuck_off=0.6), "Stuck-at fault rates add up to 1.2, more than 1"),
    (dict(levels=1), "Conductance levels must be at least 2, not 1"),
    (dict(read_noise=-0.01), "Read noise must be >= 0, not -0.01"),
    (dict(t_read=1.0), "Read time 1 s must not precede the drift reference time 20 s"),
])
def test_impossible_device_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DeviceParams(**kwargs)


def test_tile_larger_than_the_layer_is_refused():
    codes = numformat.encode_ternary(np.zeros((256, 64), dtype=np.int8))
    with pytest.raises(ValueError, match="Tile 512x512 is larger than the 256x64 layer"):
        CrossbarLayer(codes, tile_rows=512, tile_cols=512)
    with pytest.raises(ValueError, match="Tile 128x128 is larger than the 256x64 layer"):
        CrossbarLayer(codes, tile_rows=128, tile_cols=128)
    with pytest.raises(ValueError, match="Tile rows must be a positive integer, not 0"):
        CrossbarLayer(codes, tile_rows=0, tile_cols=64)


@pytest.mark.parametrize("kwargs,message", [
    (dict(r_wl=0.0), "Word-line resistance per cell must be a positive number of ohms, not 0.0"),
    (dict(r_bl=-1.0), "Bit-line resistance per cell must be a positive number of ohms, not -1.0"),
])
def test_impossible_wires_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WireParams(**kwargs)


def test_unknown_sweep_knob_is_refused():
    with pytest.raises(ValueError, match="Unknown crossbar knob 'adc'; use one of adc_bits"):
        CrossbarConfig().with_knob("adc", 4)


# ------------------------------------------------------------------ the RTL tile (its cocotb runs are in test_rtl.py)
def test_rtl_tile_refuses_impossible_parameters():
    from hw.crossbar_tile import CrossbarTile

    with pytest.raises(ValueError, match="ADC bits must be between 1 and 24, not 0"):
        CrossbarTile(rows=8, cols=4, adc_bits=0)
    with pytest.raises(ValueError, match="DAC bits 3 must divide the activation width 8"):
        CrossbarTile(rows=8, cols=4, dac_bits=3)
    with pytest.raises(ValueError, match="Noise bits must be between 0 and 16, not 20"):
        CrossbarTile(rows=8, cols=4, noise_bits=20)
    with pytest.raises(ValueError, match="Cell bits must be between 2 and 16, not 1"):
        CrossbarTile(rows=8, cols=4, cell_bits=1)


def test_cell_memory_image_packs_twos_complement_columns():
    from hw.crossbar_tile import cell_memory_image

    assert cell_memory_image([[1, -1], [-8, 7]], 4) == [0b1111_0001, 0b0111_1000]
    with pytest.raises(ValueError, match=r"Cell values must lie in \[-8, 7\] for 4-bit cells"):
        cell_memory_image([[8]], 4)


@pytest.mark.cocotb
@pytest.mark.slow
def test_crossbar_testbench_fails_on_a_wrong_expected_word():
    """Negative control: one corrupted model word in a noisy phase fails the cocotb run."""
    import copy

    from verif.flow import run_bench
    from verif.registry import BENCHES
    from verif.simulators import available_simulators

    bench = BENCHES["crossbar_tile"]
    config = next(iter(bench.configs))
    vectors = bench.vectors(bench.build(**bench.configs[config]), 1)
    bad = copy.deepcopy(vectors)
    bad["phases"] = [p for p in bad["phases"] if p["name"] == "noise_reseeded_no_stalls"]
    bad["phases"][0]["expected"][5][3] += 1
    result = run_bench("crossbar_tile", config, available_simulators()[-1], vectors=bad)
    assert not result.passed and "1 of 1 cocotb tests failed" in result.detail


def test_executor_layers_draw_independent_device_samples():
    """Two layers with the same weights get different faults (streams keyed by layer name)."""
    w = np.random.default_rng(17).choice(np.array([-1, 0, 1], dtype=np.int8), size=(32, 64))
    ex = CrossbarExecutor(CrossbarConfig(tile_rows=64, tile_cols=32, device=DeviceParams(levels=4, stuck_on=0.2)))
    a, b = ex.layer("layers.0.attn.i_proj", w), ex.layer("layers.0.attn.f_proj", w)
    assert not np.array_equal(a.tiles[0].cells, b.tiles[0].cells)
    assert a.tiles[0].lfsr != b.tiles[0].lfsr
    assert np.array_equal(CrossbarExecutor(ex.config).layer("layers.0.attn.i_proj", w).tiles[0].cells, a.tiles[0].cells)
