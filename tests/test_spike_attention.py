"""Spike-based linear attention: spike coding, the golden head step against the torch forms, the
token-mixer option of the model (forward == step, gradients, configs, checkpoints)."""

import numpy as np
import pytest
import torch

from models.program import numformat as nf
from models.mmfree.checkpoint import load_checkpoint, save_checkpoint
from models.mmfree.config import MMFreeConfig, preset
from models.mmfree.model import MMFreeForCausalLM, SpikeLinearAttention
from models.program.spike_attention import (default_decay_shifts, exact_attention, head_step, parallel_attention,
                                    spike_counts, spike_counts_int, spike_trains, state_error_bound)

torch.set_num_threads(1)


def spike_config(**kw):
    return preset("tiny", token_mixer="spike_attention", num_heads=2, use_lower_bound=False, **kw)


def random_counts(rng, B, L, H, dh, T):
    return (torch.as_tensor(rng.integers(0, T + 1, (B, L, H, dh)), dtype=torch.float32),
            torch.as_tensor(rng.integers(0, 2, (B, L, H, dh)), dtype=torch.float32),
            torch.as_tensor(rng.integers(-T, T + 1, (B, L, H, dh)), dtype=torch.float32))


# ---------------------------------------------------------------------------- spikes
def test_spike_counts_round_half_away_and_clamp():
    y = torch.tensor([-5.0, -1.5, -0.5, 0.49, 0.5, 1.5, 2.5, 9.0])
    assert spike_counts(y, -4, 4).tolist() == [-4, -2, -1, 0, 1, 2, 3, 4]
    assert spike_counts(y, 0, 1).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    q16 = (y * 2 ** nf.OUT_FRAC).to(torch.int64).numpy()
    assert spike_counts_int(q16, -4, 4).tolist() == [-4, -2, -1, 0, 1, 2, 3, 4]


def test_spike_count_gradient_passes_inside_the_range_only():
    y = torch.tensor([-2.0, 0.2, 3.0, 4.4, 4.6, 7.0], requires_grad=True)
    spike_counts(y, 0, 4).sum().backward()
    assert y.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_spike_trains_hold_the_counts_on_the_first_timesteps():
    counts = np.array([0, 3, -2, 4])
    trains = spike_trains(counts, 4)
    assert trains.shape == (4, 4)
    assert trains.sum(0).tolist() == counts.tolist()          # decode = popcount over timesteps
    assert trains[:, 1].tolist() == [1, 1, 1, 0] and trains[:, 2].tolist() == [-1, -1, 0, 0]
    with pytest.raises(ValueError, match="does not fit in T=2"):
        spike_trains(counts, 2)


@pytest.mark.parametrize("T", [0, -1, 2.5, True])
def test_non_positive_timesteps_are_refused(T):
    with pytest.raises(ValueError, match="spike timesteps T must be a positive integer"):
        spike_trains(np.zeros(3), T)


# ---------------------------------------------------------------------------- golden vs torch
def test_golden_head_step_equals_the_torch_exact_form():
    rng = np.random.default_rng(7)
    B, L, H, dh, T = 2, 40, 2, 8, 4
    shifts = [2, 7]
    nq, nk, nv = random_counts(rng, B, L, H, dh, T)
    out, last = exact_attention(nq, nk, nv, shifts)
    for b in range(B):
        for h in range(H):
            S = np.zeros((dh, dh), dtype=np.int64)
            for t in range(L):
                o, ev = head_step(S, shifts[h], nk[b, t, h].numpy().astype(np.int64),
                                  spike_trains(nv[b, t, h].numpy(), T), spike_trains(nq[b, t, h].numpy(), T))
                assert np.array_equal(o, out[b, t, h].numpy().astype(np.int64))
                assert ev.kv_adds == int(nk[b, t, h].sum() * nv[b, t, h].abs().sum())
                assert ev.out_adds == int(nq[b, t, h].sum()) * dh
            assert np.array_equal(S, last[b, h].numpy().astype(np.int64))


def test_state_carries_across_calls():
    rng = np.random.default_rng(3)
    nq, nk, nv = random_counts(rng, 1, 30, 2, 4, 4)
    whole, _ = exact_attention(nq, nk, nv, [3, 5])
    first, state = exact_attention(nq[:, :12], nk[:, :12], nv[:, :12], [3, 5])
    rest, _ = exact_attention(nq[:, 12:], nk[:, 12:], nv[:, 12:], [3, 5], state)
    assert torch.equal(torch.cat([first, rest], 1), whole)


def test_state_saturates_instead_of_wrapping():
    dh = 2
    S = np.full((dh, dh), (1 << (nf.ATTN_STATE_BITS - 1)) - 100, dtype=np.int64)
    S[1] = -(1 << (nf.ATTN_STATE_BITS - 1)) + 100
    k = np.ones(dh, dtype=np.int64)
    v = spike_trains(np.array([4, -4]), 4)
    head_step(S, 8, k, v, spike_trains(np.zeros(dh), 4))
    assert S.max() <= (1 << (nf.ATTN_STATE_BITS - 1)) - 1 and S.min() >= -(1 << (nf.ATTN_STATE_BITS - 1))


def test_exact_form_stays_within_the_error_bound_of_the_real_form():
    rng = np.random.default_rng(11)
    T, shifts = 4, [2, 5]
    nq, nk, nv = random_counts(rng, 1, 64, 2, 8, T)
    exact, _ = exact_attention(nq, nk, nv, shifts)
    real = parallel_attention(nq.double(), nk.double(), nv.double(), shifts)
    diff = (exact - real).numpy()
    # each state cell is above the real one by less than 2**s; a q count of n adds the row n times
    bound = np.stack([nq[..., h, :].double().sum(-1).numpy() * state_error_bound(s) for h, s in enumerate(shifts)], -1)
    assert (diff >= -1e-6).all() and (diff <= bound[..., None] + 1e-6).all()


