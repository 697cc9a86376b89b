"""Quantization-aware training of the MatMul-free LM on the CPU (``nmllm train``).

Usage (the command is :mod:`nmllm.commands.train`)::

    nmllm train models/configs/bundled.yaml --out runs/bundled            # start
    nmllm train models/configs/bundled.yaml --out runs/bundled --resume   # continue after a kill
    ... --stop-after N      # checkpoint and stop after step N (the schedule still spans max_steps)
    ... --resume --max-steps M   # continue with the cosine schedule re-fitted to a new total M

The YAML config has four sections (see ``models/configs/*.yaml``)::

    seed: 1234
    model:      {preset: bundled, <any MMFreeConfig field>: ...}
    tokenizer:  {vocab_size: 4096, max_bytes: null}          # BPE trained on the corpus, once per run
    data:       {root: null, val_fraction: 0.01, max_bytes: null}
    train:      {batch_size, seq_len, max_steps, lr, min_lr_ratio, warmup_steps, weight_decay,
                 beta1, beta2, grad_clip, eval_every, eval_batches, ckpt_every, log_every, threads,
                 init_from, act_l1}

Fine-tuning: ``train.init_from`` (or ``--init-from``) starts from a checkpoint's weights and tokenizer
instead of the initialisation (the model section must give the same shapes, plus any sparsity option of
:class:`~models.mmfree.config.MMFreeConfig`: ``glu_activation``, ``weight_zero_threshold``,
``input_sparsity``); ``train.act_l1`` adds ``act_l1`` times the mean over BitLinears of ``mean|y| / max|y|``
of their normed inputs (the input codes' mean magnitude over 127) to the loss: an activation-sparsity
penalty (the logged ``loss`` stays the cross-entropy, ``code_l1`` the penalty).

What a run does, in ``--out``:

* ``tokenizer.json`` — trained once on the corpus (skipped when it exists);
* ``cache/{train,val}.bin`` — the corpus tokenized once into uint16 (``models.text.corpus``);
* training with the ternary/int8 quantisers in the forward pass and straight-through gradients, AdamW
  (weight decay on the matrices only), linear warm-up then cosine decay to ``min_lr_ratio * lr``,
  gradient-norm clipping, a tqdm bar with loss and tokens/s;
* ``train_log.jsonl`` — one JSON line per logged step (loss, lr, grad norm, tokens, tokens/s) and per
  validation (``val_loss`` on a fixed held-out slice);
* ``checkpoints/step-XXXXXXXX/`` every ``ckpt_every`` steps: ``config.json`` + ``model.safetensors``
  (exact float32 weights) + ``trainer_state.pt`` (optimizer, scheduler, torch/numpy/python RNG states,
  the data sampler's state, step, tokens seen). Each is written under a temporary name and renamed,
  then ``checkpoints/LATEST`` is replaced atomically, so a kill at any moment leaves the previous
  checkpoint intact. ``--resume`` restarts from ``LATEST`` and loses at most the steps after it; the
  resumed run continues the exact batch sequence and reproduces the uninterrupted loss curve;
* ``final/`` — ``config.json``, ``model.safetensors``, ``tokenizer.json`` of the last step.

The same seed and thread count give the same loss curve.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from models.mmfree.checkpoint import load_state_dict, save_checkpoint
from models.mmfree.config import MMFreeConfig, preset
from models.mmfree.model import MMFreeForCausalLM, RMSNorm
from models.text.corpus import TokenWindows, build_token_cache, corpus_files, data_root
from models.text.tokenizer import (EOS_ID, check_matches_config, load_tokenizer, save_tokenizer,
                                   train_tokenizer)

TRAIN_DEFAULTS: dict[str, Any] = dict(
    batch_size=16, seq_len=256, max_steps=1000, lr=3e-3, min_lr_ratio=0.1, warmup_steps=100,
    weight_decay=0.05, beta1=0.9, beta2=0.95, grad_clip=1.0, eval_every=200, eval_batches=8,
    ckpt_every=200, log_every=1, threads=2, keep_checkpoints=2, init_from=None, act_l1=0.0,
)
DATA_DEFAULTS: dict[str, Any] = dict(root=None, val_fraction=0.01, max_bytes=None)
TOKENIZER_DEFAULTS: dict[str, Any] = dict(vocab_size=None, max_bytes=None)


class TrainConfigError(ValueError):
    """An invalid training config file."""


# ---------------------------------------------------------------------------- config
def load_train_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a training YAML and fill defaults. A file that cannot be read or parsed, a section that is not a
    mapping, an unknown key or a value of the wrong type raises :class:`TrainConfigError` (one line naming
    the file, the key and what it must be); a missing file raises ``FileNotFoundError``."""
    try:
        with open(path, encoding="utf-8") as fh:
            raw = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such training config; give a YAML file such as models/configs/tiny.yaml") from None
    except (OSError, UnicodeDecodeError) as err:
        raise TrainConfigError(f"{path}: cannot read the training config ({err})") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise TrainConfigError(f"{path}: not valid YAML ({getattr(err, 'problem', None) or err}{at}); fix the file") from None
    if not isinstance(raw, dict):
        raise TrainConfigError(f"{path}: expected a mapping at the top level")
    known = {"seed", "model", "tokenizer", "data", "train"}
    extra = set(raw) - known
    if extra:
        raise TrainConfigError(f"{path}: unknown section(s) {sorted(extra)}; expected {sorted(known)}")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TrainConfigError(f"{path}: seed must be an integer, got {seed!r}")
    cfg: dict[str, Any] = {"seed": seed}
    for name, defaults in (("train", TRAIN_DEFAULTS), ("data", DATA_DEFAULTS), ("tokenizer", TOKENIZER_DEFAULTS),
                           ("model", None)):
        section = raw.get(name) or {}
        if not isinstance(section, dict):
            raise TrainConfigError(f"{path}: section {name!r} must be a mapping of key: value, got {section!r}")
        if defaults is None:
            cfg[name] = dict(section)
            continue
        bad = set(section) - set(defaults)
        if bad:
            raise TrainConfigError(f"{path}: unknown key(s) {sorted(bad)} in section {name!r}; expected {sorted(defaults)}")
        for key, value in section.items():
            _check_setting(path, f"{name}.{key}", value, defaults[key])
        cfg[name] = {**defaults, **section}
    try:
        model_config(cfg)  # validate now
    except ValueError as err:
        raise TrainConfigError(f"{path}: {err}") from None
    return cfg


