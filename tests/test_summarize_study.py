"""``nmllm summarize-study`` on the tiny random Llama: the CPU runs resume after a real SIGKILL, the int8 variant
quantises every linear layer, and ``compose`` builds the study from ROUGE decodes, their event counts, the CPU
and error runs (refusing event counts of another run); the edge-GPU roofline by hand."""

from __future__ import annotations

import json

import pytest
import torch

from experiments.summarize_study import EDGE_GPU, repeats, roofline_gpu
from nmllm.cli import main
from tests.test_resume import _kill_after_first_point, _strip
from tests.test_spike_convert import save_tiny_llama

TIMES = ("ttft_s", "decode_s", "wall_s", "ttft_cpu_s", "decode_cpu_s", "cpu_s", "totals", "provenance")
WORDS = ("council library station mayor spring books river bridge school teacher storm power city train market "
         "price water team match goal").split()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("study")
    model = save_tiny_llama(d / "model", hidden=48, layers=2, heads=4, kv_heads=2)
    g = torch.Generator().manual_seed(3)
    with open(d / "cnndm.jsonl", "w", encoding="utf-8") as fh:
        for i in range(12):
            words = [WORDS[j] for j in torch.randint(0, len(WORDS), (40,), generator=g).tolist()]
            fh.write(json.dumps({"see_index": f"{i:06d}", "article": " ".join(words) + " .",
                                 "highlights": " ".join(words[:8]) + " .\n" + " ".join(words[8:14]) + " ."}) + "\n")
    return {"model": str(model), "data": str(d / "cnndm.jsonl"), "dir": d}


def _cpu(t, partial, out, n=12, *extra):
    return ["summarize-study", "cpu", "--model", t["model"], "--data", t["data"], "--n-articles", str(n),
            "--max-article-tokens", "24", "--max-new-tokens", "6", "--partial", str(partial), "--out", str(out), *extra]


def _records(path):
    return _strip({k: v for k, v in json.loads(path.read_text()).items() if k not in TIMES})


def _no_times(recs):
    return [{k: v for k, v in r.items() if k not in TIMES} for r in recs]


