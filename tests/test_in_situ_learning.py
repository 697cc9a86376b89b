"""The analog adapter's read through the crossbar periphery (``sim/crossbar/adapter_read.py``), the learning
mode of the system model (``sim/system/learning.py``) and the digital fixed-point adapter of ``nmllm adapt``."""

from types import SimpleNamespace

import numpy as np
import pytest

from sim.crossbar.adapter_read import AdapterRead, fitted_full_scale, read, worst_case_full_scale
from sim.system.energy import load_preset
from sim.system.learning import DIGITAL_PJ, UpdateCounts, adapter_mvm, digital_adapter_token, learning_token


def _adapter(seed=0, out=40, fan_in=300, scale=0.05):
    rng = np.random.default_rng(seed)
    return rng.normal(0, scale, (out, fan_in)), rng.uniform(-1, 1, (17, fan_in))


def test_a_fine_adc_reads_the_quantised_product():
    w, x = _adapter()
    q = np.clip(np.sign(x) * np.floor(np.abs(x) * 127 + 0.5), -127, 127) / 127
    fs = fitted_full_scale(w, x)
    y, clipped, conversions = read(w, x, AdapterRead(full_scale=fs, adc_bits=16))
    assert clipped == 0 and conversions == 17 * 8 * 40 * 3   # 8 slices, 3 row tiles of 128
    step = fs / (2 ** 15 - 1)
    np.testing.assert_allclose(y, q @ w.T, atol=3 * 255 * step / 2 / 127)


def test_the_worst_case_range_loses_a_small_adapter_and_a_fitted_one_keeps_it():
    w, x = _adapter(scale=0.005)
    exact = x @ w.T
    coarse, c1, _ = read(w, x, AdapterRead(full_scale=worst_case_full_scale(1.0), adc_bits=8))
    fitted, c2, _ = read(w, x, AdapterRead(full_scale=fitted_full_scale(w, x), adc_bits=8))
    err = lambda y: np.abs(y - exact).mean() / np.abs(exact).mean()  # noqa: E731
    assert c1 == c2 == 0 and err(coarse) > 0.5 and err(fitted) < 0.05


def test_a_range_too_small_clips_and_is_counted():
    w, x = _adapter()
    _, clipped, conversions = read(w, x, AdapterRead(full_scale=fitted_full_scale(w, x) / 4, adc_bits=8))
    assert 0 < clipped < conversions


def test_worst_case_range_is_rows_times_the_largest_slice():
    assert worst_case_full_scale(1.0) == 128.0
    assert worst_case_full_scale(1.25, dac_bits=2, tile_rows=64) == 64 * 3 * 1.25
    assert worst_case_full_scale(0.5, act_bits=2, dac_bits=2) == 128 * 2 * 0.5   # one slice: signed


@pytest.mark.parametrize("make, message", [
    (lambda: AdapterRead(full_scale=0.0), "ADC full scale must be a positive number"),
    (lambda: AdapterRead(full_scale=1.0, dac_bits=3), "DAC bits 3 must divide the activation width 8"),
    (lambda: AdapterRead(full_scale=1.0, adc_bits=1), "adc_bits must be an integer >= 2"),
    (lambda: read(np.zeros((2, 3)), np.zeros((1, 4)), AdapterRead(full_scale=1.0)), "input length 4 does not match"),
])
def test_adapter_read_refuses_in_one_line(make, message):
    with pytest.raises(ValueError) as e:
        make()
    assert message in str(e.value) and "\n" not in str(e.value)


COUNTS = dict(pulses=845.0, line_fires=700.0, slots=31.0, reads=0.0, max_pulses_per_device=0.96,
              pulse_energy_j=4.2e-17, pulse_time_s=1e-9, endurance=1e9)


def _inference(preset="crossbar"):
    return SimpleNamespace(preset=preset, token_latency_s=3e-4, static_j=3e-5, dynamic_j=2.8e-5)


