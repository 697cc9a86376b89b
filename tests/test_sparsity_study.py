"""``nmllm sparsity``: its points and settings, one-line refusals before anything loads, and one small study
end to end on a tiny checkpoint (JSON with provenance, the Pareto plot, the docs regions generated from it)."""

import json
from pathlib import Path

import pytest
import torch

from experiments.sparsity import LEVERS, parse_points, point_settings
from nmllm.cli import main

FAN_INS = {"ifg": 256, "o": 256, "gate": 256, "down": 640, "lm_head": 256}


def test_default_points_cover_four_levels_of_each_training_free_lever():
    points = parse_points(None)
    assert sum(lever == "threshold" for lever, _ in points) >= 4 and sum(lever == "topk" for lever, _ in points) >= 4
    assert ("none", 0) in points and len(points) == sum(len(v) for v in LEVERS.values())


def test_point_settings_are_the_specs_input_sparsity():
    assert point_settings("none", 0, FAN_INS) == {}
    assert point_settings("threshold", 8, FAN_INS)["down"] == {"threshold": 8}
    assert point_settings("topk", 0.25, FAN_INS) == {k: {"topk": n // 4} for k, n in FAN_INS.items()}


@pytest.mark.parametrize("argv,message", [
    (["--points", "prune:0.5"], "--points: unknown lever 'prune'"),
    (["--points", "threshold:200"], r"--points: a threshold is an integer in \[0, 127\], not '200'"),
    (["--points", "topk:0"], r"--points: a top-k level is the kept fraction of the fan-in, in \(0, 1\]"),
    (["--points", "topk:x"], "--points: level 'x' of 'topk:x' is not a number"),
    (["--max-tokens", "-5"], "--max-tokens must be a positive number of tokens, not -5"),
    (["--presets", "loihi9"], "no preset 'loihi9'"),
    (["--model", "nowhere"], "--model nowhere is not a checkpoint directory"),
])
def test_bad_options_are_refused_in_one_line(capsys, argv, message):
    import re

    assert main(["sparsity", *argv, "--out", "/nonexistent/never-written"]) == 2
    err = capsys.readouterr().err.strip()
    assert re.search(message, err) and "\n" not in err


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from models.mmfree.checkpoint import save_checkpoint
    from models.mmfree.config import preset
    from models.mmfree.model import MMFreeForCausalLM
    from models.text.corpus import corpus_files
    from models.text.tokenizer import save_tokenizer, train_tokenizer

    d = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    save_checkpoint(MMFreeForCausalLM(preset("tiny")), d / "ck")
    save_tokenizer(train_tokenizer(512, corpus_files()[:1], max_bytes=60_000), d / "ck")
    text = d / "text.txt"
    text.write_text(corpus_files()[0].read_text(encoding="utf-8")[100_000:104_000])
    return d / "ck", text


@pytest.mark.slow
def test_a_small_study_writes_its_record_plot_and_tables(tiny_checkpoint, tmp_path):
    from experiments.docs import sparsity_finding, sparsity_study

    ck, text = tiny_checkpoint
    out = tmp_path / "docs" / "sparsity"
    argv = ["sparsity", "--model", str(ck), "--data", str(text), "--points", "none:0,threshold:16,topk:0.25",
            "--max-tokens", "64", "--event-tokens", "24", "--presets", "loihi1", "crossbar", "--out", str(out),
            "--work", str(tmp_path / "work"), "--no-progress"]
    assert main(argv) == 0
    rec = json.loads((out / "sparsity.json").read_text())
    assert [r["lever"] for r in rec["rows"]] == ["none", "threshold", "topk"] and "provenance" in rec
    none, thr, topk = rec["rows"]
    assert topk["settings"]["gate"] == {"topk": 8} and thr["settings"]["down"] == {"threshold": 16}
    assert topk["events_per_token"]["synaptic_ops"] < none["events_per_token"]["synaptic_ops"]
    assert topk["input_density"]["gate"] <= 0.25 + 1e-9
    assert set(none["system"]) == {"loihi1", "crossbar"} and (out / "pareto.png").stat().st_size > 0
    assert none["event_forward_tokens"] >= 64 and none["events_total"]["dense_macs"] > 0
    assert not (out / "sparsity.partial.json").exists()
    table = sparsity_study(tmp_path)
    assert table.count("\n") == 2 + 3 and "topk | 0.25 of fan-in" in table
    assert "Training-free input sparsity" in sparsity_finding(tmp_path)
    # a rerun with other settings is refused in one line instead of mixing points
    (out / "sparsity.partial.json").write_text(json.dumps({"settings": {"max_tokens": 1}, "points": {}}))
    assert main(argv) == 2