# ---------------------------------------------------------------------------- the token mixer in the model
def test_spike_model_forward_equals_token_by_token_steps():
    torch.manual_seed(0)
    model = MMFreeForCausalLM(spike_config()).eval()
    assert isinstance(model.model.layers[0].attn, SpikeLinearAttention)
    ids = torch.randint(4, 512, (2, 12))
    with torch.no_grad():
        full, final = model(ids, return_state=True)
        state = None
        for t in range(ids.shape[1]):
            logits, state = model.step(ids[:, t], state)
            assert torch.allclose(logits, full[:, t], atol=1e-4)
    assert torch.equal(state, final)
    assert final.shape == (2, 2, 2, 16, 16)


def test_spike_model_trains():
    torch.manual_seed(0)
    model = MMFreeForCausalLM(spike_config())
    ids = torch.randint(4, 512, (4, 17))
    logits = model(ids[:, :-1])
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 512), ids[:, 1:].reshape(-1))
    loss.backward()
    for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
        g = getattr(model.model.layers[0].attn, name).weight.grad
        assert torch.isfinite(g).all() and g.abs().sum() > 0, name


def test_spike_counts_at_initialisation_are_not_all_zero():
    torch.manual_seed(0)
    model = MMFreeForCausalLM(spike_config(hidden_size=64, intermediate_size=128))
    x = model.model.layers[0].attn_norm(model.model.embeddings(torch.randint(4, 512, (2, 16))))
    nq, nk, nv = model.model.layers[0].attn.counts(x)
    assert 0.1 < (nk > 0).float().mean() < 0.9 and (nq > 0).float().mean() > 0.1 and (nv != 0).float().mean() > 0.1


def test_spike_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    model = MMFreeForCausalLM(spike_config(spike_decay_shifts=[3, 6]))
    save_checkpoint(model, tmp_path / "ckpt")
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.config.token_mixer == "spike_attention" and loaded.config.decay_shifts == [3, 6]
    ids = torch.randint(4, 512, (1, 10))
    with torch.no_grad():
        assert torch.equal(model(ids), loaded(ids))


def test_mlgru_config_json_stays_upstream():
    d = preset("tiny").to_dict()
    assert "token_mixer" not in d and "spike_timesteps" not in d
    assert spike_config().to_dict()["token_mixer"] == "spike_attention"
    assert preset("tiny", use_lower_bound=False).num_parameters() - spike_config().num_parameters() == 2 * 32  # g_norm


@pytest.mark.parametrize("kw, match", [
    (dict(token_mixer="softmax"), "token_mixer must be one of"),
    (dict(token_mixer="spike_attention", use_lower_bound=True), "set use_lower_bound=False"),
    (dict(token_mixer="spike_attention", use_lower_bound=False, spike_timesteps=0), "positive integer"),
    (dict(token_mixer="spike_attention", use_lower_bound=False, num_heads=2, spike_decay_shifts=[3]), "one shift per head"),
    (dict(token_mixer="spike_attention", use_lower_bound=False, spike_decay_shifts=[9]), r"outside \[1, 8\]"),
])
def test_bad_spike_settings_are_refused(kw, match):
    with pytest.raises(ValueError, match=match):
        MMFreeConfig(**{**dict(vocab_size=512, hidden_size=32, num_hidden_layers=2), **kw})


def test_default_decay_shifts_span_short_to_long_memory():
    assert default_decay_shifts(4) == [2, 4, 6, 8]
    assert default_decay_shifts(1) == [4]


# ---------------------------------------------------------------------------- integer program, golden model
def test_golden_model_equals_the_integer_view_for_the_spike_mixer(tmp_path):
    from models.program.golden import GoldenModel
    from models.program.integer_program import IntegerProgram
    from models.program.integer_view import IntegerView

    torch.manual_seed(2)
    model = MMFreeForCausalLM(spike_config())
    program = IntegerProgram.from_model(model)
    assert program.projections[:3] == ("q_proj", "k_proj", "v_proj")
    program = IntegerProgram.load(program.save(tmp_path / "p.npz"))      # the mixer survives a round trip
    ids = torch.randint(4, 512, (1, 24))
    view_logits, _ = IntegerView(program).forward(ids)
    golden = GoldenModel(program)
    logits, events = golden.run(ids[0].tolist())
    assert np.array_equal(logits, view_logits[0].numpy())
    blocks = events[:-1]
    assert all(ev.spikes > 0 and ev.attention_ops > 0 for ev in blocks)
    assert blocks[0].state_updates == 24 * 2 * 16 * 16        # tokens x heads x dh x dh
    # and the float QAT view is close (a spike count at a rounding boundary may differ by one)
    with torch.no_grad():
        cos = torch.nn.functional.cosine_similarity(model(ids).flatten(), IntegerView(program).logits_float(ids).flatten(), 0)
    assert cos > 0.95


def test_golden_snapshot_restores_both_kinds_of_state():
    from models.program.golden import GoldenModel
    from models.program.integer_program import IntegerProgram

    torch.manual_seed(4)
    golden = GoldenModel(IntegerProgram.from_model(MMFreeForCausalLM(spike_config())))
    golden.run([5, 6, 7])
    snap = golden.snapshot()
    a = golden.step(9)
    golden.restore(snap)
    assert np.array_equal(golden.step(9), a)
    assert golden.attn_state.any()
