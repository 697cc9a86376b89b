"""In-situ adaptation on memristor arrays: the bundled model adapted to news where the adapter's weights live
(``nmllm adapt``, ``experiments/adapt.py``).

What the arrays hold: the integer program stays as it is (ternary, bit-exact); beside its ``lm_head`` an
**analog adapter** ``A`` (vocab x hidden, on its own arrays of pulsed devices, starting at 0) adds
``alpha * A x`` to the logits, ``x`` being the ``lm_head`` input scaled into [-1, 1]. The adapter sits at the
output because there the gradient of the token loss is one outer product, ``alpha (softmax - onehot) x^T``,
which the arrays apply as stochastic pulses (:mod:`sim.crossbar.pulsed_update`) without a backward pass
through the integer layers below; the error vector is computed digitally from the logits. Adapted logits
are real-valued: nothing of the adapter is bit-exact.

The run: one pass over ``--train-tokens`` tokens of CNN/DailyMail test articles from ``--news-train-first``
on, a pulsed update after every token, then token perplexity on ``--eval-tokens`` tokens of later articles
(from ``--news-eval-first``) and on WikiText-2 test (forgetting), before and after. Learners
(:data:`RUNS`): the same adapter trained digitally in float (the reference), plain pulsed SGD on every device
preset (:mod:`sim.crossbar.device_presets`), and Tiki-Taka (:mod:`sim.crossbar.tiki_taka`) on the
asymmetric ones. Cost per adapted token: pulses, write energy, update time (``bl`` pulse slots per update,
all devices in parallel), pulses per device and the share of the endurance one token uses; Tiki-Taka's
one-time symmetry-point search and reference programming are counted apart (``setup_pulses``).

Each finished run is kept in ``<out>/adapt.partial.json`` (:mod:`experiments.resume`); the model's
features are cached under ``runs/adapt/``. Output: ``<out>/adapt.json``, ``adapt_quality.png``,
``adapt_curves.png``; page ``docs/in_situ.md``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from experiments.provenance import provenance
from experiments.resume import Results, write_json

__all__ = ["RUNS", "check_args", "features", "adapt_run", "plot", "register"]

#: Every learner of the default study: ``"float"`` or ``"<rule>/<preset>"``.
RUNS = ("float", "sgd/ideal", "sgd/ecram", "sgd/reram_sb", "sgd/reram_es", "tiki_taka/ecram",
        "tiki_taka/reram_sb", "tiki_taka/reram_es")
RULES = ("sgd", "tiki_taka")
CURVE_EVERY = 128


def check_args(args) -> list[str]:
    """Validate every option before anything slow loads; returns the runs. One-line ValueError otherwise."""
    from models.eval.options import check_options
    from sim.crossbar.device_presets import preset
    from sim.crossbar.pulsed_update import PulseUpdate

    check_options(window=args.window)
    for name in ("train_tokens", "eval_tokens", "bl", "transfer_every", "sp_pulses"):
        v = getattr(args, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "sp_pulses" else 1):
            raise ValueError(f"--{name.replace('_', '-')} must be a {'non-negative' if name == 'sp_pulses' else 'positive'} "
                             f"integer, not {v!r}")
    for name in ("lr", "lr_transfer", "alpha", "gamma"):
        v = getattr(args, name)
        if not (isinstance(v, float) and math.isfinite(v) and (v > 0 or name == "gamma" and v == 0)):
            raise ValueError(f"--{name.replace('_', '-')} must be a {'non-negative' if name == 'gamma' else 'positive'} "
                             f"number, not {v!r}")
    if args.news_eval_first <= args.news_train_first:
        raise ValueError(f"--news-eval-first ({args.news_eval_first}) must come after --news-train-first "
                         f"({args.news_train_first}) so the evaluation articles are not trained on")
    runs = [r.strip() for r in args.runs.split(",") if r.strip()] if args.runs else list(RUNS)
    if not runs:
        raise ValueError("--runs names no run")
    for r in runs:
        if r == "float":
            continue
        rule, _, name = r.partition("/")
        if rule not in RULES:
            raise ValueError(f"run {r!r}: rule must be one of {', '.join(RULES)} (as RULE/PRESET) or 'float'")
        device = preset(name)
        PulseUpdate(args.lr, args.bl).check(device)
        if rule == "tiki_taka":
            PulseUpdate(args.lr_transfer, args.bl).check(device)
    return runs


class _Capture:
    """Wraps the view's ``lm_head``: keeps its input (the final normalised hidden state)."""

    def __init__(self, head):
        self.head, self.last = head, None

    def __call__(self, u, *a):
        self.last = u
        return self.head(u, *a)


