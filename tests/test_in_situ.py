"""In-situ learning rules (``sim/crossbar/pulsed_update.py``, ``tiki_taka.py``) against a float reference on a small
regression problem, and the ``nmllm adapt`` experiment (``experiments/adapt.py``)."""

import json
import shutil

import numpy as np
import pytest

from sim.crossbar.device_presets import preset
from sim.crossbar.pulsed_device import PulsedDevice
from sim.crossbar.pulsed_update import AnalogSGD, PulseUpdate, pulse_counts
from sim.crossbar.tiki_taka import TikiTaka

N_IN, N_OUT, STEPS, LR = 8, 4, 3000, 0.02
#: Soft bounds without noise or variation: every step shrinks towards its bound (asymmetric around any w != 0).
SOFT = PulsedDevice(name="soft", model="linear", dw_min=0.002, gamma_up=1.0, gamma_down=1.0)


def problem(seed=0):
    """Linear regression with label noise: ``y = W* x + 0.3 N``."""
    rng = np.random.default_rng(seed)
    w_true = rng.uniform(-0.5, 0.5, (N_OUT, N_IN))
    x, xt = rng.uniform(-1, 1, (STEPS, N_IN)), rng.uniform(-1, 1, (500, N_IN))
    return x, x @ w_true.T + 0.3 * rng.standard_normal((STEPS, N_OUT)), xt, xt @ w_true.T


class FloatSGD:
    def __init__(self):
        self.w = np.zeros((N_OUT, N_IN))

    def weights(self):
        return self.w

    def update(self, x, d):
        self.w -= LR * np.outer(d, x)


def train(learner) -> float:
    """Test MSE after one pass of SGD on the squared error."""
    x, y, xt, yt = problem()
    for t in range(STEPS):
        learner.update(x[t], learner.weights() @ x[t] - y[t])
    return float(((xt @ learner.weights().T - yt) ** 2).mean())


@pytest.fixture(scope="module")
def float_loss():
    return train(FloatSGD())


def test_ideal_device_converges_like_float(float_loss):
    assert float_loss < 0.003
    assert train(AnalogSGD(preset("ideal"), (N_OUT, N_IN), PulseUpdate(LR), seed=1)) < 1.5 * float_loss


@pytest.mark.slow
def test_asymmetric_device_degrades_and_tiki_taka_recovers(float_loss):
    sgd = train(AnalogSGD(SOFT, (N_OUT, N_IN), PulseUpdate(LR), seed=1))
    assert sgd > 5 * float_loss
    tt = train(TikiTaka(SOFT, (N_OUT, N_IN), PulseUpdate(LR), lr_transfer=0.005, sp_pulses=1000, seed=1))
    assert tt < 0.2 * sgd


@pytest.mark.slow
def test_noisy_published_rram_degrades(float_loss):
    assert train(AnalogSGD(preset("reram_es"), (N_OUT, N_IN), PulseUpdate(LR), seed=1)) > 10 * float_loss


def test_pulse_counts_are_unbiased_sgd_steps():
    rng = np.random.default_rng(0)
    x, d = np.array([1.0, -0.5, 0.25, 0.0]), np.array([0.8, -0.2, 0.0])
    rule, dw = PulseUpdate(lr=0.03, bl=31), 0.002
    total = np.zeros((3, 4))
    for _ in range(4000):
        rows, counts, clipped, fires = pulse_counts(x, d, rule, dw, rng)
        total[rows] += counts
        assert clipped == 0 and np.abs(counts).max(initial=0) <= rule.bl and fires >= len(rows)
    np.testing.assert_allclose(total / 4000 * dw, -rule.lr * np.outer(d, x), atol=4e-4)


def test_backward_is_a_transposed_read():
    sgd = AnalogSGD(preset("ideal"), (3, 5), PulseUpdate(0.05), seed=0)
    sgd.array.set(np.arange(15.0).reshape(3, 5) / 20)
    d = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(sgd.backward(d), sgd.weights().T @ d)
    assert sgd.stats.reads == 1


def test_tiki_taka_symmetry_point_and_costs():
    shifted = SOFT.replace(w_min=-0.5, w_max=1.5)   # symmetry point where 1 - w/1.5 == 1 + w/0.5: w = 0
    lopsided = shifted.replace(up_down=-0.2)        # weaker up steps: the point moves below 0
    tt = TikiTaka(lopsided, (4, 6), PulseUpdate(LR), lr_transfer=0.01, sp_pulses=2000, seed=0)
    sp = tt.reference
    assert np.all(sp < -0.05)
    np.testing.assert_allclose(tt.fast_weights(), 0.0)
    assert tt.stats.extra["sp_pulses"] == 2000 * 24 and tt.stats.extra["reference_pulses"] > 0
    before = tt.stats.pulses
    tt.update(np.ones(6), np.ones(4))
    assert tt.stats.extra["transfers"] == 1 and tt.stats.reads == 1 and tt.stats.pulses > before


@pytest.mark.parametrize("make, message", [
    (lambda: PulseUpdate(0.1).check(preset("ideal")), "learning rate 0.1 needs 50 pulses of dw_min=0.002"),
    (lambda: AnalogSGD(preset("reram_es"), (2, 2), PulseUpdate(0.05)), "more than bl=31"),
    (lambda: TikiTaka(preset("ideal"), (2, 2), PulseUpdate(0.01), lr_transfer=1.0), "learning rate 1 needs 500"),
    (lambda: PulseUpdate(0.01, bl=2000).check(preset("ideal")), "beyond the conductance range 2: lower bl to <= 1000"),
    (lambda: PulseUpdate(-0.01), "learning rate must be a positive number"),
    (lambda: PulseUpdate(0.01, bl=0), "bl must be a positive integer"),
])
def test_impossible_learning_parameters_refused_in_one_line(make, message):
    with pytest.raises(ValueError) as e:
        make()
    assert message in str(e.value) and "\n" not in str(e.value)


