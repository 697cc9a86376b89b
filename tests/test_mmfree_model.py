"""The torch MatMul-free LM (float QAT view): quantisers, BitLinear, MLGRU, step/forward agreement,
configs and presets."""

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.mmfree.config import PRESETS, MMFreeConfig, preset
from models.mmfree.model import (BitLinear, MMFreeForCausalLM, act_quant, linear_recurrence, round_half_away,
                           weight_quant)

torch.set_num_threads(1)


def tiny(**kw):
    return preset("tiny", **kw)


# ---------------------------------------------------------------------------- quantisers
def test_round_half_away_from_zero():
    x = torch.tensor([0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49, -0.51, 3.0])
    assert round_half_away(x).tolist() == [1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 0.0, -1.0, 3.0]
    # torch.round would give 0, -0, 2, -2, 2, -2 on the ties: the upstream Triton kernel does not
    assert torch.round(x)[4].item() == 2.0


def test_act_quant_per_token_absmax():
    x = torch.tensor([[0.1, -0.2, 0.4], [3.0, 1.5, -0.0]])
    q, s = act_quant(x)
    assert torch.equal(s, 127.0 / torch.tensor([[0.4], [3.0]]))
    assert q.abs().amax(-1).tolist() == [127.0, 127.0]
    # 1.5 * 127 / 3 = 63.5 exactly: a tie, rounded away from zero
    assert q[1].tolist() == [127.0, 64.0, 0.0]
    assert q[0].tolist() == [round_half_away(torch.tensor(0.1 * 127 / 0.4)).item(), -64.0, 127.0]


def test_act_quant_zero_row_uses_floor():
    q, s = act_quant(torch.zeros(1, 4))
    assert torch.equal(q, torch.zeros(1, 4)) and s.item() == pytest.approx(127.0 / 1e-5)


def test_weight_quant_ternary_absmean():
    w = torch.tensor([[0.2, -0.05, 0.0], [-0.4, 0.1, 0.03]])
    q, s = weight_quant(w)
    mean = w.abs().mean()
    assert s.item() == pytest.approx(1 / mean.item())
    assert set(q.unique().tolist()) <= {-1.0, 0.0, 1.0}
    assert q.tolist() == [[1.0, -0.0, 0.0], [-1.0, 1.0, 0.0]]


def test_bitlinear_matches_numpy_reference():
    torch.manual_seed(0)
    lin = BitLinear(16, 8)
    torch.nn.init.normal_(lin.weight, 0, 0.05)
    with torch.no_grad():
        lin.norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 5, 16)
    y = lin(x).detach().numpy()
    xn = x.numpy().astype(np.float64)
    rms = xn / np.sqrt((xn ** 2).mean(-1, keepdims=True) + 1e-6) * lin.norm.weight.detach().numpy()
    sa = 127.0 / np.maximum(np.abs(rms).max(-1, keepdims=True), 1e-5)
    v = rms * sa
    qa = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5), -128, 127)
    w = lin.weight.detach().numpy().astype(np.float64)
    sw = 1.0 / max(np.abs(w).mean(), 1e-5)
    qw = np.clip(np.round(w * sw), -1, 1)
    ref = (qa / sa) @ (qw / sw).T
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4)


def test_bitlinear_eps_is_fixed_whatever_config():
    m = MMFreeForCausalLM(tiny(rms_norm_eps=1e-3))
    assert all(b.norm.eps == 1e-6 for _, b in m.named_bitlinears())
    assert m.model.norm.eps == 1e-3 and m.model.layers[0].attn.g_norm.eps == 1e-3


def test_straight_through_gradients():
    torch.manual_seed(1)
    lin = BitLinear(8, 4)
    torch.nn.init.normal_(lin.weight, 0, 0.1)
    x = torch.randn(2, 8, requires_grad=True)
    lin(x).sum().backward()
    # STE: dL/dW = g^T · (quantised normed input), as upstream's fused backward
    xn = F.rms_norm(x.detach(), (8,), lin.norm.weight.detach(), 1e-6)
    q, s = act_quant(xn)
    assert torch.allclose(lin.weight.grad, torch.ones(2, 4).T @ (q / s), atol=1e-5)
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_quantized_weight_cache_follows_weight_updates():
    torch.manual_seed(9)
    lin = BitLinear(8, 4)
    torch.nn.init.normal_(lin.weight, 0, 0.1)
    x = torch.randn(2, 8)
    with torch.no_grad():
        a = lin(x)
        assert torch.equal(lin(x), a)
        lin.weight.mul_(-1)                      # in-place update (optimizer step, load_state_dict)
        assert torch.allclose(lin(x), -a, atol=1e-6)
    lin.load_state_dict({"weight": torch.randn(4, 8), "norm.weight": torch.ones(8)})
    with torch.no_grad():
        y = lin(x)
    q, s = act_quant(F.rms_norm(x, (8,), lin.norm.weight, 1e-6))
    qw, sw = weight_quant(lin.weight)
    assert torch.allclose(y, F.linear(q / s, qw / sw), atol=1e-6)


