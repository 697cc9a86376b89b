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
all devices in parallel), line firings, pulses per device and the share of the endurance one token uses;
Tiki-Taka's one-time symmetry-point search and reference programming are counted apart (``setup_pulses``).

Comparisons on the same tokens and metrics: ``digital/intN``, a digital adapter of the same size (N-bit
fixed-point weights over the ideal device's range, the same SGD with stochastic rounding, its operations
counted and priced by :func:`sim.system.learning.digital_adapter_token`); and ``prune/...``, the
statistics-only domain update of ``nmllm prune`` (:mod:`experiments.pruning_sweep`: synaptic pruning at the
domain-shift sparsity with the sensitivities of its committed record, calibrated on held-out Wikipedia, then
its activation statistics updated on the adapter's training tokens), evaluated on the golden model. Every
analog adapter (and the float one) is also read through the crossbar periphery (``--reads``: 8-bit inputs on
1-bit DACs, an ADC of the given bits whose range is the worst case or fitted on the first training tokens,
:mod:`sim.crossbar.adapter_read`). The learning mode of the system model (:mod:`sim.system.learning`) prices an
adapted token of every pulsed run on ``--system-preset`` with the model's measured activity (``--activity``).

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

__all__ = ["RUNS", "check_args", "features", "adapt_run", "prune_runs", "plot", "register"]

#: Every learner of the default study: ``"float"``, ``"<rule>/<preset>"``, ``"digital/int<bits>"`` or
#: ``"prune/<step>"`` (:data:`PRUNE_STEPS`).
RUNS = ("float", "sgd/ideal", "sgd/ecram", "sgd/reram_sb", "sgd/reram_es", "tiki_taka/ecram",
        "tiki_taka/reram_sb", "tiki_taka/reram_es", "digital/int8", "digital/int4", "prune/wikipedia",
        "prune/news-ema0.5", "prune/news-ema1")
RULES = ("sgd", "tiki_taka")
#: The statistics-only steps of the prune domain shift: calibrated on Wikipedia, then updated on the news
#: training tokens with the EMA weight of the new statistics.
PRUNE_STEPS = {"wikipedia": None, "news-ema0.5": 0.5, "news-ema1": 1.0}
#: Default periphery reads of every analog adapter: ADC bits and range rule.
READS = "adc8-worst,adc8-fit,adc6-fit"
READ_CALIB_TOKENS = 256
_COLOURS = {"sgd": "C0", "tiki_taka": "C1", "digital": "C2", "prune": "C3"}
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
        if rule == "digital":
            _digital_bits(r)
            continue
        if rule == "prune":
            if name not in PRUNE_STEPS:
                raise ValueError(f"run {r!r}: the prune steps are {', '.join('prune/' + k for k in PRUNE_STEPS)}")
            _prune_record(args)
            continue
        if rule not in RULES:
            raise ValueError(f"run {r!r}: rule must be one of {', '.join(RULES)} (as RULE/PRESET), digital/intN, "
                             f"prune/STEP or 'float'")
        device = preset(name)
        PulseUpdate(args.lr, args.bl).check(device)
        if rule == "tiki_taka":
            PulseUpdate(args.lr_transfer, args.bl).check(device)
    _reads(args.reads)
    if not Path(args.activity).is_file():
        raise FileNotFoundError(f"--activity {args.activity}: no such file; write one with `nmllm activity --out "
                                f"{args.activity}`")
    from sim.system.energy import load_preset

    if not load_preset(args.system_preset).hardware.has_crossbars:
        raise ValueError(f"--system-preset {args.system_preset} has no crossbar arrays to hold the adapter: use a "
                         f"crossbar preset (for example crossbar)")
    return runs


def _digital_bits(run: str) -> int:
    """The weight bits of a ``digital/int<bits>`` run (2 to 16); one-line ValueError otherwise."""
    tail = run.partition("/")[2]
    bits = tail[3:] if tail.startswith("int") else ""
    if not bits.isdigit() or not 2 <= int(bits) <= 16:
        raise ValueError(f"run {run!r}: a digital adapter is digital/int<bits> with 2 to 16 bits, e.g. digital/int8")
    return int(bits)


def _reads(text: str) -> list[tuple[str, int, str]]:
    """``--reads`` as ``(name, adc_bits, rule)``; one-line ValueError for a malformed entry."""
    import re

    out = []
    for name in (t.strip() for t in text.split(",") if t.strip()):
        m = re.fullmatch(r"adc(\d+)-(worst|fit)", name)
        if not m or not 2 <= int(m.group(1)) <= 16:
            raise ValueError(f"--reads entry {name!r}: write adc<bits>-worst or adc<bits>-fit with 2 to 16 bits, "
                             f"e.g. {READS}")
        out.append((name, int(m.group(1)), m.group(2)))
    return out


def _prune_record(args) -> dict:
    """The committed ``nmllm prune`` record whose sensitivities and domain-shift sparsity the prune runs reuse."""
    import json

    p = Path(args.prune_record)
    if not p.is_file():
        raise FileNotFoundError(f"--prune-record {p}: no such file; run `nmllm prune` first or drop the prune/ runs")
    rec = json.loads(p.read_text())
    if not rec.get("sensitivity") or "domain_shift" not in rec:
        raise ValueError(f"--prune-record {p} has no sensitivities or domain shift: rerun `nmllm prune` without "
                         f"--no-shift")
    if Path(rec["model"]).resolve() != Path(args.model).resolve():
        raise ValueError(f"--prune-record {p} was measured on {rec['model']}, not {args.model}: prune that model first")
    return rec


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


class _FixedPointSGD:
    """A digital adapter of the same size: ``bits``-bit fixed-point weights over [-1, 1] (the ideal device's
    range, ``2**(bits-1) - 1`` steps a side), the same SGD step stochastically rounded to the grid; counts the
    weights each update changes (``writes``)."""

    def __init__(self, shape, lr, bits: int, seed: int):
        import numpy as np

        self.top, self.lr = (1 << (bits - 1)) - 1, lr
        self.k = np.zeros(shape, dtype=np.int32)
        self.rng = np.random.default_rng((seed, 3))
        self.writes = 0

    def weights(self):
        return self.k / self.top

    def update(self, x, d):
        import numpy as np

        u = (-self.lr * self.top) * d[:, None] * x[None, :]
        step = np.floor(u + self.rng.random(u.shape)).astype(np.int32)
        self.writes += int(np.count_nonzero(step))
        np.clip(self.k + step, -self.top, self.top, out=self.k)


def _learner(run: str, shape, args):
    from sim.crossbar.device_presets import preset
    from sim.crossbar.pulsed_update import AnalogSGD, PulseUpdate
    from sim.crossbar.tiki_taka import TikiTaka

    if run == "float":
        return _FloatSGD(shape, args.lr)
    if run.startswith("digital/"):
        return _FixedPointSGD(shape, args.lr, _digital_bits(run), args.seed)
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
    pulsed = hasattr(learner, "stats")
    setup = None if not pulsed else {"pulses": int(learner.stats.pulses),
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
    if isinstance(learner, _FixedPointSGD):
        from sim.system.learning import digital_adapter_token

        rec["digital"] = {"weight_bits": _digital_bits(run), "writes_per_token": learner.writes / tokens,
                          **digital_adapter_token(shape[0], shape[1], _digital_bits(run), learner.writes / tokens)}
    else:
        bound = 1.0 if not pulsed else max(abs(learner.devices[0].device.w_min), learner.devices[0].device.w_max)
        rec["reads"] = _periphery_reads(w, feats, scale, args, bound)
    if pulsed:
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
            "transfer_reads": int(s.reads), "clipped_probabilities": int(s.clipped),
            "line_fires_per_token": s.line_fires / tokens, "slots_per_token": s.slots / tokens,
            "reads_per_token": s.reads / tokens, **s.extra}
    return rec


def _periphery_reads(w, feats: dict, scale: float, args, w_bound: float) -> dict:
    """Perplexity with the adapter read through the crossbar periphery, per ``--reads`` entry; the fitted ADC
    range comes from the first :data:`READ_CALIB_TOKENS` training tokens."""
    import numpy as np

    from sim.crossbar.adapter_read import AdapterRead, fitted_full_scale, read, worst_case_full_scale

    out = {}
    for name, bits, rule in _reads(args.reads):
        fs = (worst_case_full_scale(w_bound) if rule == "worst"
              else fitted_full_scale(w, _x(feats["news_train"]["h"][:READ_CALIB_TOKENS], scale)))
        cfg = AdapterRead(full_scale=fs, adc_bits=bits)
        rec = {"adc_bits": bits, "range": rule, "full_scale": fs, "step": cfg.step}
        clipped = conversions = 0
        for text, key in (("news_eval", "news_ppl"), ("wiki", "wiki_ppl")):
            f = feats[text]
            y, c, n = read(w, _x(f["h"], scale), cfg)
            clipped, conversions = clipped + c, conversions + n
            rec[key] = float(math.exp(np.mean(_nll(f["logits"] + args.alpha * y, f["targets"]))))
        rec["clipped_fraction"] = clipped / conversions
        out[name] = rec
    return out


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


def prune_runs(steps: list[str], feats: dict, texts: dict, tokens: dict, args, progress: bool):
    """Yield ``(run, record)`` for each ``prune/<step>`` of ``steps``: the ``nmllm prune`` domain shift's
    statistics-only update (its sensitivities, sparsity and method from ``--prune-record``), calibrated on
    held-out Wikipedia, updated on the adapter's training tokens, token perplexity on the adapter's evaluation
    tokens from the golden model (checked to give the integer program's logits exactly)."""
    import numpy as np

    from models.mmfree.checkpoint import load_checkpoint
    from models.program.integer_program import IntegerProgram
    from models.pruning.pruner import Sensitivity, SynapticPruner
    from models.pruning.stats import gather_stats, latent_magnitudes
    from models.text.sources import heldout_corpus_text, token_windows
    from models.text.tokenizer import load_tokenizer

    rec = _prune_record(args)
    shift, method = rec["domain_shift"], rec["method"]
    model = load_checkpoint(args.model)
    tok = load_tokenizer(args.model)
    program = IntegerProgram.from_model(model)
    windows = {n: token_windows(tok, texts[n], tokens[n], args.window) for n in texts}
    if not np.array_equal(_golden_logits(program, windows["news_eval"]), feats["news_eval"]["logits"]):
        raise RuntimeError("the golden model's logits differ from the integer view's on the news evaluation tokens: "
                           "the prune comparison would not be on the same program; delete the feature cache")
    t0 = time.perf_counter()
    wiki = token_windows(tok, heldout_corpus_text("wikipedia", 8 * args.train_tokens), args.train_tokens, args.window)
    stats = {"wikipedia": gather_stats(program, wiki, source=f"held-out Wikipedia, first {args.train_tokens} tokens"),
             "news": gather_stats(program, windows["news_train"], source="the adapter's news training tokens")}
    stats_s = time.perf_counter() - t0
    kw = dict(granularity=method["granularity"], saliency=method["saliency"], latent=latent_magnitudes(model),
              ema=method["ema"])
    sens = Sensitivity.from_dict(rec["sensitivity"])
    for run in steps:
        t0 = time.perf_counter()
        ema = PRUNE_STEPS[run.partition("/")[2]]
        pr = SynapticPruner(program, stats["wikipedia"], shift["sparsity"], allocation="adaptive", sensitivity=sens, **kw)
        out = {"run": run, "sparsity": shift["sparsity"], "ema": ema}
        if ema is not None:
            changes = pr.update(stats["news"], ema=ema)
            out.update(restored=sum(c["restored"] for c in changes.values()),
                       newly_pruned=sum(c["newly_pruned"] for c in changes.values()),
                       thresholds_changed=sum(c["threshold_before"] != c["threshold_after"] for c in changes.values()),
                       stats_tokens=args.train_tokens)
        prog = pr.pruned()
        for text, key in (("news_eval", "news_ppl"), ("wiki", "wiki_ppl")):
            logits = _golden_logits(prog, windows[text])
            out[key] = float(math.exp(np.mean(_nll(logits, feats[text]["targets"]))))
        out.update(removed=pr.report()["removed_synapses"], live=pr.report()["live_synapses"],
                   wall_s=round(time.perf_counter() - t0 + stats_s / len(steps), 1))
        yield run, out


def _golden_logits(program, windows) -> "np.ndarray":
    """The golden model's logits (float32, as :func:`features` keeps them) of every window's predictions."""
    import numpy as np

    from models.program import numformat as nf
    from models.program.golden import GoldenModel

    g = GoldenModel(program, threads=1)
    out = [g.run_batch([w], threads=1)[0, :-1] for w in windows]
    return np.concatenate(out).astype(np.float32) / (1 << nf.OUT_FRAC)


def _system(args) -> dict:
    """The inference token of ``--model`` on ``--system-preset`` (chips as needed) with the ``--activity`` the
    system model reads: the parts the learning mode adds to."""
    import json

    from sim.system.activity import Activity
    from sim.system.compiler import auto_chips, compile_model
    from sim.system.energy import load_preset
    from sim.system.model import SystemModel
    from sim.system.shapes import model_shape

    shape = model_shape(args.model)
    preset = auto_chips(shape, load_preset(args.system_preset))
    activity = Activity.from_dict(json.loads(Path(args.activity).read_text()))
    r = SystemModel(compile_model(shape, preset), preset, activity).run()
    return {"preset": r.preset, "chips": r.chips, "token_latency_s": r.token_latency_s, "static_j": r.static_j,
            "dynamic_j": r.dynamic_j, "energy_per_token_j": r.energy_per_token_j, "activity": args.activity,
            "activity_source": r.activity_source, "estimate": r.estimate}


def learning_modes(record: dict, args) -> dict:
    """Per pulsed run: the adapted token on the system preset (:func:`sim.system.learning.learning_token`)."""
    from types import SimpleNamespace

    from sim.system.compiler import auto_chips
    from sim.system.energy import load_preset
    from sim.system.learning import UpdateCounts, learning_token
    from sim.system.shapes import model_shape

    sysrec = record["system"]
    preset = auto_chips(model_shape(args.model), load_preset(args.system_preset))
    inference = SimpleNamespace(**sysrec)
    out = {}
    for r in record["runs"]:
        c = r.get("cost")
        if c is None:
            continue
        dev = record["devices"][r["run"].split("/")[1]]
        counts = UpdateCounts(pulses=c["pulses_per_token"], line_fires=c["line_fires_per_token"],
                              slots=c["slots_per_token"], reads=c["reads_per_token"],
                              max_pulses_per_device=c["pulses_per_device_per_token_max"],
                              pulse_energy_j=dev["pulse_energy_j"], pulse_time_s=dev["pulse_time_s"],
                              endurance=dev["endurance"])
        out[r["run"]] = learning_token(inference, preset, record["adapter_shape"][0], record["adapter_shape"][1], counts)
    return out


def run(args) -> int:
    """``nmllm adapt``: every run of ``--runs``, resumable; JSON and plots into ``--out``."""
    runs = check_args(args)
    import numpy as np

    from sim.crossbar.device_presets import PRESETS, PULSE

    t_start = time.perf_counter()
    texts, tokens, data = _texts(args)
    out = Path(args.out)
    settings = {k: getattr(args, k) for k in ("model", "train_tokens", "eval_tokens", "news_train_first",
                                              "news_eval_first", "window", "lr", "lr_transfer", "alpha", "bl",
                                              "transfer_every", "gamma", "sp_pulses", "seed", "reads",
                                              "prune_record", "system_preset", "activity")}
    res = Results(out / "adapt.partial.json", settings)
    progress = not args.no_progress
    feats = _cached_features(args, texts, tokens, progress) if any(r not in res for r in ["before", *runs]) else None
    if "before" not in res:
        scale = float(np.percentile(np.abs(feats["news_train"]["h"]), 99.9)) or 1.0
        res.put("before", {"x_scale": scale, "news_ppl": _ppl(feats["news_eval"], scale, args.alpha, None),
                           "wiki_ppl": _ppl(feats["wiki"], scale, args.alpha, None)})
    before = res["before"]
    print(f"before: news ppl {before['news_ppl']:.2f}, wiki ppl {before['wiki_ppl']:.2f}")
    learners = [r for r in runs if not r.startswith("prune/")]
    for r in res.pending(learners, desc="adapt", unit="run", progress=progress):
        rec = res.put(r, adapt_run(r, feats, before["x_scale"], args, progress))
        print(f"{r}: news ppl {rec['news_ppl']:.2f}, wiki ppl {rec['wiki_ppl']:.2f}"
              + (f", {rec['cost']['pulses_per_token']:.0f} pulses/token" if "cost" in rec else ""))
    steps = [r for r in runs if r.startswith("prune/") and r not in res]
    if steps:
        for r, rec in prune_runs(steps, feats, texts, tokens, args, progress):
            res.put(r, rec)
            print(f"{r}: news ppl {rec['news_ppl']:.2f}, wiki ppl {rec['wiki_ppl']:.2f}")
    if "system" not in res:
        res.put("system", _system(args))
    pulsed = {r.split("/")[1] for r in runs if r.split("/")[0] in RULES}
    devices = {n: {k: v for k, v in vars(PRESETS[n]).items()} for n in sorted(pulsed)}
    record = {"settings": settings, "data": data, "pulse": PULSE, "devices": devices, "before": before,
              "adapter": "analog adapter beside lm_head: logits + alpha * A x, A vocab x hidden on pulsed devices",
              "adapter_shape": list(_adapter_shape(args.model)),
              "runs": [res[r] for r in runs], "system": res["system"]}
    record["learning_mode"] = learning_modes(record, args)
    record.update(wall_s=round(time.perf_counter() - t_start, 1), provenance=provenance(seed=args.seed))
    res.finish(out / "adapt.json", record)
    paths = plot(record, out)
    for r, m in record["learning_mode"].items():
        print(f"learning mode {r} on {m['preset']}: {m['token_latency_s'] * 1e6:.2f} us and "
              f"{m['energy_per_token_j'] * 1e3:.4f} mJ per adapted token ({m['latency_ratio']:.3f}x / "
              f"{m['energy_ratio']:.3f}x inference)")
    print(f"results {out / 'adapt.json'}; plots {', '.join(map(str, paths))}; {record['wall_s']:.0f} s")
    return 0


def _adapter_shape(model_dir: str) -> tuple[int, int]:
    """``(vocab, hidden)`` of the adapter beside ``lm_head``."""
    from sim.system.shapes import model_shape

    shape = model_shape(model_dir)
    return shape.vocab, shape.hidden


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
        ax.bar(pos, [r[key] for r in runs], color=[_COLOURS.get(n.split("/")[0], "0.4") for n in names])
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
    for r in (r for r in runs if "train_nll_curve" in r):
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
    p.add_argument("--reads", default=READS,
                   help=f"periphery reads of every analog adapter, adc<bits>-worst|fit (default {READS})")
    p.add_argument("--prune-record", default="docs/pruning/pruning_sweep.json",
                   help="nmllm prune record whose sensitivities and domain-shift sparsity the prune/ runs use")
    p.add_argument("--system-preset", default="crossbar", help="crossbar preset of the learning mode (default crossbar)")
    p.add_argument("--activity", default="docs/system_model/activity_bundled.json",
                   help="activity JSON of the model for the system model (default: the bundled model's, measured)")
    p.add_argument("--cache", default="runs/adapt", help="feature cache directory (default runs/adapt)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)
