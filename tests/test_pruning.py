"""Adaptive synaptic pruning (models/pruning/, ``nmllm prune`` in experiments/pruning_sweep.py): essential
synapses survive, per-layer sparsities are met, sparsity 0 changes nothing, bad settings are refused, a
pruned program stays bit-exact between the torch integer view and the golden model, and a domain update
moves the thresholds."""

import argparse
import math

import numpy as np
import pytest
import torch

from experiments import pruning_sweep
from models.pruning.budget import calibration_nll, fit_budget, probe_sensitivity
from models.pruning.pruner import Sensitivity, SynapticPruner
from models.pruning.stats import (_Recorder, event_counts, gather_stats, get_projection, latent_magnitudes,
                                  projection_names)
from models.mmfree.config import preset
from models.program.golden import GoldenModel
from models.program.integer_program import IntegerProgram
from models.program.integer_view import IntegerView
from models.mmfree.model import MMFreeForCausalLM

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def program():
    return IntegerProgram.random(preset("tiny"), seed=3)


def windows(seed: int, vocab: int, n: int = 4, length: int = 24, lo: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return rng.integers(lo, vocab, size=(n, length)).tolist()


@pytest.fixture(scope="module")
def stats(program):
    return gather_stats(program, windows(0, program.vocab_size), source="domain A")


@pytest.fixture(scope="module")
def shifted(program):
    # another "domain": a narrow band of token ids, so other channels carry the activity
    return gather_stats(program, windows(1, 40, lo=0), source="domain B")


def essential_mask(program, seed: int = 0) -> dict[str, np.ndarray]:
    """Pins ~10% of every projection's synapses, plus one whole input column and one output row."""
    rng = np.random.default_rng(seed)
    out = {}
    for n in projection_names(program):
        c = get_projection(program, n).codes
        m = rng.random(c.shape) < 0.1
        m[:, rng.integers(c.shape[1])] = True
        m[rng.integers(c.shape[0]), :] = True
        out[n] = m
    return out


def logits(program, ids):
    return IntegerView(program).forward(torch.tensor(ids))[0]


def test_the_statistics_hook_computes_the_same_logits_as_the_plain_view(program):
    ids = torch.tensor(windows(5, program.vocab_size, n=2, length=16))
    plain = IntegerView(program).forward(ids)[0]
    hooked = IntegerView(program, accumulate=_Recorder()).forward(ids)[0]
    assert torch.equal(plain, hooked)


def test_statistics_cover_every_projection_with_its_shape(program, stats):
    names = projection_names(program)
    assert names[-1] == "lm_head" and len(names) == 6 * len(program.layers) + 1
    for n in names:
        p = get_projection(program, n)
        assert stats.act_sq[n].shape == (p.fan_in,) and stats.out_sq[n].shape == (p.fan_out,)
        assert np.all(stats.act_rate[n] <= 1.0) and np.all(stats.act_abs[n] ** 2 <= stats.act_sq[n] + 1e-9)
    assert stats.tokens == 4 * 24


def test_sparsity_zero_leaves_the_program_bit_exact(program, stats):
    pr = SynapticPruner(program, stats, 0.0, essential=essential_mask(program))
    pruned = pr.pruned()
    for n in pr.names:
        assert np.array_equal(get_projection(pruned, n).codes, get_projection(program, n).codes)
        assert not pr.masks[n].any()
    ids = windows(7, program.vocab_size, n=2, length=20)
    assert torch.equal(logits(pruned, ids), logits(program, ids))


@pytest.mark.parametrize("sparsity", [0.1, 0.37, 0.5, 0.9])
@pytest.mark.parametrize("saliency", ["activation", "random"])
def test_each_projection_reaches_its_target_within_one_synapse(program, stats, sparsity, saliency):
    pr = SynapticPruner(program, stats, sparsity, saliency=saliency)
    for n in pr.names:
        live = int((get_projection(program, n).codes != 0).sum())
        assert abs(int(pr.masks[n].sum()) - sparsity * live) <= 1, n
        assert not (pr.masks[n] & ~pr.live[n]).any()          # only non-zero synapses are removed
        assert pr.report()["layers"][n]["target"] == sparsity
    # the pruned program holds exactly those zeros, its scales untouched
    pruned = pr.pruned()
    for n in pr.names:
        a, b = get_projection(program, n), get_projection(pruned, n)
        assert np.array_equal(b.codes == 0, (a.codes == 0) | pr.masks[n])
        assert (a.multiplier, a.shift) == (b.multiplier, b.shift) and np.array_equal(a.gain, b.gain)
    assert get_projection(program, "lm_head").codes is not get_projection(pruned, "lm_head").codes


def test_one_threshold_per_projection_also_meets_the_target(program, stats):
    pr = SynapticPruner(program, stats, 0.45, saliency="random", balance_rows=False)
    for n in pr.names:
        assert abs(int(pr.masks[n].sum()) - 0.45 * pr.live[n].sum()) <= 1
        sal = pr.saliency(n)
        kept = pr.live[n] & ~pr.masks[n]
        assert sal[pr.masks[n]].max() <= sal[kept].min() and pr.thresholds[n] == sal[pr.masks[n]].max()


def test_synapse_pruning_removes_the_least_salient_first_within_each_output(program, stats):
    pr = SynapticPruner(program, stats, 0.4, saliency="activation")
    sal = pr.saliency("layers.0.gate_proj")
    m, live = pr.masks["layers.0.gate_proj"], pr.live["layers.0.gate_proj"]
    for o in range(m.shape[0]):
        if m[o].any() and (live[o] & ~m[o]).any():
            assert sal[o, m[o]].max() <= sal[o, live[o] & ~m[o]].min()


@pytest.mark.parametrize("granularity", ["synapse", "input", "output"])
def test_pinned_essential_synapses_survive_every_sparsity_and_update(program, stats, shifted, granularity):
    ess = essential_mask(program, seed=1)
    pr = SynapticPruner(program, stats, 0.0, granularity=granularity, essential=ess)
    for s in (0.2, 0.6, 0.95, 0.999):
        pr.set_sparsity(s)
        for _ in range(2):
            pruned = pr.pruned()
            for n in pr.names:
                orig = get_projection(program, n).codes
                assert np.array_equal(get_projection(pruned, n).codes[ess[n]], orig[ess[n]]), (n, s)
                assert not (pr.masks[n] & ess[n]).any()
            pr.update(shifted, ema=1.0)
    # at the highest sparsity everything that is not pinned goes, and nothing pinned
    pr = SynapticPruner(program, stats, 0.999, essential=ess)
    for n in pr.names:
        assert np.array_equal(pr.masks[n], pr.live[n] & ~ess[n])


def test_structured_granularities_remove_whole_neurons(program, stats):
    pr = SynapticPruner(program, stats, 0.5, granularity="input")
    for n in pr.names:
        m, live = pr.masks[n], pr.live[n]
        cols = m.any(axis=0)
        assert np.array_equal(m[:, cols], live[:, cols])     # a pruned input loses its whole fan-out
        assert abs(int(m.sum()) - 0.5 * live.sum()) <= live.sum(axis=0).max()
    pr = SynapticPruner(program, stats, 0.5, granularity="output")
    for n in pr.names:
        m, live = pr.masks[n], pr.live[n]
        rows = m.any(axis=1)
        assert np.array_equal(m[rows], live[rows])
        assert abs(int(m.sum()) - 0.5 * live.sum()) <= live.sum(axis=1).max()


def test_a_pruned_program_runs_bit_exactly_on_the_golden_model(program, stats):
    ids = windows(9, program.vocab_size, n=1, length=20)[0]
    _, dense_events = GoldenModel(program).run(ids)
    pruned = SynapticPruner(program, stats, 0.5).pruned()
    out, events = GoldenModel(pruned).run(ids)
    assert np.array_equal(out, logits(pruned, [ids])[0].numpy())
    syn = sum(e.synaptic_ops for e in events)
    dense_syn = sum(e.synaptic_ops for e in dense_events)
    assert 0 < syn < dense_syn


def test_event_counts_report_events_that_reach_no_synapse(program, stats):
    ids = windows(11, program.vocab_size, n=1, length=12)[0]
    base, _ = event_counts(program, ids)
    cut, _ = event_counts(SynapticPruner(program, stats, 0.6, granularity="input").pruned(), ids)
    assert base["events_to_no_synapse"] == 0.0
    assert 0 < cut["events_to_no_synapse"] <= cut["input_events"]
    assert cut["synaptic_ops"] < base["synaptic_ops"]


def test_a_domain_update_moves_the_thresholds_and_same_statistics_do_not(program, stats, shifted):
    pr = SynapticPruner(program, stats, 0.4, ema=0.5)
    before = dict(pr.thresholds)
    same = pr.update(stats)
    assert pr.thresholds == before and all(c["restored"] == c["newly_pruned"] == 0 for c in same.values())
    changes = pr.update(shifted)
    assert any(pr.thresholds[n] != before[n] for n in pr.names)
    assert sum(c["restored"] for c in changes.values()) > 0
    assert sum(c["restored"] for c in changes.values()) == sum(c["newly_pruned"] for c in changes.values())
    for n in pr.names:  # still the target sparsity after the update
        assert abs(int(pr.masks[n].sum()) - 0.4 * pr.live[n].sum()) <= 1
    # the blend is an EMA: ema 1 keeps only the new statistics
    mixed = stats.blend(shifted, 0.25)
    n = "layers.1.down_proj"
    assert np.allclose(mixed.act_sq[n], 0.75 * stats.act_sq[n] + 0.25 * shifted.act_sq[n])
    assert np.array_equal(stats.blend(shifted, 1.0).act_sq[n], shifted.act_sq[n])


def test_adaptive_allocation_meets_the_global_count_and_spares_sensitive_layers(program, stats):
    names = projection_names(program)
    # a made-up sensitivity: lm_head very sensitive, layer 1's GLU almost free, the rest alike
    rise = {n: (0.01, 0.04) for n in names}
    rise["lm_head"] = (0.5, 2.0)
    rise["layers.1.gate_proj"] = (0.0005, 0.002)
    sens = Sensitivity(probes=(0.3, 0.6), rise=rise)
    pr = SynapticPruner(program, stats, 0.4, allocation="adaptive", sensitivity=sens, essential=essential_mask(program))
    live = {n: int(pr.live[n].sum()) for n in names}
    total = sum(live.values())
    assert abs(sum(pr.layer_sparsity[n] * live[n] for n in names) - 0.4 * total) < 1e-6 * total
    assert pr.layer_sparsity["lm_head"] < 0.4 < pr.layer_sparsity["layers.1.gate_proj"]
    for n in names:
        assert abs(int(pr.masks[n].sum()) - pr.layer_sparsity[n] * live[n]) <= 1
    assert abs(pr.report()["achieved_sparsity"] - 0.4) <= len(names) / total


def test_probe_and_budget_on_calibration_text(program, stats):
    cal = windows(4, program.vocab_size, n=2, length=16)
    pr = SynapticPruner(program, stats, 0.0)
    sens = probe_sensitivity(pr, cal, probes=(0.3, 0.6))
    assert set(sens.rise) == set(pr.names) and all(len(v) == 2 for v in sens.rise.values())
    rec = fit_budget(pr, cal, budget=0.05, tol=0.05)
    base = calibration_nll(program, cal)
    assert math.isclose(rec["base_ppl"], math.exp(base))
    assert calibration_nll(pr.pruned(), cal) <= base + math.log1p(0.05) + 1e-12
    assert pr.sparsity == rec["sparsity"] and rec["trials"]


def test_wanda_saliency_uses_the_latent_weights_of_a_torch_model():
    torch.manual_seed(0)
    model = MMFreeForCausalLM(preset("tiny")).eval()
    program = IntegerProgram.from_model(model)
    lat = latent_magnitudes(model)
    st = gather_stats(program, windows(2, program.vocab_size, n=2, length=12))
    pr = SynapticPruner(program, st, 0.3, latent=lat)
    assert pr.saliency_kind == "wanda"
    n = "layers.0.o_proj"
    sal = pr.saliency(n)
    expect = np.abs(get_projection(program, n).codes) * lat[n] * np.sqrt(st.act_sq[n])[None, :]
    assert np.allclose(sal, expect)
    for name in pr.names:  # the latent magnitude of every live synapse is at least the rounding threshold
        live = pr.live[name]
        assert lat[name][live].min() >= 0.5 - 1e-6


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), True, "0.3"])
def test_bad_sparsity_is_refused(program, stats, bad):
    with pytest.raises(ValueError, match=r"sparsity must be a fraction in \[0, 1\) of the non-zero synapses"):
        SynapticPruner(program, stats, bad)
    pr = SynapticPruner(program, stats, 0.2)
    with pytest.raises(ValueError, match=r"sparsity must be a fraction in \[0, 1\)"):
        pr.set_sparsity(bad)