# ---------------------------------------------------------------------------- recurrence
def _naive_scan(x, f, h0):
    h, outs = h0, []
    for t in range(x.shape[1]):
        h = f[:, t] * h + x[:, t]
        outs.append(h)
    return torch.stack(outs, 1)


def test_linear_recurrence_forward_and_gradients():
    torch.manual_seed(2)
    x = torch.randn(2, 7, 5, dtype=torch.float64, requires_grad=True)
    f = torch.rand(2, 7, 5, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(linear_recurrence(x, f, h0), _naive_scan(x, f, h0))
    assert torch.autograd.gradcheck(lambda a, b, c: linear_recurrence(a, b, c), (x, f, h0))


# ---------------------------------------------------------------------------- model
def test_checkpoint_key_names_are_upstream():
    m = MMFreeForCausalLM(tiny())
    keys = set(m.state_dict())
    expect = {"model.embeddings.weight", "model.lower_bounds", "model.norm.weight", "lm_head.weight",
              "lm_head.norm.weight"}
    for li in range(2):
        p = f"model.layers.{li}"
        expect |= {f"{p}.attn_norm.weight", f"{p}.mlp_norm.weight", f"{p}.attn.g_norm.weight"}
        for proj in ("attn.i_proj", "attn.f_proj", "attn.g_proj", "attn.o_proj", "mlp.gate_proj", "mlp.down_proj"):
            expect |= {f"{p}.{proj}.weight", f"{p}.{proj}.norm.weight"}
    assert keys == expect
    assert m.num_parameters() == m.config.num_parameters()


def test_lower_bounds_cumsum_softmax():
    m = MMFreeForCausalLM(tiny(num_hidden_layers=4))
    with torch.no_grad():
        m.model.lower_bounds.normal_()
    lb = m.model.layer_lower_bounds()
    p = torch.softmax(m.model.lower_bounds, 0)
    assert torch.equal(lb[0], torch.zeros_like(lb[0]))
    assert torch.allclose(lb[3], p[1] + p[2] + p[3])
    assert (lb[1:] >= lb[:-1]).all() and (lb < 1).all()


def test_lower_bound_enters_forget_gate():
    torch.manual_seed(3)
    m = MMFreeForCausalLM(tiny())
    attn = m.model.layers[1].attn
    x = torch.randn(1, 4, 32)
    lb = torch.full((32,), 0.7)
    i, f = attn._gates(x, lb)
    f_raw = torch.sigmoid(attn.f_proj(x))
    assert torch.allclose(f, 0.7 + 0.3 * f_raw)
    assert torch.allclose(i, F.silu(attn.i_proj(x)) * (1 - f))
    # layer 0 ignores the bound
    i0, f0 = m.model.layers[0].attn._gates(x, lb)
    assert torch.allclose(f0, torch.sigmoid(m.model.layers[0].attn.f_proj(x)))


def test_mlgru_output_gate_is_normed_g_times_silu_h():
    torch.manual_seed(4)
    m = MMFreeForCausalLM(tiny())
    attn = m.model.layers[0].attn
    x = torch.randn(2, 5, 32)
    out, _ = attn(x)
    i, f = attn._gates(x, None)
    h = _naive_scan(i, f, torch.zeros(2, 32))
    g = attn.g_proj(x)
    gn = g / torch.sqrt(g.pow(2).mean(-1, keepdim=True) + 1e-6) * attn.g_norm.weight
    assert torch.allclose(out, attn.o_proj(gn * F.silu(h)), atol=1e-5)


@pytest.mark.parametrize("quantize", [True, False])
def test_step_matches_full_sequence_forward(quantize):
    torch.manual_seed(5)
    m = MMFreeForCausalLM(tiny()).set_quantize(quantize).eval()
    with torch.no_grad():
        m.model.lower_bounds.normal_()
    ids = torch.randint(0, 512, (3, 12))
    with torch.no_grad():
        full, final = m(ids, return_state=True)
        state = None
        steps = []
        for t in range(ids.shape[1]):
            logits, state = m.step(ids[:, t], state)
            steps.append(logits)
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-4, rtol=1e-4)
    assert torch.allclose(state, final, atol=1e-5)


def test_forward_state_continues_across_chunks():
    torch.manual_seed(6)
    m = MMFreeForCausalLM(tiny()).eval()
    ids = torch.randint(0, 512, (2, 10))
    with torch.no_grad():
        full = m(ids)
        a, s = m(ids[:, :6], return_state=True)
        b = m(ids[:, 6:], state=s)
    assert torch.allclose(torch.cat([a, b], 1), full, atol=1e-4, rtol=1e-4)


