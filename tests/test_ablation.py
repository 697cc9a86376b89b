"""The ablation harness on two tiny checkpoints made here (one per token mixer): the skipping rules, the claim that
skipping cannot change the arithmetic, and the whole table (every cell measured for its row or marked shared)."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.decoding.beam_search import spike_beam_search
from models.decoding.steppers import GoldenStepper
from models.mmfree.checkpoint import load_checkpoint, save_checkpoint
from models.mmfree.config import preset
from models.mmfree.model import MMFreeForCausalLM
from models.program.golden import GoldenModel
from models.program.integer_program import IntegerProgram
from models.program.integer_view import IntegerView
from models.text.tokenizer import corpus_files, save_tokenizer, train_tokenizer
from experiments import ablation

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ablation")
    tok = train_tokenizer(512, corpus_files()[:1], max_bytes=60_000)
    dirs = {}
    for name, kw in (("mlgru", {}), ("spike", dict(token_mixer="spike_attention", num_heads=2, use_lower_bound=False))):
        torch.manual_seed(0)
        model = MMFreeForCausalLM(preset("tiny", **kw))
        dirs[name] = save_checkpoint(model, root / name)
        save_tokenizer(tok, root / name)
    return dirs


def pruned_program(checkpoint, fraction=0.3, seed=0):
    """The checkpoint's integer program with a random ``fraction`` of its weight codes set to 0."""
    program = IntegerProgram.from_model(load_checkpoint(checkpoint).eval())
    rng = np.random.default_rng(seed)
    for p in [program.lm_head] + [p for layer in program.layers for p in layer.proj.values()]:
        p.codes[rng.random(p.codes.shape) < fraction] = 0
    return program


@pytest.mark.parametrize("model", ["spike", "mlgru"])
def test_skipping_zeros_cannot_change_the_logits_or_the_decode(checkpoints, model):
    """The event-driven golden model (zeros skipped) and the dense integer view (every input x every weight, every
    KV cell at every timestep) give the same integer logits and the same spike beam search summary: this is why
    the skipping rows may share the full system's perplexity and ROUGE."""
    program = pruned_program(checkpoints[model])
    ids = list(range(5, 45))
    golden, _ = GoldenModel(program).run(ids)
    dense, _ = IntegerView(program).forward(torch.tensor([ids]))
    assert np.array_equal(golden, dense[0].numpy())
    a = spike_beam_search(GoldenStepper(GoldenModel(program)), ids[:12], 2, 4, max_new_tokens=6, eos_id=None)
    b = spike_beam_search(ablation._ViewStepper(IntegerView(program)), ids[:12], 2, 4, max_new_tokens=6, eos_id=None)
    assert a.tokens == b.tokens and a.stats["forward_steps"] == b.stats["forward_steps"] > 0


def test_the_skipping_rules_count_the_right_slots(checkpoints):
    program = pruned_program(checkpoints["spike"])
    consts = ablation.program_constants(program)
    ids = list(range(5, 37))
    _, per_layer = GoldenModel(program).run(ids)
    total = per_layer[0]
    for e in per_layer[1:]:
        total = total + e
    c, n = total.as_dict(), len(ids)
    rule = {(a, w): sum(ablation.count_events(c, n, consts, a, w)) for a in (True, False) for w in (True, False)}
    dense_attn = n * 2 * consts["timesteps"] * consts["attention_cells"]
    assert dense_attn > 0 and c["dense_macs"] == n * consts["dense"]
    assert rule[True, True] == c["synaptic_ops"] + c["attention_ops"]
    assert rule[False, True] == n * consts["nnz"] + dense_attn
    assert rule[False, False] == n * consts["dense"] + dense_attn
    # lm_head is one projection: its slots are its input events x the vocabulary
    head = per_layer[-1].as_dict()
    slots, _ = ablation.count_events(head, n, consts, True, False)
    assert slots == head["input_events"] * program.vocab_size > head["synaptic_ops"]
    assert rule[True, True] < rule[True, False] < rule[False, False]
    assert rule[True, True] < rule[False, True] < rule[False, False]


def args(checkpoints, tmp_path, **kw):
    p = argparse.ArgumentParser()
    ablation.add_arguments(p)
    a = p.parse_args(["--spike-model", str(checkpoints["spike"]), "--mlgru-model", str(checkpoints["mlgru"]),
                      "--eval-tokens", "300", "--crossbar-eval-tokens", "100", "--event-tokens", "24",
                      "--calib-tokens", "256", "--articles", "2", "--crossbar-articles", "1", "--article-tokens", "24",
                      "--max-new-tokens", "4", "--beam", "2", "--timesteps", "4", "--out", str(tmp_path)])
    for k, v in kw.items():
        setattr(a, k, v)
    return a