def features(model_dir: str, texts: dict[str, str], tokens: dict[str, int], window: int, progress: bool) -> dict:
    """Per text: the ``lm_head`` input (int), the integer program's logits (float32) and the target of every
    one of its first ``tokens`` tokens (windows of ``window`` led by ``</s>``)."""
    import numpy as np
    import torch
    from tqdm import tqdm

    from models.mmfree.checkpoint import load_checkpoint
    from models.program import numformat as nf
    from models.program.integer_program import IntegerProgram
    from models.program.integer_view import IntegerView
    from models.text.sources import token_windows
    from models.text.tokenizer import load_tokenizer

    tok = load_tokenizer(model_dir)
    view = IntegerView(IntegerProgram.from_model(load_checkpoint(model_dir)))
    view.lm_head = cap = _Capture(view.lm_head)
    out = {}
    for name, text in texts.items():
        hs, logits, targets = [], [], []
        for w in tqdm(token_windows(tok, text, tokens[name], window), desc=f"features {name}", unit="window",
                      disable=not progress):
            ids = torch.tensor([w])
            lg, _ = view.forward(ids)
            hs.append(cap.last[0, :-1].numpy().astype(np.int32))
            logits.append((lg[0, :-1].to(torch.float32) / (1 << nf.OUT_FRAC)).numpy())
            targets.append(np.asarray(w[1:], dtype=np.int64))
        out[name] = {"h": np.concatenate(hs), "logits": np.concatenate(logits), "targets": np.concatenate(targets)}
    return out


def _nll(logits, targets) -> "np.ndarray":
    import numpy as np

    m = logits.max(axis=1, keepdims=True)
    lse = (m[:, 0] + np.log(np.exp(logits - m).sum(axis=1)))
    return lse - logits[np.arange(len(targets)), targets]


def _ppl(feat: dict, scale: float, alpha: float, w) -> float:
    import numpy as np

    logits = feat["logits"] if w is None else feat["logits"] + alpha * (_x(feat["h"], scale) @ w.T)
    return float(math.exp(np.mean(_nll(logits, feat["targets"]))))


def _x(h, scale: float):
    import numpy as np

    return np.clip(h.astype(np.float64) / scale, -1.0, 1.0)


class _FloatSGD:
    """The same adapter trained digitally in float64: the reference."""

    def __init__(self, shape, lr):
        import numpy as np

        self.w, self.lr = np.zeros(shape), lr

    def weights(self):
        return self.w

    def update(self, x, d):
        self.w -= self.lr * d[:, None] * x[None, :]


def _learner(run: str, shape, args):
    from sim.crossbar.device_presets import preset
    from sim.crossbar.pulsed_update import AnalogSGD, PulseUpdate
    from sim.crossbar.tiki_taka import TikiTaka

    if run == "float":
        return _FloatSGD(shape, args.lr)
    rule, _, name = run.partition("/")
    update = PulseUpdate(args.lr, args.bl)
    if rule == "sgd":
        return AnalogSGD(preset(name), shape, update, seed=args.seed)
    return TikiTaka(preset(name), shape, update, lr_transfer=args.lr_transfer, transfer_every=args.transfer_every,
                    gamma=args.gamma, sp_pulses=args.sp_pulses, seed=args.seed)


