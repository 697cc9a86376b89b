"""The interchangeable executors: integer view and golden model give the same logits; bad names refused."""

import pytest
import torch

from models.mmfree.config import preset
from models.program.engines import ENGINES, logits_fn
from models.mmfree.model import MMFreeForCausalLM


def test_integer_and_golden_engines_give_identical_logits():
    torch.manual_seed(0)
    model = MMFreeForCausalLM(preset("tiny"))
    ids = torch.randint(0, 512, (2, 12), generator=torch.Generator().manual_seed(1))
    assert torch.equal(logits_fn(model, "integer")(ids), logits_fn(model, "golden")(ids))


def test_every_engine_returns_logits_of_the_right_shape():
    torch.manual_seed(0)
    model = MMFreeForCausalLM(preset("tiny"))
    ids = torch.randint(0, 512, (1, 5))
    for engine in ENGINES:
        assert logits_fn(model, engine)(ids).shape == (1, 5, 512)


def test_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="unknown engine 'rtl'; choose one of float, fp32, integer, golden"):
        logits_fn(MMFreeForCausalLM(preset("tiny")), "rtl")


def test_eval_perplexity_engines_integer_and_golden_agree(tmp_path, capsys):
    """``nmllm eval perplexity --engine integer`` and ``--engine golden`` give the same perplexity."""
    import json

    from models.mmfree.checkpoint import save_checkpoint
    from models.text.corpus import corpus_files
    from models.text.tokenizer import save_tokenizer, train_tokenizer
    from nmllm.cli import main

    tok = train_tokenizer(400, corpus_files()[:1], max_bytes=30_000)
    torch.manual_seed(0)
    save_checkpoint(MMFreeForCausalLM(preset("tiny", vocab_size=400)), tmp_path / "m")
    save_tokenizer(tok, tmp_path / "m")
    (tmp_path / "t.txt").write_text("The engines must agree on every token of this text .\n" * 2)
    results = {}
    for engine in ("integer", "golden", "float"):
        out = tmp_path / f"{engine}.json"
        assert main(["eval", "perplexity", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "t.txt"),
                     "--window", "16", "--stride", "8", "--no-progress", "--engine", engine, "--json", str(out)]) == 0
        results[engine] = json.loads(out.read_text())
    capsys.readouterr()
    assert results["integer"]["token_ppl"] == results["golden"]["token_ppl"]
    assert results["golden"]["view"] == "golden-model"
    assert results["integer"]["token_ppl"] == pytest.approx(results["float"]["token_ppl"], rel=0.05)