@pytest.mark.slow
def test_every_cell_is_measured_for_its_row_or_says_whose_it_is(checkpoints, tmp_path):
    result = ablation.run_ablation(args(checkpoints, tmp_path))
    rows = {r["row"]: r for r in result["rows"]}
    assert list(rows) == [r.name for r in ablation.ROWS]
    full = rows["full system"]
    assert full["shared"] == {}
    # a number equal to the full system's is the full system's measurement, and the row says so and why
    cells = {"perplexity": "token_ppl", "golden events": "events_per_token", "energy": "dynamic_energy_per_token_j"}
    for r in rows.values():
        assert r["token_ppl"] > 1 and r["energy_per_token_j"] > 0 and 0 <= r["rouge1"] <= 100
        for measure, key in cells.items():
            if r is not full and r[key] == full[key]:
                assert r["shared"][measure]["row"] == "full system", (r["row"], measure)
        for s in r["shared"].values():
            assert s["why"] and all(s["why"].values())
    # the crossbar row decodes on crossbar tiles (its own ROUGE and ADC counts), beside the digital summaries
    xbar = rows["crossbar instead of digital"]
    assert "decode" not in xbar["shared"] and "perplexity" not in xbar["shared"]
    assert xbar["preset"] == "crossbar" and xbar["articles"] == 1 and xbar["events_per_token"] is None
    assert xbar["adc_conversions_per_token"] > 0 and xbar["decode_adc_conversions_per_generated_token"] > 0
    assert xbar["digital_same_articles"]["identical_summaries"] in (0, 1) and xbar["digital_ppl_same_tokens"] > 1
    # the skipping rows share perplexity and ROUGE (same arithmetic) and count their own events and energy
    act, weight, dense = (rows[n] for n in ("without zero-activation skipping", "without zero-weight skipping",
                                            "without any event skipping (dense)"))
    for r in (act, weight, dense):
        assert r["shared"]["perplexity"]["row"] == r["shared"]["decode"]["row"] == "full system"
        assert "golden model equals the dense integer view" in next(iter(r["shared"]["decode"]["why"].values()))
        assert "energy" not in r["shared"] and r["rouge1"] == full["rouge1"]
        for key in ("events_per_token", "decode_events_per_token", "dynamic_energy_per_token_j"):
            assert full[key] < r[key] <= dense[key]
    assert weight["rtl"] == "not implemented"
    assert act["projection_events_per_token"] == act["event_detail"]["nnz_weights"]
    assert dense["attention_events_per_token"] == act["attention_events_per_token"] == full["event_detail"]["dense_attention_adds"]
    d = full["densities"]
    assert 0 < d["activation"] <= 1 and 0 < d["weight"] < 1 and 0 < d["attention"] < 1
    assert act["activity"]["input_nonzero"]["ifg"] == 1.0 and weight["activity"]["weight_density"] == 1.0
    # pruning removes synaptic ops; the decoder changes only decoding
    assert rows["without pruning"]["event_detail"]["synaptic_ops"] > full["event_detail"]["synaptic_ops"]
    beam = rows["without spike beam search (beam search)"]
    assert beam["token_ppl"] == full["token_ppl"] and beam["events_per_token"] == full["events_per_token"]
    assert set(beam["shared"]) == {"perplexity", "golden events", "energy"}
    assert full["event_detail"]["attention_ops"] > 0 and rows["without spike attention (MLGRU)"]["event_detail"]["attention_ops"] == 0
    got = {q["what"]: q for q in result["ratios"]}
    assert len(got) == len(ablation.RATIOS)
    both = got["both (dense / full system)"]["events_per_token"]
    assert both == pytest.approx(got["zero-weight skipping, zero activations skipped"]["events_per_token"]
                                 * got["zero-activation skipping, zero weights not skipped"]["events_per_token"])
    text = ablation.table(result)
    assert "| full system |" in text and "[1]" in text and "| both (dense / full system) |" in text
    assert (tmp_path / "ablation.json").exists()
    mixers = ablation.json.loads((tmp_path / "mixers.json").read_text())
    assert [r["row"] for r in mixers["rows"]] == ["MLGRU", "spike attention"]
    assert mixers["rows"][1]["token_ppl"] == rows["without pruning"]["token_ppl"]     # same settings, one measurement
    assert "| spike attention |" in ablation.mixer_table(mixers)
    assert ablation.plot(result, tmp_path / "a.png").stat().st_size > 10_000


def test_the_committed_table_marks_every_number_it_copies():
    """docs/ablation/ablation.json: a number equal to the full system's, to every digit, was measured once for the
    full system and the row says so (the old crossbar and dense rows printed its ROUGE unmarked), and event
    skipping is split into its two kinds, with the RTL's share named."""
    result = json.loads((Path(__file__).resolve().parent.parent / "docs/ablation/ablation.json").read_text())
    rows = {r["row"]: r for r in result["rows"]}
    assert list(rows) == [r.name for r in ablation.ROWS]
    full = rows.pop("full system")
    cells = {"perplexity": ("token_ppl",), "decode": ("rouge1", "rouge2", "rougeLsum"),
             "golden events": ("events_per_token",), "energy": ("dynamic_energy_per_token_j", "token_latency_s")}
    for r in rows.values():
        for measure, keys in cells.items():
            if any(r[k] == full[k] for k in keys):
                assert r["shared"][measure]["row"] == "full system", (r["row"], measure)
    assert rows["without zero-weight skipping"]["rtl"] == "not implemented"
    assert "decode" not in rows["crossbar instead of digital"]["shared"]


@pytest.mark.parametrize("field, value, match", [
    ("sparsity", 1.0, r"--sparsity must be in \[0, 1\)"),
    ("beam", 0, "--beam must be a positive integer"),
    ("timesteps", 0, "spike timesteps T must be a positive integer"),
    ("articles", 0, "--articles must be a positive integer"),
    ("crossbar_articles", 3, r"--crossbar-articles \(3\) must not exceed --articles \(2\)"),
])
def test_bad_settings_are_refused(checkpoints, tmp_path, field, value, match):
    with pytest.raises(ValueError, match=match):
        ablation._cmd(args(checkpoints, tmp_path, **{field: value}))
