"""The ablation harness end to end on two tiny checkpoints made here (one per token mixer)."""

import argparse

import pytest
import torch

from models.mmfree.checkpoint import save_checkpoint
from models.mmfree.config import preset
from models.mmfree.model import MMFreeForCausalLM
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


def args(checkpoints, tmp_path, **kw):
    p = argparse.ArgumentParser()
    ablation.add_arguments(p)
    a = p.parse_args(["--spike-model", str(checkpoints["spike"]), "--mlgru-model", str(checkpoints["mlgru"]),
                      "--eval-tokens", "300", "--crossbar-eval-tokens", "100", "--event-tokens", "24",
                      "--calib-tokens", "256", "--articles", "2", "--article-tokens", "24", "--max-new-tokens", "4",
                      "--beam", "2", "--timesteps", "4", "--out", str(tmp_path)])
    for k, v in kw.items():
        setattr(a, k, v)
    return a


@pytest.mark.slow
def test_every_row_is_measured_and_each_ablation_moves_the_right_way(checkpoints, tmp_path):
    result = ablation.run_ablation(args(checkpoints, tmp_path))
    rows = {r["row"]: r for r in result["rows"]}
    assert list(rows) == [r.name for r in ablation.ROWS]
    full = rows["full system"]
    for r in rows.values():
        assert r["token_ppl"] > 1 and r["energy_per_token_j"] > 0 and 0 <= r["rouge1"] <= 100
    # pruning removes synaptic ops; dense execution does every slot; the decoder changes only decoding
    assert rows["without pruning"]["event_detail"]["synaptic_ops"] > full["event_detail"]["synaptic_ops"]
    assert rows["without event skipping (dense)"]["events_per_token"] > full["events_per_token"]
    assert rows["without event skipping (dense)"]["dynamic_energy_per_token_j"] > full["dynamic_energy_per_token_j"]
    beam = rows["without spike beam search (beam search)"]
    assert beam["token_ppl"] == full["token_ppl"] and beam["events_per_token"] == full["events_per_token"]
    assert full["event_detail"]["attention_ops"] > 0 and rows["without spike attention (MLGRU)"]["event_detail"]["attention_ops"] == 0
    assert rows["crossbar instead of digital"]["preset"] == "crossbar"
    assert rows["crossbar instead of digital"]["digital_ppl_same_tokens"] > 1
    assert "| full system |" in ablation.table(result)
    assert (tmp_path / "ablation.json").exists()
    mixers = ablation.json.loads((tmp_path / "mixers.json").read_text())
    assert [r["row"] for r in mixers["rows"]] == ["MLGRU", "spike attention"]
    assert mixers["rows"][1]["token_ppl"] == rows["without pruning"]["token_ppl"]     # shared measurement
    assert "| spike attention |" in ablation.mixer_table(mixers)
    assert ablation.plot(result, tmp_path / "a.png").stat().st_size > 10_000


@pytest.mark.parametrize("field, value, match", [
    ("sparsity", 1.0, r"--sparsity must be in \[0, 1\)"),
    ("beam", 0, "--beam must be a positive integer"),
    ("timesteps", 0, "spike timesteps T must be a positive integer"),
    ("articles", 0, "--articles must be a positive integer"),
])
def test_bad_settings_are_refused(checkpoints, tmp_path, field, value, match):
    with pytest.raises(ValueError, match=match):
        ablation._cmd(args(checkpoints, tmp_path, **{field: value}))
