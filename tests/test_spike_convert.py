"""The spike converter on a tiny random Llama created here and saved in the Hugging Face layout."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from models.events import LayerEvents
from models.hf_transformer import hf_logits_fn, is_hf_ref, load_hf_model, resolve
from models.spike_convert import (SITE_KINDS, UnsupportedModelError, calibrate, check_supported, convert,
                                  find_sites, parse_schedule, quantize_weight)

VOCAB = 96


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the shapes here are tiny, and the machine is shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    model = LlamaForCausalLM(cfg)
    d = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def batches():
    g = torch.Generator().manual_seed(1)
    return {"calib": torch.randint(0, VOCAB, (6, 24), generator=g),   # "corpus" tokens
            "eval": torch.randint(0, VOCAB, (2, 24), generator=g)}    # held out


@pytest.fixture(scope="module")
def converted(tiny_dir, batches):
    model = load_hf_model(tiny_dir)
    dense = hf_logits_fn(model)(batches["eval"]).clone()
    sm = convert(model, calib_batches=batches["calib"], coding="rate", timesteps=4)
    return sm, dense


def rel_err(a, b):
    return float((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt())


def test_front_door_loads_hf_layout(tiny_dir):
    assert (tiny_dir / "config.json").is_file() and (tiny_dir / "model.safetensors").is_file()
    assert is_hf_ref(tiny_dir) and is_hf_ref("smollm2-135m") and not is_hf_ref(tiny_dir / "nope")
    assert resolve(tiny_dir) == (tiny_dir, None)
    with pytest.raises(FileNotFoundError, match="neither a known model name"):
        resolve(tiny_dir / "missing")


@pytest.mark.parametrize("coding", ["rate", "bitplane", "ttfs-linear"])
def test_converted_logits_approach_dense_as_T_grows(converted, batches, coding):
    sm, dense = converted
    errs = []
    for T in (1, 2, 4, 8, 16):
        sm.configure(coding, T, weights="float")
        errs.append(rel_err(sm.logits_fn()(batches["eval"]), dense))
    assert all(b < a for a, b in zip(errs, errs[1:])), errs      # error falls monotonically
    assert errs[-1] < (0.02 if coding == "bitplane" else 0.2), errs
    sm.configure("bitplane", 16, weights="int8")                  # int8 weights: small, bounded cost
    assert rel_err(sm.logits_fn()(batches["eval"]), dense) < 0.05


def test_dense_mode_is_the_original_model(converted, batches):
    sm, dense = converted
    sm.set_dense(True)
    try:
        assert torch.equal(sm.logits_fn()(batches["eval"]), dense)
    finally:
        sm.set_dense(False)


@pytest.mark.parametrize("coding", ["rate", "ttfs", "bitplane"])
def test_literal_spike_trains_equal_closed_form(converted, batches, coding):
    sm, _ = converted
    sm.configure(coding, 3)
    closed = sm.logits_fn()(batches["eval"])
    ev_closed = sm.events_per_token()["total"]
    sm.reset_events()
    sm.set_simulate(True)
    try:
        lit = sm.logits_fn()(batches["eval"])
    finally:
        sm.set_simulate(False)
    assert torch.allclose(lit, closed, atol=1e-4, rtol=1e-4)
    assert sm.events_per_token()["total"] == ev_closed


def test_event_counts(converted, batches):
    sm, _ = converted
    sm.configure("rate", 4)
    ids = batches["eval"]
    sm.logits_fn()(ids)
    ev = sm.events()
    assert set(ev) == set(find_sites(sm.model))
    n_tok = ids.numel()
    site = sm.sites["0.attn_in"]
    assert site.tokens == n_tok
    # q, k, v share one spike train: input events counted once; dense MACs for all three
    lin = [sm.linears[f"model.layers.0.{r}"] for r in SITE_KINDS["attn_in"]]
    assert ev["0.attn_in"].dense_macs == n_tok * sum(l.in_features * l.out_features for l in lin)
    # recount by hand: spikes x non-zero weights of each input column
    captured = {}
    site.recorders.append(lambda name, spikes, codes: captured.setdefault("s", spikes))
    sm.reset_events()
    sm.logits_fn()(ids)
    site.recorders.clear()
    spikes = captured["s"].reshape(-1, lin[0].in_features).sum(0).double()
    assert ev["0.attn_in"] is not sm.events()["0.attn_in"]
    e = sm.events()["0.attn_in"]
    assert e.input_events == int(spikes.sum())
    assert e.synaptic_ops == int(sum(spikes @ l.nnz_col for l in lin))
    assert int(spikes.max()) <= 4 * n_tok
    per_tok = sm.events_per_token()
    assert per_tok["tokens"] == n_tok and set(per_tok["layers"]) == {"0", "1", "lm_head"}
    assert isinstance(sum(sm.events().values(), LayerEvents()), LayerEvents)


def test_mixed_schedule_and_ternary(converted, batches):
    sm, dense = converted
    sched = parse_schedule("default=2,0.mlp_out=16,lm_head=8")
    assert sched == {"default": 2, "0.mlp_out": 16, "lm_head": 8}
    sm.configure("rate", sched)
    assert sm.sites["0.mlp_out"].coding.timesteps == 16 and sm.sites["1.attn_in"].coding.timesteps == 2
    assert sm.describe()["timesteps"] == "mixed"
    mixed = rel_err(sm.logits_fn()(batches["eval"]), dense)
    sm.configure("rate", 2)
    assert mixed < rel_err(sm.logits_fn()(batches["eval"]), dense)
    sm.configure("rate", 4, ternary=["model.layers.1.mlp.down_proj"])
    assert sm.linears["model.layers.1.mlp.down_proj"].weight_format == "ternary"
    assert sm.linears["model.layers.1.mlp.up_proj"].weight_format == "int8"
    with pytest.raises(ValueError, match="unknown site '9.attn_in'"):
        sm.configure("rate", {"default": 2, "9.attn_in": 4})
    with pytest.raises(ValueError, match="not an integer"):
        parse_schedule("eight")


def test_weight_quantization():
    w = torch.tensor([[0.5, -1.0, 0.25, 0.0], [2.0, 1.0, -0.01, 0.02]])
    codes, scale = quantize_weight(w, "int8")
    assert codes.dtype == torch.int8 and int(codes.abs().max()) == 127
    assert torch.allclose(codes.float() * scale[:, None], w, atol=float(scale.max()) / 2)
    t, g = quantize_weight(w, "ternary")
    assert set(t.unique().tolist()) <= {-1, 0, 1}
    assert torch.allclose(g, w.abs().mean(1))
    with pytest.raises(ValueError, match="unknown weight format 'int4'"):
        quantize_weight(w, "int4")


def test_unsupported_architecture_is_refused_naming_the_layer_type(tmp_path):
    cfg = GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=1, n_head=2)
    gpt2 = GPT2LMHeadModel(cfg)
    with pytest.raises(UnsupportedModelError, match=r"unsupported layer type\(s\) GPT2LMHeadModel.*Conv1D"):
        convert(gpt2, calib_batches=torch.zeros(1, 4, dtype=torch.long))
    gpt2.save_pretrained(tmp_path)                      # through the front door too
    with pytest.raises(UnsupportedModelError, match="Conv1D"):
        check_supported(load_hf_model(tmp_path))


def test_unsupported_layer_inside_a_llama_is_refused(tiny_dir):
    model = load_hf_model(tiny_dir)
    model.model.layers[1].mlp.act_fn = torch.nn.GELU()
    with pytest.raises(UnsupportedModelError, match=r"GELU \(at model\.layers\.1\.mlp\.act_fn\)"):
        convert(model, calib_batches=torch.zeros(1, 4, dtype=torch.long))


def test_calibration_uses_given_tokens_only(tiny_dir, batches):
    model = load_hf_model(tiny_dir)
    cal = calibrate(model, batches["calib"], max_samples=512)
    assert cal.tokens == batches["calib"].numel()
    assert set(cal.samples) == set(find_sites(model))
    assert all(float(v.max()) <= cal.absmax[k] for k, v in cal.samples.items())
    assert json.loads((tiny_dir / "config.json").read_text())["model_type"] == "llama"


def test_error_analysis_on_tiny_llama(converted, batches):
    from models.error_analysis import cos_snr, greedy_schedule, layer_similarity, site_sensitivity, token_type

    sm, _ = converted
    ids = batches["eval"][:1]
    low = layer_similarity(sm.configure("rate", 2), ids)
    high = layer_similarity(sm.configure("rate", 16), ids)
    assert set(low["sites"]) == set(sm.sites) and len(low["layers"]) == 2
    assert high["logits"]["snr_db"] > low["logits"]["snr_db"] and high["logits"]["kl"] < low["logits"]["kl"]
    assert all(high["sites"][s]["snr_db"] > low["sites"][s]["snr_db"] for s in sm.sites)
    assert cos_snr(torch.ones(2, 3), torch.ones(2, 3)) == (pytest.approx(1.0), float("inf"))
    sens = site_sensitivity(sm, batches["calib"][:2], "rate", 2)
    assert set(sens) == set(sm.sites) and all(v >= 0 for v in sens.values())
    cost_lo = {s: 1.0 for s in sens}
    cost_hi = {s: 3.0 for s in sens}
    most = max(sens, key=sens.get)
    sched = greedy_schedule(sens, cost_lo, cost_hi, 2, 8, budget=len(sens) + 2.0)   # room for one site
    assert sched == {"default": 2, most: 8}
    assert [token_type(p) for p in ("Ġthe", "ĠParis", "ing", "Ġ1984", ",", "Ċ")] == [
        "word start, lower", "word start, upper", "word continuation", "digits", "punctuation", "white space / newline"]


def test_interpretability_statistics():
    from models.spike_interpret import entropy_bits, kmeans2, nmi

    y = torch.tensor([0, 0, 1, 1, 0, 1])
    assert float(nmi(y, y)) == pytest.approx(1.0)
    assert float(nmi(1 - y, y)) == pytest.approx(1.0)
    assert float(nmi(torch.zeros(6, dtype=torch.long), y)) == 0.0
    assert float(nmi(torch.tensor([0, 1, 0, 1, 0, 1]), torch.tensor([0, 0, 1, 1, 0, 1]))) < 0.2
    both = nmi(torch.stack([y, 1 - y, torch.zeros(6, dtype=torch.long)]), y)
    assert both.shape == (3,) and both.tolist() == pytest.approx([1.0, 1.0, 0.0])
    assert entropy_bits(torch.tensor([5, 5])) == pytest.approx(1.0)
    assert entropy_bits(torch.tensor([4, 0, 0])) == 0.0
    x = torch.cat([torch.randn(10, 3, generator=torch.Generator().manual_seed(0)) - 5,
                   torch.randn(10, 3, generator=torch.Generator().manual_seed(1)) + 5])
    lab = kmeans2(x)
    assert float(nmi(lab, torch.tensor([0] * 10 + [1] * 10))) == pytest.approx(1.0)


def test_spike_recorder_on_tiny_llama(converted, batches):
    from models.spike_interpret import SpikeRecorder

    sm, _ = converted
    sm.configure("rate", 4)
    with SpikeRecorder(sm) as rec:
        sm.logits_fn()(batches["eval"][:1])
        sm.logits_fn()(batches["eval"][1:])
    assert all(len(p) == 2 for p in rec.patterns.values())
    assert all(int(h.sum()) == rec.cells[s] for s, h in rec.hist.items())
    assert all(not st.recorders for st in sm.sites.values())