def test_the_adapted_token_is_the_inference_token_plus_its_parts():
    preset = load_preset("crossbar")
    m = learning_token(_inference(), preset, 4096, 256, UpdateCounts(**COUNTS))
    t, e = m["added_latency_s"], m["added_energy_j"]
    assert m["token_latency_s"] == pytest.approx(3e-4 + sum(t.values()))
    assert t["update"] == pytest.approx(31e-9) and e["device_writes"] == pytest.approx(845 * 4.2e-17)
    assert e["line_drive"] == pytest.approx(700 * 0.39e-12)
    assert m["static_j"] == pytest.approx(preset.static_w * preset.hardware.chips * m["token_latency_s"])
    assert m["dynamic_j"] == pytest.approx(2.8e-5 + sum(e.values()))
    assert t["error_vector"] == pytest.approx((1024 * (9.7 + 9.7 + 1.0) + 113.0) * 1e-9)
    assert m["endurance_tokens"] == pytest.approx(1e9 / 0.96)
    mvm = adapter_mvm(preset, 4096, 256)
    assert mvm["tiles"] == 2 * 64 and e["forward_read"] == pytest.approx(mvm["energy_j"])
    # Tiki-Taka's transfer reads are full reads of the array
    tt = learning_token(_inference(), preset, 4096, 256, UpdateCounts(**{**COUNTS, "reads": 1.0}))
    assert tt["added_energy_j"]["extra_reads"] == pytest.approx(mvm["energy_j"])


@pytest.mark.parametrize("make, message", [
    (lambda: UpdateCounts(**{**COUNTS, "pulse_energy_j": -1e-15}), "pulse energy j must be a non-negative"),
    (lambda: UpdateCounts(**{**COUNTS, "pulse_time_s": 0.0}), "pulse time must be a positive"),
    (lambda: UpdateCounts(**{**COUNTS, "endurance": 0}), "endurance must be a positive number"),
    (lambda: learning_token(_inference("loihi1"), load_preset("crossbar"), 8, 8, UpdateCounts(**COUNTS)),
     "the inference report is of preset loihi1"),
    (lambda: adapter_mvm(load_preset("loihi1"), 8, 8), "preset loihi1 has no crossbar arrays"),
    (lambda: digital_adapter_token(8, 8, 1, 0.0), "weight bits must be an integer in [2, 16]"),
])
def test_learning_mode_refuses_impossible_parameters_in_one_line(make, message):
    with pytest.raises(ValueError) as e:
        make()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_digital_adapter_energy_counts_every_weight_and_each_write():
    pj = {k: v["value"] for k, v in DIGITAL_PJ.items()}
    d = digital_adapter_token(10, 20, 8, writes=5.0)
    assert d["energy_j"]["forward"] == pytest.approx(200 * (pj["mult_8b"] + pj["add_32b"] + pj["sram_byte"]) * 1e-12)
    assert d["energy_j"]["update_memory"] == pytest.approx(5 * 2 * pj["sram_byte"] * 1e-12)
    assert digital_adapter_token(10, 20, 4, 5.0)["energy_j"]["update_memory"] == pytest.approx(5 * pj["sram_byte"] * 1e-12)


def test_fixed_point_adapter_is_unbiased_sgd():
    """Stochastic rounding: the mean of many 12-bit updates is the float step, even below one step."""
    from experiments.adapt import _FixedPointSGD

    x, d = np.array([0.5, -1.0, 0.1]), np.array([0.2, -0.05])
    total = np.zeros((2, 3))
    for seed in range(400):
        sgd = _FixedPointSGD((2, 3), 0.01, 12, seed)
        sgd.update(x, d)
        total += sgd.weights()
    np.testing.assert_allclose(total / 400, -0.01 * np.outer(d, x), atol=2.5e-4)
    sgd = _FixedPointSGD((2, 3), 0.01, 4, 0)
    for _ in range(3000):
        sgd.update(x, -100 * d)
    assert np.abs(sgd.weights()).max() == 1.0 and sgd.writes > 0   # saturates at the range
