"""``nmllm summarize`` end to end on the tiny random Llama, and its one-line refusals."""

from __future__ import annotations

import json

import pytest
import torch

from nmllm.cli import main
from tests.test_spike_convert import save_tiny_llama


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("sum")
    model = save_tiny_llama(d / "model", hidden=48, layers=2, heads=4, kv_heads=2)
    article = ("The city council voted on Tuesday to open a new library in the old train station. "
               "The mayor said the building will open next spring and will hold ten thousand books.")
    data = d / "cnndm.jsonl"
    data.write_text(json.dumps({"article": article, "highlights": "The council voted to open a new library .\n"
                                                                    "It will open next spring ."}) + "\n")
    return {"model": str(model), "data": str(data), "dir": d}


def _common(t, *extra):
    return ["summarize", "--model", t["model"], "--data", t["data"], "--calib-tokens", "256",
            "--calib-cache", str(t["dir"] / "calib.pt"), "--threads", "1", "--no-progress", *extra]


@pytest.mark.slow
def test_summarize_end_to_end(tiny, capsys):
    out = tiny["dir"] / "r.json"
    n = torch.get_num_threads()
    try:
        assert main(_common(tiny, "--max-article-tokens", "40", "--max-new-tokens", "6", "--json", str(out))) == 0
    finally:
        torch.set_num_threads(n)
    text = capsys.readouterr().out
    assert "[dense]" in text and "[converted]" in text and "ROUGE-1" in text
    assert "| vck190 | vck190: not mapped (int8 weights) |" in text and "| loihi1 (binary) |" in text
    r = json.loads(out.read_text())
    assert set(r["summaries"]) == {"dense", "converted"} and "provenance" in r
    assert r["spike"]["coding"] == "bitplane" and r["spike"]["timesteps"] == 8
    # every forward of the converted summary was counted: the prompt, then one per new token after the first
    assert r["event_tokens"] == r["prompt_tokens"] + r["summaries"]["converted"]["new_tokens"] - 1
    for name in ("loihi1", "loihi2-estimate", "crossbar"):
        t = r["targets"][name]
        assert t["tokens_per_s"] > 0 and t["ttft_s"] > 0 and t["chips"] >= 1
        assert set(t["j_per_summary"]) >= {"prefill_dynamic", "decode_dynamic", "static", "total"}
        assert set(r["kv_contexts"][name]) == {"512", "2048"}
    from sim.system.energy import load_preset
    from sim.system.transformer import TransformerShape, map_transformer, summary_cost

    shape, preset, g = TransformerShape(**r["shape"]), load_preset("crossbar"), r["summaries"]["converted"]["new_tokens"]
    again = summary_cost(map_transformer(shape, preset, "int8", "graded", r["prompt_tokens"] + g), preset,
                         r["events_per_site"], r["prompt_tokens"], g)      # the record holds what its costs need
    assert again["j_per_summary"] == r["targets"]["crossbar"]["j_per_summary"]
    assert r["targets"]["loihi1"]["spike_format"] == "binary" and r["targets"]["loihi2-estimate"]["spike_format"] == "graded"


def _refused(argv, capsys, match):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and match in err[0], err


def test_refusals(tiny, capsys, tmp_path):
    _refused(_common(tiny, "--thresholds", "channel"), capsys,
             "loihi1 cannot carry per-channel thresholds: it needs graded spikes")
    _refused(_common(tiny, "--targets", "loihi2-estimate", "--max-article-tokens", "0", "--max-new-tokens", "120"),
             capsys, "plus 120 new tokens is longer than the model's context of 128")
    _refused(_common(tiny, "--targets", "nope"), capsys, "unknown target 'nope'")
    _refused(_common(tiny, "--spike-coding", "none"), capsys, "unknown --spike-coding 'none'")
    _refused(_common(tiny, "--weights", "float"), capsys, "the hardware holds int8 or ternary weights")
    from transformers import GPT2Config

    gpt2 = tmp_path / "gpt2"               # refused from its config, before any weights load
    GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=1, n_head=2,
               architectures=["GPT2LMHeadModel"]).save_pretrained(gpt2)
    _refused(["summarize", "--model", str(gpt2), "--data", tiny["data"], "--no-progress"], capsys,
             "the compiler maps LlamaForCausalLM (the spike converter's Llama family), not GPT2LMHeadModel")


@pytest.mark.slow
def test_a_text_file_without_reference_has_no_rouge(tiny, capsys):
    story = tiny["dir"] / "story.txt"
    story.write_text("A small boat reached the island after three days at sea. The crew were tired but safe.")
    out = tiny["dir"] / "t.json"
    n = torch.get_num_threads()
    try:
        assert main(_common(tiny, "--text", str(story), "--max-new-tokens", "4", "--targets", "crossbar",
                            "--json", str(out))) == 0
    finally:
        torch.set_num_threads(n)
    assert "no reference: no ROUGE" in capsys.readouterr().out
    r = json.loads(out.read_text())
    assert "rouge" not in r["summaries"]["dense"] and r["source"] == str(story) and set(r["targets"]) == {"crossbar"}
