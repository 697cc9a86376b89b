"""Perplexity: the sliding-window plan, hand-computed values for a uniform and a bigram model, the CLI."""

import argparse
import json
import math

import pytest
import torch

from models.mmfree.checkpoint import save_checkpoint
from models.mmfree.config import preset
from models.text.corpus import corpus_files, data_root
from models.mmfree.model import MMFreeForCausalLM
from models.eval.perplexity import model_logits_fn, sequence_nll, text_perplexity, window_plan
from models.text.tokenizer import EOS_ID, save_tokenizer, train_tokenizer
from nmllm.commands.eval import register

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(400, corpus_files()[:1], max_bytes=60_000)


def test_window_plan_scores_each_position_once():
    for n, w, s in [(10, 4, 2), (7, 3, 3), (5, 8, 4), (100, 16, 5), (1, 4, 1)]:
        plan = window_plan(n, w, s)
        scored = [p for b, e, k in plan for p in range(e - k, e)]
        assert scored == list(range(n))
        assert all(e - b <= w for b, e, _ in plan)
        # every scored position after the first window sees at least w - s earlier positions
        assert all(e - k - b >= min(w - s, e - k) for b, e, k in plan[1:])
    assert window_plan(10, 4, 2)[:3] == [(0, 4, 4), (2, 6, 2), (4, 8, 2)]
    with pytest.raises(ValueError, match=r"stride \(5\) must not exceed window \(4\)"):
        window_plan(10, 4, 5)


def test_uniform_model_perplexity_is_vocab_size(tok):
    V = 400
    text = "The cat sat on the mat.\n Another line, with words ; and 3 numbers .\n"

    def uniform(ids):
        return torch.zeros(ids.shape[0], ids.shape[1], V)

    r = text_perplexity(uniform, tok, text, window=8, stride=3)
    n = len(tok.encode(text).ids)
    assert r["tokens"] == n
    assert r["token_ppl"] == pytest.approx(V, rel=1e-9)
    # by hand: NLL = n ln V; word ppl = exp(n ln V / words); bits/byte = n log2 V / bytes
    words = len(text.split())
    assert words == 15
    assert r["word_ppl"] == pytest.approx(math.exp(n * math.log(V) / words), rel=1e-9)
    assert r["bits_per_byte"] == pytest.approx(n * math.log2(V) / len(text.encode()), rel=1e-9)


def test_bigram_model_nll_by_hand():
    # a "model" whose logits depend only on the current token: p(next | cur) fixed, so windows don't matter
    V = 5
    table = torch.log_softmax(torch.arange(V * V, dtype=torch.float32).view(V, V).sin() * 3, -1)
    ids = [3, 1, 4, 1, 0, 2, 4]

    def bigram(x):
        return table[x]

    expected = sum(-float(table[a, b]) for a, b in zip([EOS_ID] + ids[:-1], ids))
    for w, s in [(2, 1), (3, 2), (7, 7), (4, 4)]:
        r = sequence_nll(bigram, ids, window=w, stride=s, batch_size=3)
        assert r["tokens"] == len(ids)
        assert r["nll"] == pytest.approx(expected, rel=1e-6)


def test_context_matters_through_the_window():
    # a "model" that is confident (next token is 0 or 3, never 1 or 2) only once token 3 is inside its
    # window (the prepended context token is </s> = 2)
    V = 4

    def memory(x):
        seen = (x == 3).cumsum(1) > 0
        logits = torch.zeros(x.shape[0], x.shape[1], V)
        logits[..., 1:3] = torch.where(seen, torch.tensor(-30.0), torch.tensor(0.0)).unsqueeze(-1)
        return logits

    ids = [3, 0, 0, 3, 0, 0, 3, 0, 0]
    small = sequence_nll(memory, ids, window=2, stride=2)["nll"]    # no overlap: forgets between windows
    overlap = sequence_nll(memory, ids, window=4, stride=2)["nll"]  # at least 2 tokens of context
    # by hand: window 2 is confident at 4 of the 9 positions, window 4 at 8 of them
    conf, unif = math.log(2), math.log(4)
    assert small == pytest.approx(4 * conf + 5 * unif, rel=1e-6)
    assert overlap == pytest.approx(8 * conf + 1 * unif, rel=1e-6)


def test_max_tokens_counts_words_and_bytes_of_the_prefix(tok):
    text = (data_root() / "wikitext-2" / "wiki.test.raw").read_text(encoding="utf-8")[:5000]

    def uniform(ids):
        return torch.zeros(ids.shape[0], ids.shape[1], 400)

    r = text_perplexity(uniform, tok, text, window=64, stride=32, max_tokens=100)
    prefix = tok.decode(tok.encode(text).ids[:100])
    assert r["tokens"] == 100 and r["words"] == len(prefix.split()) and r["bytes"] == len(prefix.encode())


def test_model_and_cli(tok, tmp_path, capsys):
    torch.manual_seed(0)
    model = MMFreeForCausalLM(preset("tiny", vocab_size=400))
    save_checkpoint(model, tmp_path / "m")
    save_tokenizer(tok, tmp_path / "m")
    text = "A short text for the perplexity command .\n" * 3
    (tmp_path / "t.txt").write_text(text)
    direct = text_perplexity(model_logits_fn(model), tok, text, window=16, stride=8)
    parser = argparse.ArgumentParser(prog="nmllm")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["eval", "perplexity", "--model", str(tmp_path / "m"), "--data", str(tmp_path / "t.txt"),
                              "--window", "16", "--stride", "8", "--no-progress", "--json", str(tmp_path / "r.json")])
    assert args.func(args) == 0
    out = json.loads((tmp_path / "r.json").read_text())
    provenance = out.pop("provenance")                         # the file carries where it came from
    assert provenance["command"] and provenance["git_sha"] and "torch" in provenance["packages"]
    assert json.loads(capsys.readouterr().out) == out
    assert out["token_ppl"] == pytest.approx(direct["token_ppl"], rel=1e-9)
    assert out["view"] == "float-qat" and out["words"] == len(text.split())
    assert 1 < out["token_ppl"] < 2 * 400  # an untrained model is near uniform


def test_an_interrupted_run_resumes_to_the_same_sums(tmp_path, monkeypatch):
    import models.eval.perplexity as perplexity

    monkeypatch.setattr(perplexity, "SAVE_EVERY_S", 0.0)
    torch.manual_seed(0)
    table = torch.randn(50, 50)

    def bigram(x):
        return table[x]

    ids = torch.randint(0, 50, (700,)).tolist()
    whole = sequence_nll(bigram, ids, window=64, stride=32, batch_size=2)
    calls = {"n": 0}

    def dies_after_three_batches(x):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return table[x]

    state = tmp_path / "run.json"
    with pytest.raises(KeyboardInterrupt):
        sequence_nll(dies_after_three_batches, ids, window=64, stride=32, batch_size=2, resume_file=state)
    assert json.loads(state.read_text())["window"] == 6          # three batches of two windows were saved
    resumed = sequence_nll(bigram, ids, window=64, stride=32, batch_size=2, resume_file=state)
    assert resumed["nll"] == whole["nll"] and resumed["tokens"] == whole["tokens"]
    assert resumed["forward_tokens"] == whole["forward_tokens"]
    with pytest.raises(ValueError, match="holds a run on other text or settings"):
        sequence_nll(bigram, ids[:-1], window=64, stride=32, batch_size=2, resume_file=state)