def adapt_run(run: str, feats: dict, scale: float, args, progress: bool = True) -> dict:
    """Adapt with learner ``run`` over the training tokens; quality after and the cost of the updates."""
    import numpy as np
    from tqdm import tqdm

    train = feats["news_train"]
    vocab = train["logits"].shape[1]
    shape = (vocab, train["h"].shape[1])
    learner = _learner(run, shape, args)
    setup = None if run == "float" else {"pulses": int(learner.stats.pulses),
                                          "per_device": [a.pulses.copy() for a in learner.devices]}
    x_all, curve, nll_sum = _x(train["h"], scale), [], 0.0
    t0 = time.perf_counter()
    for t in tqdm(range(len(train["targets"])), desc=run, unit="token", disable=not progress, leave=False):
        x = x_all[t]
        logits = train["logits"][t] + args.alpha * (learner.weights() @ x)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        y = train["targets"][t]
        nll_sum -= math.log(max(p[y], 1e-300))
        p[y] -= 1.0
        learner.update(x, args.alpha * p)
        if (t + 1) % CURVE_EVERY == 0:
            curve.append(nll_sum / CURVE_EVERY)
            nll_sum = 0.0
    seconds = time.perf_counter() - t0
    w = learner.weights()
    tokens = len(train["targets"])
    rec = {"run": run, "news_ppl": _ppl(feats["news_eval"], scale, args.alpha, w),
           "wiki_ppl": _ppl(feats["wiki"], scale, args.alpha, w), "train_nll_curve": curve,
           "adapter_abs_mean": float(np.abs(w).mean()), "adapter_abs_max": float(np.abs(w).max()),
           "wall_s": round(seconds, 1)}
    if run != "float":
        dev = learner.devices[0].device
        pulses = sum(a.pulses - p0 for a, p0 in zip(learner.devices, setup["per_device"]))
        s = learner.stats
        adapt_pulses = s.pulses - setup["pulses"]
        rec["cost"] = {
            "setup_pulses": setup["pulses"], "setup_energy_j": setup["pulses"] * dev.pulse_energy_j,
            "pulses": int(adapt_pulses), "pulses_per_token": adapt_pulses / tokens,
            "write_energy_per_token_j": adapt_pulses * dev.pulse_energy_j / tokens,
            "update_time_per_token_s": s.slots * dev.pulse_time_s / tokens,
            "devices": int(sum(a.w.size for a in learner.devices)),
            "pulses_per_device_per_token_mean": float(pulses.mean()) / tokens,
            "pulses_per_device_per_token_max": float(pulses.max()) / tokens,
            "endurance_per_token_max": float(pulses.max()) / tokens / dev.endurance,
            "transfer_reads": int(s.reads), "clipped_probabilities": int(s.clipped), **s.extra}
    return rec


def _texts(args) -> tuple[dict, dict, dict]:
    from models.eval.perplexity import default_data_path
    from models.text.sources import news_text

    chars = 8 * max(args.train_tokens, args.eval_tokens)
    train, train_end = news_text(args.news_train_first, chars)
    if args.news_eval_first < train_end:
        raise ValueError(f"--news-eval-first {args.news_eval_first} overlaps the training articles "
                         f"{args.news_train_first}..{train_end - 1}: use {train_end} or more")
    wiki = default_data_path()
    texts = {"news_train": train, "news_eval": news_text(args.news_eval_first, chars)[0],
             "wiki": wiki.read_text(encoding="utf-8")[:chars]}
    tokens = {"news_train": args.train_tokens, "news_eval": args.eval_tokens, "wiki": args.eval_tokens}
    data = {"news_train": f"CNN/DailyMail test articles {args.news_train_first}..{train_end - 1}, first "
                          f"{args.train_tokens} tokens, one pass",
            "news_eval": f"CNN/DailyMail test articles {args.news_eval_first}.., first {args.eval_tokens} tokens",
            "wiki": f"WikiText-2 test ({wiki.name}), first {args.eval_tokens} tokens"}
    return texts, tokens, data


def _cached_features(args, texts, tokens, progress) -> dict:
    import hashlib
    import json

    import numpy as np

    weights = Path(args.model) / "model.safetensors"
    key = hashlib.sha256(json.dumps([hashlib.sha256(weights.read_bytes()).hexdigest(), texts, tokens,
                                     args.window], sort_keys=True).encode()).hexdigest()[:16]
    path = Path(args.cache) / f"features_{key}.npz"
    if path.is_file():
        z = np.load(path)
        return {n: {k: z[f"{n}.{k}"] for k in ("h", "logits", "targets")} for n in texts}
    feats = features(args.model, texts, tokens, args.window, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **{f"{n}.{k}": v for n, f in feats.items() for k, v in f.items()})
    tmp.replace(path)
    return feats