def test_quantize_switch_and_training_step():
    torch.manual_seed(7)
    m = MMFreeForCausalLM(tiny())
    ids = torch.randint(0, 512, (2, 9))
    q = m(ids)
    fp = m.set_quantize(False)(ids)
    assert not torch.allclose(q, fp)
    m.set_quantize(True)
    loss = F.cross_entropy(m(ids[:, :-1]).reshape(-1, 512), ids[:, 1:].reshape(-1))
    loss.backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, name
    assert m.model.embeddings.weight.grad[3].abs().sum() == 0  # pad row (padding_idx) stays fixed
    assert m.model.layers[0].attn.i_proj.weight.grad.abs().sum() > 0


def test_tied_embeddings_share_one_tensor():
    m = MMFreeForCausalLM(tiny(tie_word_embeddings=True))
    assert m.lm_head.weight is m.model.embeddings.weight
    assert m.num_parameters() == m.config.num_parameters()


def test_upstream_init_statistics():
    torch.manual_seed(8)
    cfg = preset("tiny", hidden_size=256, intermediate_size=512, num_hidden_layers=2)
    m = MMFreeForCausalLM(cfg)
    bound = 2 ** -2.5 * math.sqrt(6 / (256 + 256))
    assert m.model.layers[0].attn.i_proj.weight.abs().max() <= bound
    assert m.model.layers[0].mlp.gate_proj.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert m.model.layers[0].mlp.down_proj.weight.std().item() == pytest.approx(0.02 / 2, rel=0.05)
    assert torch.equal(m.model.lower_bounds, torch.zeros(2, 256))


# ---------------------------------------------------------------------------- config
def test_published_preset_shapes_and_sizes():
    sizes = {name: preset(name).num_parameters() for name in ("370m", "1.3b", "2.7b", "13b")}
    assert 0.36e9 < sizes["370m"] < 0.38e9
    assert 1.3e9 < sizes["1.3b"] < 1.4e9
    assert 2.6e9 < sizes["2.7b"] < 2.8e9
    assert 12.5e9 < sizes["13b"] < 13.5e9
    assert [(preset(n).num_hidden_layers, preset(n).hidden_size, preset(n).vocab_size) for n in ("370m", "1.3b", "2.7b")] == \
        [(24, 1024, 32000), (24, 2048, 32000), (32, 2560, 32000)]
    assert preset("370m").mlp_intermediate_size == 2816
    assert set(PRESETS) == {"tiny", "bundled", "370m", "1.3b", "2.7b", "13b"}


def test_config_json_round_trip_keeps_unknown_fields(tmp_path):
    d = preset("370m").to_dict()
    d.update({"transformers_version": "4.40.1", "torch_dtype": "float16"})
    cfg = MMFreeConfig.from_dict(d)
    assert cfg.extra == {"transformers_version": "4.40.1", "torch_dtype": "float16"}
    path = tmp_path / "config.json"
    cfg.to_json(path)
    again = MMFreeConfig.from_json(path)
    assert again == cfg and again.extra == cfg.extra
    raw = json.loads(path.read_text())
    assert raw["model_type"] == "hgrn_bit" and raw["transformers_version"] == "4.40.1"


@pytest.mark.parametrize("kw, msg", [
    (dict(hidden_size=0), r"^hidden_size must be a positive integer, got 0$"),
    (dict(vocab_size=-1), r"^vocab_size must be a positive integer, got -1$"),
    (dict(num_heads=3), r"^hidden_size \* expand_ratio \(32\) must be divisible by num_heads \(3\)$"),
    (dict(attn_mode="chunk"), r"^attn_mode must be one of \('fused_recurrent',\), got 'chunk'$"),
    (dict(hidden_act="gelu"), r"^hidden_act must be one of \('swish', 'silu'\), got 'gelu'$"),
    (dict(use_short_conv=True), r"^use_short_conv=True is not supported"),
    (dict(rms_norm_eps=0.0), r"^rms_norm_eps must be a positive number, got 0.0$"),
    (dict(eos_token_id=512), r"^eos_token_id must be None or an integer in \[0, vocab_size=512\), got 512$"),
    (dict(expand_ratio=2), r"^use_lower_bound=True requires expand_ratio=1"),
    (dict(intermediate_size=0), r"^intermediate_size must be a positive integer or None, got 0$"),
])
def test_config_validation_messages(kw, msg):
    with pytest.raises(ValueError, match=msg):
        tiny(**kw)


def test_unknown_preset_and_model_type():
    with pytest.raises(ValueError, match=r"^unknown preset 'huge': choose one of tiny, bundled, 370m"):
        preset("huge")
    with pytest.raises(ValueError, match=r"^unknown model_type 'llama'"):
        MMFreeConfig.from_dict({"model_type": "llama"})