def test_bad_settings_are_refused_clearly(program, stats):
    with pytest.raises(ValueError, match=r"ema must be in \(0, 1\]"):
        SynapticPruner(program, stats, 0.2, ema=0.0)
    with pytest.raises(ValueError, match=r"ema must be in \(0, 1\]"):
        SynapticPruner(program, stats, 0.2).update(stats, ema=1.5)
    with pytest.raises(ValueError, match=r"ema must be in \(0, 1\]"):
        stats.blend(stats, -1)
    pr = SynapticPruner(program, stats, 0.2)
    for budget in (0, -0.1, float("nan")):
        with pytest.raises(ValueError, match=r"budget must be > 0 \(the allowed relative perplexity increase"):
            fit_budget(pr, [[1, 2, 3]], budget)
    with pytest.raises(ValueError, match=r"essential mask for layers.0.i_proj has shape \(3, 4\), expected \(32, 32\)"):
        SynapticPruner(program, stats, 0.2, essential={"layers.0.i_proj": np.zeros((3, 4), dtype=bool)})
    with pytest.raises(ValueError, match=r"essential mask for lm_head must be a bool array"):
        SynapticPruner(program, stats, 0.2, essential={"lm_head": np.zeros((512, 32), dtype=np.int8)})
    with pytest.raises(ValueError, match=r"essential mask names unknown projection 'layers.9.i_proj'"):
        SynapticPruner(program, stats, 0.2, essential={"layers.9.i_proj": np.zeros((32, 32), dtype=bool)})
    with pytest.raises(ValueError, match=r"unknown granularity 'rows': choose one of synapse, input, output"):
        SynapticPruner(program, stats, 0.2, granularity="rows")
    with pytest.raises(ValueError, match=r"saliency 'wanda' needs the latent float weights"):
        SynapticPruner(program, stats, 0.2, saliency="wanda")
    with pytest.raises(ValueError, match=r"adaptive allocation needs per-projection sensitivities"):
        SynapticPruner(program, stats, 0.2, allocation="adaptive")
    with pytest.raises(ValueError, match=r"probes must be two sparsities 0 < p1 < p2 < 1"):
        Sensitivity(probes=(0.6, 0.3), rise={})
    other = gather_stats(IntegerProgram.random(preset("tiny", hidden_size=48), seed=0), [[1, 2, 3]])
    with pytest.raises(ValueError, match=r"statistics of layers.0.i_proj are for fan-in 48"):
        SynapticPruner(program, other, 0.2)


def test_the_prune_subcommand_registers_and_refuses_bad_fractions():
    ap = argparse.ArgumentParser()
    pruning_sweep.register(ap.add_subparsers(dest="command"))
    args = ap.parse_args(["prune", "--fractions", "0,0.5"])
    assert args.func is pruning_sweep.run and args.fractions == "0,0.5" and args.model == "models/bundled"
    assert pruning_sweep._fractions("0, 0.1,0.7") == [0.0, 0.1, 0.7]
    with pytest.raises(ValueError, match=r"each pruned fraction must be a fraction in \[0, 1\)"):
        pruning_sweep._fractions("0,1")
    with pytest.raises(ValueError, match=r"--fractions must be comma-separated numbers"):
        pruning_sweep._fractions("0,half")