def test_every_line_firing_is_counted():
    """At probability 1 every row and column line fires in every slot: bl x (rows + columns) firings."""
    rule = PulseUpdate(lr=31 * 0.002, bl=31)
    p = pulse_counts(np.ones(5), np.ones(3), rule, 0.002, np.random.default_rng(0))
    assert p.line_fires == 31 * (5 + 3) and p.clipped == 0 and (p.counts == -31).all()
    sgd = AnalogSGD(preset("ideal"), (3, 5), rule, seed=0)
    sgd.update(np.ones(5), np.ones(3))
    assert sgd.stats.line_fires == 31 * 8 and sgd.stats.pulses == 15 * 31 and sgd.stats.slots == 31


@pytest.mark.parametrize("argv, message", [
    (["--runs", "sgd/pcm"], "unknown device preset 'pcm'"),
    (["--runs", "digital/int1"], "digital/int<bits> with 2 to 16 bits"),
    (["--runs", "digital/float"], "digital/int<bits> with 2 to 16 bits"),
    (["--runs", "prune/gutenberg"], "the prune steps are prune/wikipedia"),
    (["--runs", "prune/wikipedia", "--prune-record", "nowhere.json"], "--prune-record nowhere.json: no such file"),
    (["--reads", "adc8-best"], "--reads entry 'adc8-best'"),
    (["--activity", "nowhere.json"], "--activity nowhere.json: no such file"),
    (["--system-preset", "loihi1"], "--system-preset loihi1 has no crossbar arrays"),
    (["--runs", "adam/ideal"], "rule must be one of sgd, tiki_taka"),
    (["--lr", "0.5"], "learning rate 0.5 needs"),
    (["--lr-transfer", "0.2", "--runs", "tiki_taka/ecram"], "learning rate 0.2 needs"),
    (["--train-tokens", "0"], "--train-tokens must be a positive integer"),
    (["--news-eval-first", "0"], "--news-eval-first (0) must come after"),
])
def test_adapt_refuses_bad_options_before_loading(argv, message, capsys, tmp_path):
    import sys

    from nmllm.cli import main

    assert main(["adapt", "--out", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nmllm adapt: error: ") and message in err and "\n" not in err
    assert "torch" not in sys.modules or not list(tmp_path.iterdir())


@pytest.mark.slow
def test_adapt_runs_resumes_and_records(tmp_path):
    from nmllm.cli import main

    argv = ["adapt", "--train-tokens", "128", "--eval-tokens", "64",
            "--runs", "float,sgd/ideal,tiki_taka/ecram,digital/int8,prune/news-ema1", "--reads", "adc8-worst,adc8-fit",
            "--sp-pulses", "4", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache"), "--no-progress"]
    assert main(argv) == 0
    rec = json.loads((tmp_path / "out" / "adapt.json").read_text())
    runs = {r["run"]: r for r in rec["runs"]}
    assert set(runs) == {"float", "sgd/ideal", "tiki_taka/ecram", "digital/int8", "prune/news-ema1"}
    assert runs["float"]["news_ppl"] < rec["before"]["news_ppl"]
    assert runs["digital/int8"]["digital"]["writes_per_token"] > 0 and runs["digital/int8"]["digital"]["total_j"] > 0
    assert runs["prune/news-ema1"]["restored"] == runs["prune/news-ema1"]["newly_pruned"] > 0
    assert set(runs["sgd/ideal"]["reads"]) == {"adc8-worst", "adc8-fit"} and "reads" not in runs["digital/int8"]
    assert set(rec["learning_mode"]) == {"sgd/ideal", "tiki_taka/ecram"}
    mode = rec["learning_mode"]["sgd/ideal"]
    assert mode["token_latency_s"] > rec["system"]["token_latency_s"] and mode["counts"]["line_fires"] > 0
    cost = runs["sgd/ideal"]["cost"]
    assert cost["pulses"] > 0 and cost["write_energy_per_token_j"] > 0
    assert cost["update_time_per_token_s"] == pytest.approx(31e-9)
    assert runs["tiki_taka/ecram"]["cost"]["transfers"] == 128
    assert rec["provenance"]["load_average"]
    for png in ("adapt_quality.png", "adapt_curves.png"):
        assert (tmp_path / "out" / png).stat().st_size > 0
    assert not (tmp_path / "out" / "adapt.partial.json").exists()
    # resume: stored points are reused as they are (a marked one stays marked), features are not recomputed
    runs["float"]["news_ppl"] = 1.0
    partial = {"settings": rec["settings"], "points": {"before": rec["before"], "float": runs["float"],
                                                       "sgd/ideal": runs["sgd/ideal"]}}
    (tmp_path / "out" / "adapt.partial.json").write_text(json.dumps(partial))
    shutil.rmtree(tmp_path / "cache")
    argv[argv.index("--runs") + 1] = "float,sgd/ideal"
    assert main(argv) == 0
    again = json.loads((tmp_path / "out" / "adapt.json").read_text())
    assert [r["run"] for r in again["runs"]] == ["float", "sgd/ideal"] and again["runs"][0]["news_ppl"] == 1.0
    assert not (tmp_path / "cache").exists()
