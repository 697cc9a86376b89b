"""The ablation harness on two tiny checkpoints made here (one per token mixer): the skipping rules, the claim that
skipping cannot change the arithmetic, and the whole table (every cell measured for its row or marked shared)."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from models.decoding.beam_search import spike_beam_search
from models.decoding.steppers import GoldenStepper, ViewStepper
from models.mmfree.checkpoint import load_checkpoint, save_checkpoint
from models.mmfree.config import preset
from models.mmfree.model import MMFreeForCausalLM
from models.program.golden import GoldenModel
from models.program.integer_program import IntegerProgram
from models.program.integer_view import IntegerView
from models.text.tokenizer import corpus_files, save_tokenizer, train_tokenizer
from experiments import ablation

torch.set_num_threads(1)


def save_checkpoints(root: Path) -> dict[str, Path]:
    """One tiny seeded checkpoint per token mixer (``mlgru``, ``spike``) under ``root``, sharing a small tokenizer."""
    tok = train_tokenizer(512, corpus_files()[:1], max_bytes=60_000)
    dirs = {}
    for name, kw in (("mlgru", {}), ("spike", dict(token_mixer="spike_attention", num_heads=2, use_lower_bound=False))):
        torch.manual_seed(0)
        model = MMFreeForCausalLM(preset("tiny", **kw))
        dirs[name] = save_checkpoint(model, root / name)
        save_tokenizer(tok, root / name)
    return dirs


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return save_checkpoints(tmp_path_factory.mktemp("ablation"))


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
    b = spike_beam_search(ViewStepper(IntegerView(program)), ids[:12], 2, 4, max_new_tokens=6, eos_id=None)
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
    counted = {(a, w): ablation.count_events(c, n, consts, a, w) for a in (True, False) for w in (True, False)}
    rule = {k: e.synaptic_ops + e.attention_ops for k, e in counted.items()}
    assert counted[True, True].as_dict() == c                       # the event-driven rule is the golden count
    assert counted[False, True].input_events == counted[False, False].input_events == n * consts["inputs"]
    assert counted[True, False].input_events == c["input_events"] < n * consts["inputs"]
    dense_attn = n * 2 * consts["timesteps"] * consts["attention_cells"]
    assert dense_attn > 0 and c["dense_macs"] == n * consts["dense"]
    assert rule[True, True] == c["synaptic_ops"] + c["attention_ops"]
    assert rule[False, True] == n * consts["nnz"] + dense_attn
    assert rule[False, False] == n * consts["dense"] + dense_attn
    # lm_head is one projection: its slots are its input events x the vocabulary
    head = per_layer[-1].as_dict()
    slots = ablation.count_events(head, n, consts, True, False).synaptic_ops
    assert slots == head["input_events"] * program.vocab_size > head["synaptic_ops"]
    assert rule[True, True] < rule[True, False] < rule[False, False]
    assert rule[True, True] < rule[False, True] < rule[False, False]


def small_argv(checkpoints, out) -> list[str]:
    """``nmllm ablation`` arguments (after the subcommand) that run the whole table in seconds."""
    return ["--spike-model", str(checkpoints["spike"]), "--mlgru-model", str(checkpoints["mlgru"]),
            "--eval-tokens", "300", "--crossbar-eval-tokens", "100", "--event-tokens", "24",
            "--calib-tokens", "256", "--articles", "2", "--crossbar-articles", "1", "--article-tokens", "24",
            "--max-new-tokens", "4", "--beam", "2", "--timesteps", "4", "--out", str(out)]


def args(checkpoints, tmp_path, **kw):
    p = argparse.ArgumentParser()
    ablation.add_arguments(p)
    a = p.parse_args(small_argv(checkpoints, tmp_path) + ["--no-progress"])
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


@pytest.mark.slow
def test_decode_and_ablation_report_the_same_events_per_token(checkpoints, tmp_path):
    """One definition of events per token (models.program.events.token_events): the ablation's decode column and
    ``nmllm decode`` give the same figures, part by part, for the same model, decoder and articles (before, decode
    added input events and left out attention additions, and the ablation the reverse)."""
    from experiments import decode
    from models.program.events import TOKEN_EVENT_PARTS

    cases = {"spike": ("spike", "spike beam k=2 T=4"), "mlgru": ("beam", "beam k=2")}
    rows = tuple(ablation.Row(f"unpruned {m}", model=m, pruned=False, decoder=d) for m, (d, _) in cases.items())
    got = {r["settings"]["model"]: r for r in ablation.run_ablation(args(checkpoints, tmp_path / "a"), rows=rows)["rows"]}
    parser = argparse.ArgumentParser()
    decode.register(parser.add_subparsers())
    for model, (decoder, name) in cases.items():
        d = parser.parse_args(["decode", "--model", str(checkpoints[model]), "--n-articles", "2", "--article-tokens",
                               "24", "--max-new-tokens", "4", "--beam", "2", "--timesteps", "4", "--out",
                               str(tmp_path / model), "--no-progress"])
        want = next(r for r in decode.run_experiment(d)["rows"] if r["decoder"] == name)
        row = got[model]
        parts = row["decode_event_breakdown_per_generated_token"]
        assert parts == want["event_breakdown_per_token"] and set(parts) == {"events", "bit_spikes", *TOKEN_EVENT_PARTS}
        assert row["decode_events_per_token"] == want["events_per_token"] == parts["events"]
        assert parts["events"] == pytest.approx(sum(parts[k] for k in TOKEN_EVENT_PARTS))
        assert (parts["attention_ops"] > 0) == (model == "spike") and (parts["output_spikes"] > 0) == (decoder == "spike")
        assert parts["input_events"] > 0 and parts["bit_spikes"] >= parts["input_events"]
        teacher = row["event_breakdown_per_token"]          # teacher-forced: the same function, no decoder
        assert row["events_per_token"] == teacher["events"] and teacher["output_spikes"] == teacher["compare_events"] == 0


def test_token_events_names_each_part_and_adds_the_documented_ones():
    """models.program.events.token_events: per-token parts by name, ``events`` their documented sum (bit spikes
    beside it, not in it), refused without tokens."""
    from models.program.events import TOKEN_EVENT_PARTS, LayerEvents, token_events

    ev = LayerEvents(input_events=30, synaptic_ops=600, attention_ops=90, bit_spikes=75, zero_weight_slots=300)
    got = token_events(ev, 3, output_spikes=12, compare_events=15)
    assert got == {"events": (30 + 600 + 90 + 12 + 15) / 3, "input_events": 10.0, "synaptic_ops": 200.0,
                   "attention_ops": 30.0, "output_spikes": 4.0, "compare_events": 5.0, "bit_spikes": 25.0}
    assert TOKEN_EVENT_PARTS == ("input_events", "synaptic_ops", "attention_ops", "output_spikes", "compare_events")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="events per token need at least one token"):
            token_events(ev, bad)
