"""Pulsed device models of in-situ learning (``sim/crossbar/pulsed_device.py``, ``device_presets.py``) against the
committed reference curves of aihwkit's own update rules, their variations, costs and refusals."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from sim.crossbar.device_presets import PRESETS, PULSE, preset
from sim.crossbar.pulsed_device import PulsedArray, PulsedDevice

CURVES = json.loads((Path(__file__).parent / "data" / "device_pulse_curves.json").read_text())


def nominal(device: PulsedDevice) -> PulsedDevice:
    """``device`` without variation or noise: the curve the reference records."""
    return device.replace(dw_min_dtod=0.0, up_down_dtod=0.0, w_max_dtod=0.0, w_min_dtod=0.0, dw_min_std=0.0,
                          write_noise_std=0.0)


def pulse_curve(device: PulsedDevice, sequence, every: int) -> np.ndarray:
    a = PulsedArray(nominal(device), (1, 1))
    ws = []
    for sign, n in zip((1, -1, 1), sequence):
        for _ in range(n):
            a.pulse(np.full((1, 1), sign))
            ws.append(a.w[0, 0])
    return np.array(ws)[every - 1::every]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_follows_reference_curve(name):
    ref = np.array(CURVES["curves"][name])
    ours = pulse_curve(PRESETS[name], CURVES["sequence_up_down_up"], CURVES["every"])
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-7)   # aihwkit's exp step uses single-precision expf


def test_reference_curves_show_the_published_shapes():
    """Ideal: linear to the bound; soft bounds: saturating below the bound, symmetry point at 0 (shifted by the
    reference device); RRAM exponential step: asymmetric (down faster than up)."""
    c, n_up = CURVES["curves"], CURVES["sequence_up_down_up"][0] // CURVES["every"]
    ideal = np.array(c["ideal"][:n_up])
    assert np.allclose(np.diff(ideal[:60]), ideal[1] - ideal[0])
    sb = np.array(c["reram_sb"][:n_up])
    assert np.all(np.diff(sb) > 0) and np.all(np.diff(np.diff(sb)) < 0) and sb[-1] < PRESETS["reram_sb"].w_max
    es = PRESETS["reram_es"]
    up, down = PulsedArray(nominal(es), (1, 1)), PulsedArray(nominal(es), (1, 1))
    up.pulse(np.full((1, 1), 1))
    down.pulse(np.full((1, 1), -1))
    assert -down.w[0, 0] > 1.2 * up.w[0, 0] > 0


def test_symmetry_point_of_soft_bounds_preset_is_zero():
    a = PulsedArray(nominal(PRESETS["reram_sb"]), (1, 1))
    a.set(np.full((1, 1), 0.8))
    for k in range(4000):
        a.pulse(np.full((1, 1), 1 if k % 2 else -1))
    assert abs(a.w[0, 0]) < 0.01


def test_device_to_device_and_cycle_to_cycle_variation():
    d = PulsedDevice(name="c", model="constant", dw_min=0.01, dw_min_dtod=0.3, dw_min_std=0.5)
    a = PulsedArray(d, (100, 100), seed=3)
    assert abs(a.scale_up.std() / a.scale_up.mean() - 0.3) < 0.03       # d2d gain spread
    steps = []
    for _ in range(5):
        w0 = a.w.copy()
        a.pulse(np.ones(a.shape, dtype=int))
        live = a.scale_up > 0                                              # a gain drawn below 0 is clipped to 0
        steps.append((a.w - w0)[live] / a.scale_up[live])
    assert abs(np.std(steps) - 0.5) < 0.02                                # c2c step spread
    assert a.pulses.sum() == 5 * a.w.size


def test_write_noise_is_read_not_stored_and_drift_decays():
    d = PulsedDevice(name="n", model="constant", dw_min=0.01, write_noise_std=2.0, drift_nu=0.1, drift_t0=1.0)
    a = PulsedArray(d, (50, 50), seed=1)
    a.pulse(np.full(a.shape, 10))
    assert np.allclose(a.w, 0.1)
    assert abs((a.read() - a.w).std() - 0.02) < 0.003
    np.testing.assert_allclose(a.read(t=100.0), a.read() * 100.0 ** -0.1)


def test_pulses_counted_and_priced():
    d = preset("ideal")
    a = PulsedArray(d, (3, 4))
    counts = np.array([[2, -1, 0, 0], [0, 0, 0, 3], [-4, 0, 0, 0]])
    assert a.pulse(counts) == 10
    np.testing.assert_array_equal(a.pulses, np.abs(counts))
    assert a.energy_j() == pytest.approx(10 * PULSE["voltage_v"] ** 2 * PULSE["width_s"] / PULSE["resistance_ohm"])
    np.testing.assert_allclose(a.w, counts * d.dw_min)
    assert d.states == 1000


@pytest.mark.parametrize("changes, message", [
    ({"pulse_energy_j": -1e-15}, "pulse energy (J) must be >= 0"),
    ({"pulse_time_s": 0.0}, "pulse time (s) must be > 0"),
    ({"dw_min": 3.0}, "beyond the conductance range"),
    ({"dw_min": -0.01}, "dw_min must be > 0"),
    ({"w_min": 0.5}, "must contain 0"),
    ({"up_down": 1.0}, "up_down must lie in (-1, 1)"),
    ({"model": "spline"}, "is not one of constant, linear, exp"),
    ({"endurance": 0}, "endurance must be a positive number"),
])
def test_impossible_device_refused_in_one_line(changes, message):
    with pytest.raises(ValueError) as e:
        preset("ideal").replace(**changes)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_programming_beyond_the_conductance_range_refused():
    a = PulsedArray(preset("ecram"), (2, 2))
    with pytest.raises(ValueError, match="beyond the conductance range") as e:
        a.set(np.full((2, 2), 1.5))
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="unknown device preset 'pcm'"):
        preset("pcm")


def test_presets_name_their_sources():
    for d in PRESETS.values():
        assert d.source and math.isfinite(d.endurance) and d.pulse_energy_j > 0