def run(args) -> int:
    """``nmllm adapt``: every run of ``--runs``, resumable; JSON and plots into ``--out``."""
    runs = check_args(args)
    import numpy as np

    from sim.crossbar.device_presets import PRESETS, PULSE

    texts, tokens, data = _texts(args)
    out = Path(args.out)
    settings = {k: getattr(args, k) for k in ("model", "train_tokens", "eval_tokens", "news_train_first",
                                              "news_eval_first", "window", "lr", "lr_transfer", "alpha", "bl",
                                              "transfer_every", "gamma", "sp_pulses", "seed")}
    res = Results(out / "adapt.partial.json", settings)
    progress = not args.no_progress
    feats = _cached_features(args, texts, tokens, progress) if len(res.points) < len(runs) + 1 else None
    if "before" not in res:
        scale = float(np.percentile(np.abs(feats["news_train"]["h"]), 99.9)) or 1.0
        res.put("before", {"x_scale": scale, "news_ppl": _ppl(feats["news_eval"], scale, args.alpha, None),
                           "wiki_ppl": _ppl(feats["wiki"], scale, args.alpha, None)})
    before = res["before"]
    print(f"before: news ppl {before['news_ppl']:.2f}, wiki ppl {before['wiki_ppl']:.2f}")
    for r in res.pending(runs, desc="adapt", unit="run", progress=progress):
        rec = res.put(r, adapt_run(r, feats, before["x_scale"], args, progress))
        print(f"{r}: news ppl {rec['news_ppl']:.2f}, wiki ppl {rec['wiki_ppl']:.2f}"
              + (f", {rec['cost']['pulses_per_token']:.0f} pulses/token" if "cost" in rec else ""))
    devices = {n: {k: v for k, v in vars(PRESETS[n]).items()} for n in {r.split("/")[-1] for r in runs if r != "float"}}
    record = {"settings": settings, "data": data, "pulse": PULSE, "devices": devices, "before": before,
              "adapter": "analog adapter beside lm_head: logits + alpha * A x, A vocab x hidden on pulsed devices",
              "runs": [res[r] for r in runs], "provenance": provenance(seed=args.seed)}
    res.finish(out / "adapt.json", record)
    paths = plot(record, out)
    print(f"results {out / 'adapt.json'}; plots {', '.join(map(str, paths))}")
    return 0


def plot(record: dict, out_dir) -> list[Path]:
    """``adapt_quality.png`` (perplexity after against write energy per token) and ``adapt_curves.png``
    (training loss over the adaptation tokens)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    b, runs = record["before"], record["runs"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    names = [r["run"] for r in runs]
    pos = range(len(runs))
    for ax, key, label in ((axes[0], "news_ppl", "news (adapted domain)"), (axes[1], "wiki_ppl", "WikiText-2 (forgetting)")):
        ax.bar(pos, [r[key] for r in runs], color=["0.4" if n == "float" else "C0" if n.startswith("sgd") else "C1"
                                                   for n in names])
        ax.axhline(b[key], color="k", ls="--", lw=1, label=f"before adaptation {b[key]:.1f}")
        ax.set_xticks(list(pos), names, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("token perplexity")
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=8)
    fig.tight_layout()
    p1 = out_dir / "adapt_quality.png"
    fig.savefig(p1, dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in runs:
        xs = [CURVE_EVERY * (i + 1) for i in range(len(r["train_nll_curve"]))]
        ax.plot(xs, r["train_nll_curve"], label=r["run"], lw=2 if r["run"] == "float" else 1)
    ax.set_xlabel("adaptation tokens")
    ax.set_ylabel(f"training NLL (mean over {CURVE_EVERY} tokens)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    p2 = out_dir / "adapt_curves.png"
    fig.savefig(p2, dpi=110)
    plt.close(fig)
    return [p1, p2]


def register(subparsers) -> None:
    """Add the ``adapt`` subcommand."""
    p = subparsers.add_parser("adapt", help="in-situ adaptation of an analog adapter on memristor arrays: quality "
                              "before/after and pulses, energy, time per token", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/bundled", help="checkpoint directory (default models/bundled)")
    p.add_argument("--out", default="docs/in_situ", help="directory for adapt.json and the plots")
    p.add_argument("--runs", default=None, help=f"comma-separated runs (default: {','.join(RUNS)})")
    p.add_argument("--train-tokens", type=int, default=2048, help="adaptation tokens, one pass (default 2048)")
    p.add_argument("--eval-tokens", type=int, default=2048, help="evaluation tokens per text (default 2048)")
    p.add_argument("--news-train-first", type=int, default=0, help="first training article (default 0)")
    p.add_argument("--news-eval-first", type=int, default=1000, help="first evaluation article (default 1000)")
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.01, help="learning rate, in device weight units (default 0.01)")
    p.add_argument("--lr-transfer", type=float, default=0.01, help="Tiki-Taka transfer learning rate (default 0.01)")
    p.add_argument("--transfer-every", type=int, default=1, help="Tiki-Taka: updates per column transfer (default 1)")
    p.add_argument("--gamma", type=float, default=0.0,
                   help="Tiki-Taka: weight of the fast array in the read weights C + gamma A (default 0)")
    p.add_argument("--sp-pulses", type=int, default=1000,
                   help="Tiki-Taka: alternating pulses that find the symmetry point (default 1000)")
    p.add_argument("--alpha", type=float, default=4.0, help="logit gain of the adapter (default 4)")
    p.add_argument("--bl", type=int, default=31, help="pulse slots per update (default 31)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", default="runs/adapt", help="feature cache directory (default runs/adapt)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