def _check_setting(path, key: str, value: Any, default: Any) -> None:
    """Raise :class:`TrainConfigError` unless ``value`` has the kind of ``default``: a number >= 0 for a float
    setting, a folder for ``data.root``, else a count (an integer >= 1; ``train.warmup_steps`` may be 0)."""
    if value is None and default is None:
        return
    if key in ("data.root", "train.init_from"):
        ok, want = isinstance(value, str), "a folder path"
    elif isinstance(default, float):
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
        want = "a number >= 0"
    else:
        low = 0 if key == "train.warmup_steps" else 1
        ok, want = not isinstance(value, bool) and isinstance(value, int) and value >= low, f"an integer >= {low}"
    if not ok:
        raise TrainConfigError(f"{path}: {key} must be {want}, got {value!r}")


def model_config(cfg: dict[str, Any]) -> MMFreeConfig:
    """The :class:`MMFreeConfig` of a training config (``preset`` plus field overrides)."""
    m = dict(cfg["model"])
    name = m.pop("preset", None)
    try:
        return preset(name, **m) if name is not None else MMFreeConfig(**m)
    except TypeError as err:
        raise TrainConfigError(f"model section: {err}") from None


def lr_lambda(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up over ``warmup`` steps, then cosine from 1 to ``min_ratio``."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = min(max(step - warmup, 0) / max(total - warmup, 1), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(model: MMFreeForCausalLM, weight_decay: float) -> list[dict]:
    """AdamW groups: decay on 2-D weights (BitLinear matrices, embedding), none on norms/lower bounds."""
    decay, no_decay = [], []
    norm_params = {id(m.weight) for m in model.modules() if isinstance(m, RMSNorm)}
    for p in model.parameters():
        if p.dim() >= 2 and id(p) not in norm_params and p is not model.model.lower_bounds:
            decay.append(p)
        else:
            no_decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# ---------------------------------------------------------------------------- run state
class Trainer:
    """One training run in ``out_dir`` (see the module docstring)."""

    def __init__(self, cfg: dict[str, Any], out_dir: str | os.PathLike, progress: bool = True,
                 step_delay: float = 0.0, stop_after: Optional[int] = None):
        self.cfg = cfg
        self.t = cfg["train"]
        self.stop_after = stop_after
        self.out = Path(out_dir)
        self.progress = progress
        self.step_delay = float(step_delay)
        self.out.mkdir(parents=True, exist_ok=True)
        self.ckpt_dir = self.out / "checkpoints"
        self.log_path = self.out / "train_log.jsonl"
        torch.set_num_threads(int(self.t["threads"]))
        self.mconf = model_config(cfg)

    # -------------------------------------------------------------- data
    def prepare_data(self) -> None:
        """Tokenizer (trained once) and token cache (tokenized once)."""
        files = corpus_files(data_root(self.cfg["data"]["root"]))
        tok_path = self.out / "tokenizer.json"
        init = self.t["init_from"]
        if not tok_path.exists() and init is not None:  # fine-tuning keeps the checkpoint's tokenizer
            save_tokenizer(load_tokenizer(Path(init)), tok_path)
        if tok_path.exists():
            tok = load_tokenizer(tok_path)
        else:
            vs = self.cfg["tokenizer"]["vocab_size"] or self.mconf.vocab_size
            tok = train_tokenizer(vs, files, self.cfg["tokenizer"]["max_bytes"], show_progress=False)
            save_tokenizer(tok, tok_path)
        check_matches_config(tok, self.mconf)
        self.tokenizer = tok
        self.meta = build_token_cache(tok, files, self.out / "cache", EOS_ID,
                                      val_fraction=self.cfg["data"]["val_fraction"],
                                      max_bytes=self.cfg["data"]["max_bytes"], progress=self.progress)
        self.train_data = TokenWindows(self.out / "cache" / "train.bin")
        self.val_data = TokenWindows(self.out / "cache" / "val.bin")

    # -------------------------------------------------------------- model / optimiser
    def build(self) -> None:
        """Fresh model, optimizer, scheduler and RNGs from the seed."""
        seed = self.cfg["seed"]
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed % 2**32)
        self.model = MMFreeForCausalLM(self.mconf)
        if self.t["init_from"] is not None:
            self._init_from(Path(self.t["init_from"]))
        self.model.train()
        t = self.t
        self.opt = torch.optim.AdamW(param_groups(self.model, t["weight_decay"]), lr=t["lr"],
                                     betas=(t["beta1"], t["beta2"]), eps=1e-8)
        total, warm, mr = t["max_steps"], t["warmup_steps"], t["min_lr_ratio"]
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda s: lr_lambda(s, warm, total, mr))
        self.rng = np.random.default_rng(seed)
        self.step = 0
        self.tokens_seen = 0

    def _init_from(self, src: Path) -> None:
        """Start from the weights of checkpoint ``src`` (fine-tuning): same shapes, this config's options."""
        sd = load_state_dict(src, self.mconf)
        if self.mconf.tie_word_embeddings:
            sd["lm_head.weight"] = sd["model.embeddings.weight"]
        self.model.load_state_dict(sd, strict=True)

    # -------------------------------------------------------------- checkpoints
    def _latest(self) -> Optional[Path]:
        p = self.ckpt_dir / "LATEST"
        if not p.exists():
            return None
        d = self.ckpt_dir / p.read_text().strip()
        return d if d.is_dir() else None

    def save(self) -> Path:
        """Write ``checkpoints/step-XXXXXXXX`` atomically and point ``LATEST`` at it."""
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        name = f"step-{self.step:08d}"
        final = self.ckpt_dir / name
        tmp = self.ckpt_dir / f".tmp-{name}-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        save_checkpoint(self.model, tmp)
        state = {
            "step": self.step, "tokens_seen": self.tokens_seen,
            "optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
            "data_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(),
            "python_rng": random.getstate(), "seed": self.cfg["seed"],
        }
        with open(tmp / "trainer_state.pt", "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        latest_tmp = self.ckpt_dir / f".LATEST.tmp-{os.getpid()}"
        latest_tmp.write_text(name + "\n")
        os.replace(latest_tmp, self.ckpt_dir / "LATEST")
        keep = int(self.t["keep_checkpoints"])
        olds = sorted(d for d in self.ckpt_dir.glob("step-*") if d.is_dir())
        for d in olds[:-keep] if keep > 0 else []:
            shutil.rmtree(d, ignore_errors=True)
        return final

    def resume(self) -> bool:
        """Restore from ``LATEST``; False if there is no checkpoint (then a fresh start)."""
        for torn in self.ckpt_dir.glob(".tmp-*"):   # left by a kill during a save
            shutil.rmtree(torn, ignore_errors=True)
        for torn in self.ckpt_dir.glob(".LATEST.tmp-*"):
            torn.unlink()
        d = self._latest()
        if d is None:
            return False
        self.build()
        sd = load_state_dict(d, self.mconf)
        if self.mconf.tie_word_embeddings:
            sd["lm_head.weight"] = sd["model.embeddings.weight"]
        self.model.load_state_dict(sd, strict=True)
        state = torch.load(d / "trainer_state.pt", map_location="cpu", weights_only=False)
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.rng.bit_generator.state = state["data_rng"]
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        self.step = int(state["step"])
        self.tokens_seen = int(state["tokens_seen"])
        self._truncate_log(self.step)
        return True

    def _truncate_log(self, step: int) -> None:
        """Drop log lines after ``step`` (they belong to the lost interval)."""
        if not self.log_path.exists():
            return
        keep = [ln for ln in self.log_path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
        tmp = self.log_path.with_name(self.log_path.name + ".tmp")
        tmp.write_text("".join(ln + "\n" for ln in keep))
        os.replace(tmp, self.log_path)

    def _log(self, rec: dict) -> None:
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")
            fh.flush()

    # -------------------------------------------------------------- steps
    def loss_on(self, batch: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy of a (B, T+1) batch."""
        logits = self.model(batch[:, :-1])
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))

    @torch.no_grad()
    def validate(self) -> float:
        """Mean loss over the fixed validation windows (the first ``eval_batches`` batches of val.bin)."""
        self.model.eval()
        tot, n = 0.0, 0
        for batch in self.val_data.sequential(self.t["batch_size"], self.t["seq_len"], self.t["eval_batches"]):
            tot += float(self.loss_on(batch)) * batch.shape[0]
            n += batch.shape[0]
        self.model.train()
        return tot / max(n, 1)

    def train_step(self) -> dict:
        """One optimiser step; returns its log record."""
        t = self.t
        batch = self.train_data.sample(self.rng, t["batch_size"], t["seq_len"])
        lr = self.opt.param_groups[0]["lr"]
        lam = float(t["act_l1"])
        layers = [m for _, m in self.model.named_bitlinears()] if lam else []
        for m in layers:
            m.track_l1 = True
        loss = self.loss_on(batch)
        rec = {}
        if layers:
            penalty = sum(m.code_l1 for m in layers) / len(layers)
            rec["code_l1"] = float(penalty.detach())
            for m in layers:
                m.track_l1, m.code_l1 = False, None
            ce, loss = loss, loss + lam * penalty
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), t["grad_clip"])
        self.opt.step()
        self.sched.step()
        self.step += 1
        self.tokens_seen += batch.shape[0] * (batch.shape[1] - 1)
        return {"step": self.step, "loss": float((ce if layers else loss).detach()), "lr": lr, "grad_norm": float(gnorm),
                "tokens": self.tokens_seen, **rec}

    def run(self, resume: bool = False) -> dict:
        """Train to ``max_steps``; returns a summary (final loss, last val loss, steps, wall time)."""
        self.prepare_data()
        resumed = self.resume() if resume else False
        if not resumed:
            self.build()
            if self.log_path.exists():
                self.log_path.unlink()
            self._log({"step": 0, "event": "start", "params": self.model.num_parameters(),
                       "config": self.mconf.to_dict(), "train": self.t, "seed": self.cfg["seed"],
                       "train_tokens": len(self.train_data), "val_tokens": len(self.val_data)})
        else:
            self._log({"step": self.step, "event": "resume", "max_steps": self.t["max_steps"]})
        t = self.t
        bar = None
        if self.progress:
            from tqdm import tqdm
            bar = tqdm(total=t["max_steps"], initial=self.step, desc="train", unit="step",
                       dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 30.0)
        last, val_loss = None, None
        t0, tok0 = time.perf_counter(), self.tokens_seen
        try:
            while self.step < t["max_steps"]:
                ts = time.perf_counter()
                rec = self.train_step()
                dt = time.perf_counter() - ts
                rec["tok_per_s"] = round((rec["tokens"] - tok0) / max(time.perf_counter() - t0, 1e-9), 1)
                rec["step_s"] = round(dt, 4)
                last = rec["loss"]
                if self.step % t["eval_every"] == 0 or self.step == t["max_steps"]:
                    val_loss = self.validate()
                    rec["val_loss"] = val_loss
                if self.step % t["log_every"] == 0 or "val_loss" in rec or self.step == t["max_steps"]:
                    self._log(rec)
                if bar is not None:
                    post = {"loss": f"{last:.3f}", "tok/s": f"{rec['tok_per_s']:.0f}"}
                    if val_loss is not None:
                        post["val"] = f"{val_loss:.3f}"
                    bar.set_postfix(post, refresh=False)
                    bar.update(1)
                if self.step % t["ckpt_every"] == 0 or self.step == t["max_steps"]:
                    self.save()
                if self.step_delay:
                    time.sleep(self.step_delay)
                if self.stop_after is not None and self.step >= self.stop_after:
                    if self.step % t["ckpt_every"] != 0:
                        self.save()
                    break
        finally:
            if bar is not None:
                bar.close()
        if self.step < t["max_steps"]:
            summary = {"step": self.step, "event": "stopped", "final_loss": last, "val_loss": val_loss,
                       "tokens": self.tokens_seen, "wall_s": round(time.perf_counter() - t0, 1)}
            self._log(summary)
            return summary
        final = self.out / "final"
        save_checkpoint(self.model, final)
        save_tokenizer(self.tokenizer, final)
        summary = {"step": self.step, "event": "done", "final_loss": last, "val_loss": val_loss,
                   "tokens": self.tokens_seen, "wall_s": round(time.perf_counter() - t0, 1)}
        self._log(summary)
        return summary


def read_log(run_dir: str | os.PathLike) -> list[dict]:
    """Records of ``train_log.jsonl``."""
    p = Path(run_dir) / "train_log.jsonl"
    return [json.loads(ln) for ln in p.read_text().splitlines() if ln.strip()]
