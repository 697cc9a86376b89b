"""Training: schedule, token cache, determinism, and a real SIGKILL followed by --resume."""

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from models.text.corpus import TokenWindows, build_token_cache, corpus_files
from models.text.tokenizer import EOS_ID, train_tokenizer
from models.mmfree.train import TrainConfigError, Trainer, load_train_config, lr_lambda, read_log
from nmllm.commands.train import register

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "models" / "configs" / "tiny.yaml"


def tiny_cfg(tmp_path, name="cfg.yaml", **train):
    raw = yaml.safe_load(TINY.read_text())
    raw["train"].update(train)
    p = tmp_path / name
    p.write_text(yaml.safe_dump(raw))
    return p


def losses(run_dir):
    return {r["step"]: r["loss"] for r in read_log(run_dir) if "loss" in r}


def test_lr_schedule_warmup_then_cosine():
    assert lr_lambda(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_lambda(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_lambda(10, 10, 100, 0.1) == pytest.approx(1.0)
    assert lr_lambda(55, 10, 100, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_lambda(100, 10, 100, 0.1) == pytest.approx(0.1)
    assert lr_lambda(500, 10, 100, 0.1) == pytest.approx(0.1)


def test_config_errors(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("train: {batch_sise: 4}\n")
    with pytest.raises(TrainConfigError, match=r"unknown key\(s\) \['batch_sise'\] in section 'train'"):
        load_train_config(p)
    p.write_text("optimizer: {}\n")
    with pytest.raises(TrainConfigError, match=r"unknown section\(s\) \['optimizer'\]"):
        load_train_config(p)
    p.write_text("model: {preset: tiny, hidden_size: 0}\n")
    with pytest.raises(ValueError, match=r"hidden_size must be a positive integer, got 0"):
        load_train_config(p)


def test_token_cache_is_built_once(tmp_path):
    files = corpus_files()[:2]
    tok = train_tokenizer(400, files[:1], max_bytes=50_000)
    meta = build_token_cache(tok, files, tmp_path, EOS_ID, val_fraction=0.05, max_bytes=80_000)
    mtime = (tmp_path / "train.bin").stat().st_mtime_ns
    again = build_token_cache(tok, files, tmp_path, EOS_ID, val_fraction=0.05, max_bytes=80_000)
    assert again == meta and (tmp_path / "train.bin").stat().st_mtime_ns == mtime
    train = TokenWindows(tmp_path / "train.bin")
    assert len(train) == meta["tokens"]["train"] and meta["tokens"]["val"] > 0
    assert int(train.tokens[-1]) == EOS_ID
    # the data position is the generator state: restoring it replays the same windows
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    a = train.sample(rng, 3, 16)
    rng.bit_generator.state = state
    assert torch.equal(a, train.sample(rng, 3, 16)) and a.shape == (3, 17)
    # a different byte limit is a different cache
    build_token_cache(tok, files, tmp_path, EOS_ID, val_fraction=0.05, max_bytes=60_000)
    assert (tmp_path / "train.bin").stat().st_mtime_ns != mtime


def test_same_seed_gives_same_curve_and_training_learns(tmp_path):
    cfg = load_train_config(tiny_cfg(tmp_path))
    s1 = Trainer(cfg, tmp_path / "a", progress=False).run()
    s2 = Trainer(cfg, tmp_path / "b", progress=False).run()
    la, lb = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert list(la) == list(range(1, 31))
    assert la == lb and s1["val_loss"] == s2["val_loss"]
    assert la[30] < la[1] - 0.5                      # it learns
    vals = [r["val_loss"] for r in read_log(tmp_path / "a") if "val_loss" in r and "loss" in r]
    assert len(vals) == 3 and vals[-1] < vals[0]
    final = tmp_path / "a" / "final"
    assert sorted(p.name for p in final.iterdir()) == ["config.json", "model.safetensors", "tokenizer.json"]
    cfg2 = dict(cfg, seed=cfg["seed"] + 1)
    Trainer(cfg2, tmp_path / "c", progress=False).run()
    assert losses(tmp_path / "c") != la


@pytest.mark.slow
def test_kill_and_resume_reproduces_the_uninterrupted_run(tmp_path):
    cfg_path = tiny_cfg(tmp_path, max_steps=40, ckpt_every=10, eval_every=10)
    cfg = load_train_config(cfg_path)
    Trainer(cfg, tmp_path / "ref", progress=False).run()
    ref = losses(tmp_path / "ref")

    run = tmp_path / "killed"
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONWARNINGS="error")
    proc = subprocess.Popen([sys.executable, "-m", "nmllm.cli", "train", str(cfg_path), "--out", str(run),
                             "--no-progress", "--step-delay", "0.15"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    latest = run / "checkpoints" / "LATEST"
    deadline = time.time() + 120
    while time.time() < deadline:
        if latest.exists() and int(latest.read_text().strip().split("-")[1]) >= 20:
            break
        if proc.poll() is not None:
            pytest.fail(f"training exited early: {proc.stderr.read().decode()}")
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("no checkpoint at step 20 within 120 s")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (run / "final").exists()

    ckpt_step = int(latest.read_text().strip().split("-")[1])
    reached = max(losses(run))
    assert ckpt_step >= 20 and reached - ckpt_step <= 10      # at most the last interval is lost
    (run / "checkpoints" / ".tmp-step-00000030-99999").mkdir()   # as a kill during a save leaves it

    summary = Trainer(cfg, run, progress=False).run(resume=True)
    assert summary["step"] == 40
    got = losses(run)
    assert list(got) == list(range(1, 41))                    # no duplicated or missing steps
    for step in range(1, 41):
        assert got[step] == pytest.approx(ref[step], rel=1e-6, abs=1e-6), step
    assert not list((run / "checkpoints").glob(".tmp-*"))      # torn temporaries are cleared
    events = [r for r in read_log(run) if r.get("event") == "resume"]
    assert [e["step"] for e in events] == [ckpt_step]


def test_stop_after_then_resume_with_a_new_total(tmp_path):
    cfg = load_train_config(tiny_cfg(tmp_path, max_steps=30, ckpt_every=10, eval_every=10))
    s = Trainer(cfg, tmp_path / "r", progress=False, stop_after=15).run()
    assert s["event"] == "stopped" and s["step"] == 15 and not (tmp_path / "r" / "final").exists()
    assert (tmp_path / "r" / "checkpoints" / "LATEST").read_text().strip() == "step-00000015"
    cfg["train"]["max_steps"] = 20
    s = Trainer(cfg, tmp_path / "r", progress=False).run(resume=True)
    assert s["event"] == "done" and s["step"] == 20 and (tmp_path / "r" / "final" / "model.safetensors").exists()
    log = read_log(tmp_path / "r")
    assert [r["step"] for r in log if "loss" in r] == list(range(1, 21))
    assert [r for r in log if r.get("event") == "resume"][0]["max_steps"] == 20
    # the schedule after the resume is fitted to the new total (the lr logged at step s is lambda(s - 1))
    lrs = {r["step"]: r["lr"] for r in log if "lr" in r}
    assert lrs[20] == pytest.approx(cfg["train"]["lr"] * lr_lambda(19, 5, 20, 0.1))


def test_resume_without_checkpoint_starts_fresh(tmp_path):
    cfg = load_train_config(tiny_cfg(tmp_path, max_steps=5, ckpt_every=5, eval_every=5))
    s = Trainer(cfg, tmp_path / "r", progress=False).run(resume=True)
    assert s["step"] == 5 and math.isfinite(s["final_loss"])


def test_register_adds_train_subcommand():
    parser = argparse.ArgumentParser(prog="nmllm")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    args = parser.parse_args(["train", "models/configs/tiny.yaml", "--out", "runs/x", "--resume"])
    assert args.command == "train" and args.resume and args.out == "runs/x" and callable(args.func)


def test_shipped_configs_are_valid():
    for p in sorted((ROOT / "models" / "configs").glob("*.yaml")):
        cfg = load_train_config(p)
        assert cfg["train"]["max_steps"] > 0, p
    cfg = load_train_config(ROOT / "models" / "configs" / "bundled.yaml")
    assert cfg["model"]["preset"] == "bundled"
    assert json.loads(json.dumps(cfg))  # plain data, loggable
