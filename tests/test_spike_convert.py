"""The spike converter on a tiny random Llama created here and saved in the Hugging Face layout."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from models.program import events as vocab
from models.program.events import LayerEvents
from models.transformer.loader import hf_logits_fn, is_hf_ref, load_hf_model, resolve
from models.transformer.convert import (SITE_KINDS, UnsupportedModelError, calibrate, check_supported, convert,
                                  find_sites, parse_schedule, quantize_weight)

VOCAB = 384
CHAT = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: the shapes here are tiny, and the machine is shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_tokenizer():
    """A byte-level BPE (< VOCAB tokens) trained on a slice of the shared corpus, with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from models.text.corpus import corpus_files

    text = corpus_files()[0].read_text(encoding="utf-8")[:20000]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(text.splitlines(), trainers.BpeTrainer(
        vocab_size=VOCAB - 16, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   chat_template=CHAT)


def save_tiny_llama(d, hidden: int, layers: int, heads: int, kv_heads: int):
    """A seeded random Llama (``hidden`` wide, ``layers`` deep) with :func:`tiny_tokenizer`, saved in ``d``."""
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=128,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    LlamaForCausalLM(cfg).save_pretrained(d)
    tiny_tokenizer().save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_llama(tmp_path_factory.mktemp("tiny_llama"), hidden=48, layers=2, heads=4, kv_heads=2)


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
    site.recorders.append(lambda name, spikes, codes: captured.update(s=spikes, c=codes))
    sm.reset_events()
    sm.logits_fn()(ids)
    site.recorders.clear()
    spikes = captured["s"].reshape(-1, lin[0].in_features).sum(0).double()
    assert ev["0.attn_in"] is not sm.events()["0.attn_in"]
    e = sm.events()["0.attn_in"]
    assert e.input_events == int(spikes.sum())
    assert e.synaptic_ops == int(sum(spikes @ torch.from_numpy(l.nnz_col).double() for l in lin))
    # every spike reaches each linear layer's fan-out: non-zero weights (ops) or zero weights (slots)
    assert e.synaptic_ops + e.zero_weight_slots == int(spikes.sum()) * sum(l.out_features for l in lin)
    codes = captured["c"]
    assert e.bit_spikes == int(vocab.bit_spikes(codes.numpy()).sum())  # rate codes are levels
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
    from models.transformer.error_analysis import cos_snr, greedy_schedule, layer_similarity, site_sensitivity, token_type

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
    from models.transformer.interpret import entropy_bits, kmeans2, nmi

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
    from models.transformer.interpret import SpikeRecorder

    sm, _ = converted
    sm.configure("rate", 4)
    with SpikeRecorder(sm) as rec:
        sm.logits_fn()(batches["eval"][:1])
        sm.logits_fn()(batches["eval"][1:])
    assert all(len(p) == 2 for p in rec.patterns.values())
    assert all(int(h.sum()) == rec.cells[s] for s, h in rec.hist.items())
    assert all(not st.recorders for st in sm.sites.values())


def test_perplexity_adapter_dense_and_converted(tiny_dir):
    from models.text.corpus import data_root
    from models.transformer.loader import context_token_id, hf_text_perplexity, load_hf_tokenizer
    from models.transformer.convert import calibration_token_batches

    tok = load_hf_tokenizer(tiny_dir)
    assert context_token_id(tok) == 0                           # <|endoftext|>
    model = load_hf_model(tiny_dir)
    text = (data_root() / "wikitext-2" / "wiki.test.raw").read_text(encoding="utf-8")[:3000]
    dense = hf_text_perplexity(hf_logits_fn(model), tok, text, window=64, stride=32, max_tokens=200)
    assert dense["tokens"] == 200 and 1 < dense["token_ppl"] < 2 * VOCAB   # a random model: about uniform
    calib = calibration_token_batches(tok, n_tokens=256, seq_len=64)       # corpus text, not the test set
    assert calib.shape == (4, 64)
    sm = convert(model, calib_batches=calib, coding="bitplane", timesteps=12, weights="float")
    near = hf_text_perplexity(sm.logits_fn(), tok, text, window=64, stride=32, max_tokens=200)
    assert near["token_ppl"] == pytest.approx(dense["token_ppl"], rel=1e-3)
    assert sm.events_per_token()["tokens"] == near["forward_tokens"]


def test_rouge_pieces(tiny_dir):
    from models.transformer.loader import load_hf_tokenizer
    from models.eval.rouge import default_data_path, evaluate_rouge, load_pairs, rouge_scores, split_sentences

    assert split_sentences("One here. Two there! Three?\nFour") == "One here.\nTwo there!\nThree?\nFour"
    same = rouge_scores(["the cat sat. it ran."], ["the cat sat .\nit ran ."])
    assert same == {"rouge1": pytest.approx(100.0), "rouge2": pytest.approx(100.0), "rougeLsum": pytest.approx(100.0)}
    pairs = load_pairs(default_data_path(), 2)
    assert len(pairs) == 2 and {"article", "highlights"} <= set(pairs[0])
    r = evaluate_rouge(load_hf_model(tiny_dir), load_hf_tokenizer(tiny_dir), pairs, max_new_tokens=4,
                       max_article_tokens=24, progress=False)
    assert r["n_articles"] == 2 and 0 <= r["rouge1"] <= 100 and r["generated_tokens"] <= 8
    with pytest.raises(ValueError, match="at least 1"):
        load_pairs(default_data_path(), 0)


def test_cli_eval_and_spike_commands(tiny_dir, tmp_path, capsys):
    import argparse

    from experiments import spike_study
    from models.text.corpus import data_root
    from nmllm.commands import eval as eval_command

    parser = argparse.ArgumentParser(prog="nmllm")
    sub = parser.add_subparsers(dest="command", required=True)
    eval_command.register(sub)                                   # as nmllm/cli.py wires them
    spike_study.register(sub)
    text = tmp_path / "wiki.txt"
    text.write_text((data_root() / "wikitext-2" / "wiki.test.raw").read_text(encoding="utf-8")[:2000])
    cache = tmp_path / "calib.pt"
    common = ["--calib-tokens", "256", "--calib-cache", str(cache), "--threads", "1", "--no-progress"]
    out = tmp_path / "ppl.json"
    args = parser.parse_args(["eval", "perplexity", "--model", str(tiny_dir), "--data", str(text), "--max-tokens", "96",
                              "--window", "64", "--stride", "32", "--spike-coding", "rate", "--timesteps",
                              "default=4,lm_head=8", "--json", str(out)] + common)
    assert args.func(args) == 0 and cache.is_file()
    r = json.loads(out.read_text())
    assert r["tokens"] == 96 and r["spike"]["timesteps"] == "mixed" and r["events_per_token"]["synaptic_ops"] > 0
    args = parser.parse_args(["eval", "rouge", "--model", str(tiny_dir), "--n-articles", "1", "--max-new-tokens", "3",
                              "--max-article-tokens", "16", "--spike-coding", "ttfs", "--timesteps", "4"] + common)
    assert args.func(args) == 0
    assert '"rougeLsum"' in capsys.readouterr().out
    study = tmp_path / "study.json"
    args = parser.parse_args(["spike", "study", "--model", str(tiny_dir), "--data", str(text), "--max-tokens", "64",
                              "--window", "64", "--stride", "32", "--codings", "rate,bitplane", "--timesteps", "1,4",
                              "--out", str(study), "--plot-dir", str(tmp_path)] + common)
    assert args.func(args) == 0
    res = json.loads(study.read_text())
    assert set(res["points"]) == {"dense", "int8", "rate:1", "rate:4", "bitplane:1", "bitplane:4"}
    assert res["points"]["rate:4"]["events_per_token"]["input_events"] > res["points"]["rate:1"]["events_per_token"]["input_events"]
    assert (tmp_path / "spike_quality_vs_events.png").is_file()
    args = parser.parse_args(["eval", "perplexity", "--model", str(tmp_path / "none"), "--spike-coding", "rate"])
    with pytest.raises(ValueError, match="--spike-coding applies to Hugging Face models"):
        args.func(args)


def test_weight_format_snr(converted, batches):
    from models.transformer.error_analysis import weight_format_snr

    sm, _ = converted
    snr = weight_format_snr(sm, batches["eval"][:1])
    assert set(snr) == set(sm.linears)
    assert all(v["int8"] > v["ternary"] and v["int8"] > 30 for v in snr.values())


def test_per_channel_thresholds(converted, batches):
    sm, dense = converted
    sm.configure("rate", 8, thresholds="channel")
    theta = sm.sites["0.mlp_out"].theta
    assert theta.shape == (sm.linears["model.layers.0.mlp.down_proj"].in_features,)
    cal = sm.calibration
    ratio = theta / cal.channel_absmax["0.mlp_out"].clamp(min=1e-8)
    assert torch.allclose(ratio, ratio[0].expand_as(ratio))          # one factor per site
    closed = sm.logits_fn()(batches["eval"])
    sm.set_simulate(True)
    try:
        lit = sm.logits_fn()(batches["eval"])
    finally:
        sm.set_simulate(False)
    assert torch.allclose(lit, closed, atol=1e-4, rtol=1e-4)         # graded spikes: same numbers
    assert sm.describe()["thresholds"] == "channel"
    errs = []
    for T in (2, 8):
        sm.configure("rate", T, weights="float", thresholds="channel")
        errs.append(rel_err(sm.logits_fn()(batches["eval"]), dense))
    assert errs[1] < errs[0]
    with pytest.raises(ValueError, match="thresholds must be 'tensor'"):
        sm.configure("rate", 4, thresholds="neuron")
    sm.configure("rate", 4, thresholds="tensor")