@pytest.mark.slow
def test_cpu_run_sigkill_then_resume_equals_uninterrupted_run(tiny, tmp_path, capsys):
    whole = tmp_path / "whole.json"
    assert main(_cpu(tiny, tmp_path / "w.partial.json", whole, 12, "--threads", "1", "--no-progress")) == 0
    partial, out = tmp_path / "k.partial.json", tmp_path / "k.json"
    stored = _kill_after_first_point(_cpu(tiny, partial, out), partial, "0")
    assert 1 <= len(stored) < 12 and not out.exists()
    capsys.readouterr()                                       # other settings on the same state: refused, untouched
    before = partial.read_bytes()
    assert main(_cpu(tiny, partial, out, 12, "--variant", "int8-dynamic", "--no-progress")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "variant='dense' there, variant='int8-dynamic' now" in err
    assert partial.read_bytes() == before
    assert main(_cpu(tiny, partial, out, 12, "--threads", "1", "--no-progress")) == 0
    a, b = (json.loads(p.read_text()) for p in (whole, out))
    assert _no_times(a["articles"]) == _no_times(b["articles"]) and a["rouge"] == b["rouge"]
    r = b["articles"][0]
    assert r["forwards"] == r["new_tokens"] and r["ttft_s"] + r["decode_s"] == pytest.approx(r["wall_s"])
    assert b["totals"]["cpu_s"] > 0 and "provenance" in b


@pytest.mark.parametrize("variant, scheme", [("int8-dynamic", torch.per_tensor_affine),
                                             ("int8-dynamic-channel", torch.per_channel_affine)])
def test_int8_dynamic_quantises_every_linear(tiny, variant, scheme):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    from experiments.summarize_study import cpu_variant
    from models.transformer.loader import load_hf_model

    model = load_hf_model(tiny["model"])
    n = sum(isinstance(m, torch.nn.Linear) for m in model.modules())
    q = cpu_variant(model, variant)
    dyn = [m for m in q.modules() if isinstance(m, DynamicLinear)]
    assert n > 0 and len(dyn) == n and not any(type(m) is torch.nn.Linear for m in q.modules())
    assert {m.weight().qscheme() for m in dyn} == {scheme}
    assert cpu_variant(model, "dense") is model
    from models.eval.rouge import summarize
    from models.transformer.loader import load_hf_tokenizer

    text, _, n_g = summarize(q, load_hf_tokenizer(tiny["model"]), "the council voted .", 4, 16)   # it generates
    assert n_g >= 1


@pytest.fixture(scope="module")
def decodes(tiny):
    """Dense and bit-plane per-channel ROUGE decodes of 4 articles (the converted one with its resume file)."""
    d = tiny["dir"]
    common = ["eval", "rouge", "--model", tiny["model"], "--data", tiny["data"], "--n-articles", "4",
              "--max-new-tokens", "6", "--max-article-tokens", "24", "--threads", "1", "--no-progress"]
    spike = ["--spike-coding", "bitplane", "--timesteps", "2", "--thresholds", "channel", "--calib-tokens", "64",
             "--calib-cache", str(d / "calib.pt")]
    assert main([*common, "--json", str(d / "dense.json")]) == 0
    assert main([*common, *spike, "--resume-file", str(d / "conv.resume.json"), "--json", str(d / "conv.json")]) == 0
    study = d / "summarize"
    assert main(_cpu(tiny, d / "c.partial.json", study / "cpu_dense.json", 4, "--threads", "1", "--no-progress")) == 0
    assert main(["summarize-study", "errors", "--model", tiny["model"], "--data", tiny["data"], "--articles", "0,2",
                 "--dense", str(d / "dense.json"), "--timesteps", "2", "--calib-tokens", "64", "--calib-cache",
                 str(d / "calib.pt"), "--max-article-tokens", "24", "--partial", str(d / "e.partial.json"),
                 "--out", str(study / "errors_articles.json"), "--no-progress"]) == 0
    return d


def _compose(tiny, d, *extra):
    return ["summarize-study", "compose", "--model", tiny["model"], "--data", tiny["data"], "--dense",
            str(d / "dense.json"), "--converted", str(d / "conv.json"), "--summarize-dir", str(d / "summarize"),
            "--corpus-errors", "", *extra]


@pytest.mark.slow
def test_compose_builds_the_study(tiny, decodes, capsys):
    d = decodes
    assert main(_compose(tiny, d, "--events", str(d / "conv.resume.json"))) == 0
    s = json.loads((d / "summarize" / "study_4.json").read_text())
    dense, conv = (json.loads((d / f).read_text()) for f in ("dense.json", "conv.json"))
    rows = {r["hardware"]: r for r in s["rows"]}
    assert "loihi1 cannot carry per-channel thresholds" in rows["loihi1"]["not_mapped"]
    assert rows["vck190"]["not_mapped"] == "int8 weights"
    for name in ("loihi2-estimate", "crossbar"):             # modelled from the measured events, converted ROUGE
        r = rows[name]
        assert r["rouge"]["rouge1"] == pytest.approx(conv["rouge1"]) and r["j_per_summary"] > 0
        lo, hi = r["j_per_summary_range"]
        assert lo < r["j_per_summary"] < hi and r["tokens_per_s"] > 0
    cpu = rows["this CPU, 1 core"]
    assert cpu["rouge"]["rouge1"] == pytest.approx(dense["rouge1"]) and cpu["timed_articles"] == 4
    assert cpu["j_per_summary"] == pytest.approx(6.0 * cpu["cpu_s_per_summary"])
    assert [r["rouge"] for r in s["rows"] if r["how"] == "roofline"] == [None, None]
    sites = s["events"]["per_site"]                          # the resume file's totals, per token
    assert sum(v["synaptic_ops"] for v in sites.values()) == pytest.approx(conv["events_per_token"]["synaptic_ops"])
    assert [a["index"] for a in s["articles"]] == [0, 1, 2, 3]
    assert set(s["errors"]["articles"]) == {"0000", "0002"}
    e = s["errors"]["articles"]["0000"]
    assert set(e["sites"]) >= {"0.attn_in", "1.mlp_out", "lm_head"} and e["logits"]["kl"] >= 0
    out = capsys.readouterr().out
    assert out.count("\n| ") >= len(s["rows"]) and (d / "summarize" / "quality_vs_energy.png").is_file()


@pytest.mark.slow
def test_compose_refuses_event_counts_of_another_run(tiny, decodes, capsys):
    d = decodes
    other = json.loads((d / "conv.resume.json").read_text())
    for c in other["carry"].values():
        c["events"]["synaptic_ops"] *= 2
    (d / "other.resume.json").write_text(json.dumps(other))
    capsys.readouterr()
    assert main(_compose(tiny, d, "--events", str(d / "other.resume.json"), "--out", str(d / "x.json"))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "are not those of the committed record" in err[0] and not (d / "x.json").exists()


def test_roofline_by_hand():
    mode = EDGE_GPU["modes"]["15 W"]
    params, kv, prompt, new = 1_000_000, 100, 10, 5
    r = roofline_gpu(mode, params, kv, prompt, new)
    tok = (params * 2 + kv * (prompt + 2) * 2) / 68e9              # one weight pass + the KV cache, fp16
    assert r["tokens_per_s"] == pytest.approx(1 / tok)
    ttft = max(2 * params * prompt / 10e12, (params * 2 + kv * prompt * 2) / 68e9)
    assert r["ttft_s"] == pytest.approx(ttft)
    assert r["j_per_summary"] == pytest.approx(15.0 * (ttft + 4 * tok))


def test_repeats_counts_the_most_frequent_trigram():
    assert repeats("a North Pacific Gray Whale (VAR-VAR-VAR-VAR-VAR-VAR") == 3      # "(var" is its own word
    assert repeats("one two three four") == 1 and repeats("two words") == 0


def test_bad_arguments_are_one_line_errors(tiny, capsys):
    for argv, match in ((["cpu", "--variant", "int4"], "unknown --variant 'int4': choose one of dense, int8-dynamic"),
                        (["cpu", "--n-articles", "0"], "--n-articles and --max-new-tokens must be >= 1"),
                        (["errors", "--articles", "a,b"], "--articles 'a,b': give comma-separated test indices"),
                        (["errors", "--articles", "5000"], "holds 200 summaries, not index 5000")):
        assert main(["summarize-study", *argv, "--model", tiny["model"], "--data", tiny["data"]]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and match in err[0], err
