"""Lost work: results bound to their settings and written atomically (experiments/resume.py), used by
``nmllm prune``, ``nmllm decode``, ``nmllm ablation`` and ``nmllm spike study``; a real SIGKILL then a resume equals
an uninterrupted run; ``nmllm sweep --resume`` runs the failed points again."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from experiments import pruning_sweep
from experiments.resume import Results, write_json
from nmllm.cli import main

ROOT = Path(__file__).resolve().parent.parent
WALL_CLOCK = ("wall_s", "seconds", "forward_tok_per_s", "scored_tok_per_s")
#: Fields that differ between an uninterrupted and a resumed run by design: wall clock, provenance, resumed count.
VARIES = (*WALL_CLOCK, "provenance", "resumed")


def _strip(obj):
    """``obj`` without its wall-clock, provenance and resumed-count fields."""
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in VARIES}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """A random one-layer MatMul-free checkpoint with the bundled model's tokenizer: every stage of
    ``nmllm prune`` and ``nmllm decode`` runs in about a second on it."""
    from models.mmfree.checkpoint import save_checkpoint
    from models.mmfree.config import preset
    from models.mmfree.model import MMFreeForCausalLM

    torch.manual_seed(0)
    d = save_checkpoint(MMFreeForCausalLM(preset("tiny", vocab_size=4096, num_hidden_layers=1)),
                        tmp_path_factory.mktemp("tiny_ckpt"))
    shutil.copy(ROOT / "models" / "bundled" / "tokenizer.json", d / "tokenizer.json")
    return d


def _kill_after_first_point(argv: list[str], partial: Path, first: str) -> dict:
    """Run ``nmllm argv`` in a subprocess, SIGKILL it once ``partial`` holds a point whose key starts with
    ``first``; returns the points stored by then."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="error")
    proc = subprocess.Popen([sys.executable, "-m", "nmllm.cli", *argv, "--no-progress", "--threads", "1"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline, problem = time.time() + 180, None
    while problem is None:
        if partial.exists() and any(k.startswith(first) for k in json.loads(partial.read_text())["points"]):
            break
        if proc.poll() is not None:
            problem = "the run ended before it could be killed"
        elif time.time() > deadline:
            problem = f"no point in {partial} within 180 s"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    if problem:
        pytest.fail(f"{problem}: {err.decode()[-2000:]}")
    assert proc.returncode == -signal.SIGKILL
    return json.loads(partial.read_text())["points"]


# ------------------------------------------------------------------------------------ the utility
def test_results_resume_refuse_and_write_atomically(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    res = Results(path, {"model": "m", "window": 256, "fractions": (0.0, 0.5)})
    assert res.resumed == 0 and not path.exists()
    assert res.put("a", {"ppl": 3.5, "shape": (2, 3)}) == {"ppl": 3.5, "shape": [2, 3]}   # as JSON reads it back
    again = Results(path, {"model": "m", "window": 256, "fractions": [0.0, 0.5]})
    assert again.resumed == 1 and "a" in again and again["a"]["shape"] == [2, 3]
    assert list(again.pending(["a", "b", "c"], desc="t", progress=False)) == ["b", "c"]
    before = path.read_bytes()
    for settings, named in (({"model": "m", "window": 128, "fractions": [0.0, 0.5]}, "window=256 there, window=128 now"),
                            ({"model": "m", "window": 256}, "fractions=[0.0, 0.5] there, fractions=(unset) now")):
        with pytest.raises(ValueError, match=re.escape(f"holds results of other settings: {named}; rerun")) as info:
            Results(path, settings)
        assert "\n" not in str(info.value)
    assert path.read_bytes() == before

    def torn(src, dst):            # a kill between writing the temporary and renaming it
        raise OSError("killed")
    monkeypatch.setattr(os, "replace", torn)
    with pytest.raises(OSError, match="killed"):
        again.put("b", {"ppl": 4.0})
    monkeypatch.undo()
    assert path.read_bytes() == before                      # the old file, whole
    assert set(Results(path, again.settings).points) == {"a"}
    again.finish(tmp_path / "final.json", {"rows": [again["a"]]})
    assert not path.exists() and json.loads((tmp_path / "final.json").read_text()) == {"rows": [{"ppl": 3.5, "shape": [2, 3]}]}

    write_json(path, {"points": {}})
    with pytest.raises(ValueError, match=r"records no settings \(written by an older version\): delete it"):
        Results(path, {})
    path.write_text('{"settings": {}, "poi')
    with pytest.raises(ValueError, match=r"is not a readable results file \(JSONDecodeError\): delete it"):
        Results(path, {})


# ------------------------------------------------------------------------------------ nmllm prune
def _prune_argv(model: Path, out: Path, *extra: str) -> list[str]:
    return ["prune", "--model", str(model), "--fractions", "0,0.3,0.6", "--calib-tokens", "32", "--eval-tokens", "32",
            "--golden-tokens", "2", "--window", "32", "--stride", "32", "--presets", "loihi1", "--out", str(out), *extra]


@pytest.fixture(scope="module")
def prune_reference(tiny_ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("prune_ref")
    assert main(_prune_argv(tiny_ckpt, out, "--no-progress")) == 0
    assert not (out / "pruning_sweep.partial.json").exists()
    return json.loads((out / "pruning_sweep.json").read_text())


def _count_calls(monkeypatch, module, name: str) -> list:
    calls: list = []
    real = getattr(module, name)

    def counted(*a, **k):
        calls.append(a)
        return real(*a, **k)
    monkeypatch.setattr(module, name, counted)
    return calls


@pytest.mark.slow
def test_prune_sigkill_then_resume_equals_uninterrupted_run(tiny_ckpt, prune_reference, tmp_path, monkeypatch):
    import models.pruning.budget as budget

    out = tmp_path / "run"
    argv = _prune_argv(tiny_ckpt, out)
    stored = _kill_after_first_point(argv, out / "pruning_sweep.partial.json", "sweep ")
    assert "probe base" in stored and 1 <= sum(k.startswith("sweep ") for k in stored) < 5
    assert not (out / "pruning_sweep.json").exists()
    probes = _count_calls(monkeypatch, budget, "probe_projection")
    assert main(argv + ["--no-progress"]) == 0
    assert probes == []                                     # the stored sensitivities are not probed again
    assert _strip(json.loads((out / "pruning_sweep.json").read_text())) == _strip(prune_reference)
    assert not (out / "pruning_sweep.partial.json").exists()


@pytest.mark.slow
def test_prune_killed_while_probing_resumes_at_the_next_projection(tiny_ckpt, prune_reference, tmp_path, monkeypatch):
    import models.pruning.budget as budget

    out = tmp_path / "run"
    argv = _prune_argv(tiny_ckpt, out)
    stored = _kill_after_first_point(argv, out / "pruning_sweep.partial.json", "probe base")
    done = sum(k.startswith("probe ") and k != "probe base" for k in stored)
    probes = _count_calls(monkeypatch, budget, "probe_projection")
    assert main(argv + ["--no-progress"]) == 0
    names = [k for k in prune_reference["sensitivity"]["rise"]]
    assert len(probes) == len(names) - done                  # only the projections not stored are probed
    assert _strip(json.loads((out / "pruning_sweep.json").read_text())) == _strip(prune_reference)


@pytest.mark.slow
def test_prune_resume_replays_a_stored_budget_search_and_refuses_other_settings(tiny_ckpt, prune_reference, tmp_path,
                                                                                monkeypatch, capsys):
    import models.pruning.budget as budget

    out = tmp_path / "run"
    argv = _prune_argv(tiny_ckpt, out, "--no-progress")
    real_put = Results.put

    def put_then_die(self, key, record):                    # dies right after the first budget step is stored
        stored = real_put(self, key, record)
        if key.startswith("shift budget") and key.endswith("fitted on wikipedia"):
            raise RuntimeError("killed")
        return stored
    monkeypatch.setattr(Results, "put", put_then_die)
    assert main(argv) == 2
    monkeypatch.undo()
    partial = out / "pruning_sweep.partial.json"
    before = partial.read_bytes()
    capsys.readouterr()
    assert main(_prune_argv(tiny_ckpt, out, "--no-progress", "--ema", "0.7")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds results of other settings: ema=0.5 there, ema=0.7 now" in err
    assert partial.read_bytes() == before                   # refused before anything was loaded or written

    fits = _count_calls(monkeypatch, budget, "fit_budget")
    assert main(argv) == 0
    assert len(fits) == 1                                   # only the re-fit on news; the stored search is replayed
    assert _strip(json.loads((out / "pruning_sweep.json").read_text())) == _strip(prune_reference)


# ------------------------------------------------------------------------------------ nmllm decode
def _decode_argv(model: Path, out: Path, *extra: str) -> list[str]:
    return ["decode", "--model", str(model), "--n-articles", "8", "--article-tokens", "24", "--max-new-tokens", "6",
            "--beam", "2", "--timesteps", "2,4", "--samples", "2", "--out", str(out), *extra]


@pytest.mark.slow
def test_decode_sigkill_then_resume_equals_uninterrupted_run(tiny_ckpt, tmp_path, monkeypatch, capsys):
    from experiments import decode

    ref = tmp_path / "ref"
    assert main(_decode_argv(tiny_ckpt, ref, "--no-progress")) == 0
    out = tmp_path / "run"
    partial = out / "results.partial.json"
    stored = _kill_after_first_point(_decode_argv(tiny_ckpt, out), partial, "article ")
    assert 1 <= len(stored) < 8 and not (out / "results.json").exists()

    before = partial.read_bytes()
    capsys.readouterr()
    assert main(_decode_argv(tiny_ckpt, out, "--no-progress", "--beam", "3")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds results of other settings: beam=2 there, beam=3 now" in err
    assert partial.read_bytes() == before

    articles = _count_calls(monkeypatch, decode, "_article")
    assert main(_decode_argv(tiny_ckpt, out, "--no-progress")) == 0
    assert len(articles) == 8 - len(stored)                 # the stored articles are not decoded again
    assert (_strip(json.loads((out / "results.json").read_text())) ==
            _strip(json.loads((ref / "results.json").read_text())))
    assert not partial.exists()


@pytest.mark.slow
def test_prune_records_carry_provenance(prune_reference, tiny_ckpt, tmp_path):
    assert main(_prune_argv(tiny_ckpt, tmp_path, "--ablation", "--no-progress")) == 0
    for record in (prune_reference, json.loads((tmp_path / "pruning_ablation.json").read_text())):
        p = record["provenance"]
        assert {"git_sha", "command", "packages", "machine", "load_average", "date"} <= set(p) and p["machine"]


# ------------------------------------------------------------------------------------ nmllm ablation
@pytest.fixture(scope="module")
def ablation_checkpoints(tmp_path_factory):
    from test_ablation import save_checkpoints

    return save_checkpoints(tmp_path_factory.mktemp("ablation_ckpts"))


@pytest.mark.slow
def test_ablation_sigkill_then_resume_equals_uninterrupted_run(ablation_checkpoints, tmp_path, monkeypatch, capsys):
    from experiments import ablation
    from test_ablation import small_argv

    def argv(out: Path, *extra: str) -> list[str]:
        return ["ablation", *small_argv(ablation_checkpoints, out), *extra]

    ref = tmp_path / "ref"
    assert main(argv(ref, "--no-progress")) == 0
    out = tmp_path / "run"
    partial = out / "ablation.partial.json"
    stored = _kill_after_first_point(argv(out), partial, "row ")
    assert any(k.startswith("cell ") for k in stored) and 1 <= sum(k.startswith("row ") for k in stored) < len(ablation.ROWS)
    assert not (out / "ablation.json").exists()

    before = partial.read_bytes()
    capsys.readouterr()
    assert main(argv(out, "--no-progress", "--beam", "3")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds results of other settings: beam=2 there, beam=3 now" in err
    assert partial.read_bytes() == before                   # refused before anything was loaded or written

    puts = _count_calls(monkeypatch, Results, "put")
    assert main(argv(out, "--no-progress")) == 0
    assert puts and not {key for _, key, _ in puts} & set(stored)   # no stored cell or row is measured again
    for name in ("ablation.json", "mixers.json"):
        assert _strip(json.loads((out / name).read_text())) == _strip(json.loads((ref / name).read_text())), name
    assert json.loads((out / "ablation.json").read_text())["provenance"]["git_sha"] is not None
    assert not partial.exists()


# ------------------------------------------------------------------------------------ nmllm spike study
@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    from test_spike_convert import save_tiny_llama

    return save_tiny_llama(tmp_path_factory.mktemp("tiny_llama"), hidden=32, layers=1, heads=2, kv_heads=1)


def _study_argv(model: Path, out: Path, tmp: Path, points: str, *extra: str) -> list[str]:
    return ["spike", "study", "--model", str(model), "--max-tokens", "48", "--window", "32", "--stride", "16",
            "--points", points, "--calib-tokens", "64", "--calib-cache", str(tmp / "calib.pt"), "--threads", "1",
            "--no-progress", "--out", str(out), *extra]


@pytest.mark.slow
def test_spike_study_is_bound_to_its_settings_and_written_atomically(tiny_llama, tmp_path, monkeypatch, capsys):
    import experiments.resume as resume

    out = tmp_path / "study.json"
    assert main(_study_argv(tiny_llama, out, tmp_path, "rate:2")) == 0
    first = json.loads(out.read_text())
    assert set(first["points"]) == {"dense", "int8", "rate:2"}

    before = out.read_bytes()                               # other flags: refused, nothing relabelled
    capsys.readouterr()
    assert main(_study_argv(tiny_llama, out, tmp_path, "rate:2,rate:4", "--thresholds", "channel")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "thresholds='tensor' there, thresholds='channel' now" in err
    assert out.read_bytes() == before and first["settings"]["window"] == 32

    real = os.replace                                       # a kill while the second new point is written
    renames: list = []

    def torn(src, dst):
        renames.append(dst)
        if len(renames) == 2:
            raise OSError("killed")
        real(src, dst)
    monkeypatch.setattr(resume.os, "replace", torn)
    with pytest.raises(OSError, match="killed"):
        main(_study_argv(tiny_llama, out, tmp_path, "rate:2,rate:4,bitplane:2"))
    monkeypatch.undo()
    kept = json.loads(out.read_text())                      # whole: the earlier points and the first new one
    assert set(kept["points"]) == {"dense", "int8", "rate:2", "rate:4"}

    assert main(_study_argv(tiny_llama, out, tmp_path, "rate:2,rate:4,bitplane:2")) == 0
    done = json.loads(out.read_text())
    assert set(done["points"]) == {"dense", "int8", "rate:2", "rate:4", "bitplane:2"}
    assert all(done["points"][k] == first["points"][k] for k in first["points"])   # resumed, not measured again


@pytest.mark.parametrize("what", ["rouge", "perplexity"])
def test_eval_of_a_spiking_model_interrupted_then_resumed_equals_one_run(what, tiny_llama, tmp_path, monkeypatch,
                                                                        capsys):
    """A kill mid-run (raised at the third article / second batch) and a resume give the scores and the event
    counts of an uninterrupted run; another conversion is refused on the same resume file."""
    import models.eval.perplexity as perplexity
    import models.eval.rouge as rouge
    from models.text.corpus import data_root

    text = tmp_path / "wiki.txt"
    text.write_text((data_root() / "wikitext-2" / "wiki.test.raw").read_text(encoding="utf-8")[:3000])
    common = ["--model", str(tiny_llama), "--spike-coding", "rate", "--timesteps", "2", "--calib-tokens", "64",
              "--calib-cache", str(tmp_path / "calib.pt"), "--threads", "1", "--no-progress"]
    if what == "rouge":
        common = ["eval", "rouge", "--n-articles", "4", "--max-new-tokens", "3", "--max-article-tokens", "16", *common]
        module, name = rouge, "summarize"
    else:
        common = ["eval", "perplexity", "--data", str(text), "--max-tokens", "96", "--window", "32", "--stride", "16",
                  "--batch-size", "1", *common]
        module, name = perplexity.torch.nn.functional, "cross_entropy"
    whole, part, resume_file = tmp_path / "whole.json", tmp_path / "part.json", tmp_path / "run.resume.json"
    assert main([*common, "--json", str(whole)]) == 0
    real, calls = getattr(module, name), []

    def killed(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(perplexity, "SAVE_EVERY_S", 0.0)
    monkeypatch.setattr(module, name, killed)
    with pytest.raises(KeyboardInterrupt):
        main([*common, "--resume-file", str(resume_file), "--json", str(part)])
    monkeypatch.undo()
    assert resume_file.exists() and not part.exists()
    assert main([*common, "--resume-file", str(resume_file), "--json", str(part)]) == 0
    a, b = (_strip({k: v for k, v in json.loads(p.read_text()).items() if k != "provenance"}) for p in (whole, part))
    assert a == b and a["events_per_token"]["synaptic_ops"] > 0
    capsys.readouterr()
    other = [x if x != "rate" else "bitplane" for x in common]
    assert main([*other, "--resume-file", str(resume_file)]) == 2
    assert "delete it" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ nmllm sweep --resume
def test_sweep_resume_runs_failed_points_again(tmp_path, monkeypatch):
    import sim.sweep.point as point
    from sim.sweep.engine import run_sweep
    from sim.sweep.spec import load_spec
    from sim.sweep.store import Store

    spec = load_spec({"name": "retry", "models": ["tiny"], "knobs": {"preset": ["loihi1"], "fill": [0.5, 0.75, 1.0]}})
    real = point.system_metrics
    failures = {"left": 2}

    def flaky(model, knobs, *a):                            # fill 0.75 fails twice, then works
        if knobs["fill"] == 0.75 and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError(f"flaky, {failures['left']} failures left")
        return real(model, knobs, *a)
    monkeypatch.setattr(point, "system_metrics", flaky)
    store = Store(tmp_path / "sweep.sqlite")

    def row() -> dict:
        return next(r for r in store.rows() if r["knob.fill"] == 0.75)

    runs = [run_sweep(spec, store, workers=1, processes=False, progress=False)]
    assert row()["status"] == "failed" and row()["error"] == "RuntimeError: flaky, 1 failures left"
    runs.append(run_sweep(spec, store, workers=1, processes=False, progress=False, resume=True))
    assert (row()["status"], row()["error"], row()["computations"]) == ("failed", "RuntimeError: flaky, 0 failures left", 2)
    runs.append(run_sweep(spec, store, workers=1, processes=False, progress=False, resume=True))
    assert (row()["status"], row()["error"], row()["computations"]) == ("ok", None, 3)
    assert [(r.ok, r.failed, r.skipped, r.retried) for r in runs] == [(2, 1, 0, 0), (0, 1, 2, 1), (1, 0, 2, 1)]
    assert row()["energy_per_token_j"] > 0
    assert [r["computations"] for r in store.rows() if r["knob.fill"] != 0.75] == [1, 1]
    store.close()
