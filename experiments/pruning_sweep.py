"""Adaptive synaptic pruning of an integer program from the activation statistics it produces while it
runs: the sweep and the ablation of ``nmllm prune`` (``experiments/pruning_sweep.py``).

The sweep prunes the model (``models/pruning/``) at every ``--fractions`` x ``--allocations`` point and
writes perplexity on WikiText-2 and CNN/DailyMail, golden-model event counts and system-model energy and
latency per token to ``<out>/pruning_sweep.json`` and ``pruning_sweep.png``, then calibrates on Wikipedia
and updates on news (``pruning_domain_shift.png``). ``--ablation`` compares saliencies and granularities
instead (``pruning_ablation.json``). Results: ``docs/pruning.md``.

Each finished point is kept in ``<out>/pruning_sweep.partial.json`` (``pruning_ablation.partial.json``),
written atomically; the same command rerun after a kill resumes there, and one with other settings is
refused (:mod:`experiments.resume`). The partial file is deleted when the final JSON is written.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from experiments.provenance import provenance
from experiments.resume import Results

if TYPE_CHECKING:
    import numpy as np

    from models.program.integer_program import IntegerProgram

# heavy imports (numpy, torch, models.*) inside the functions that run, so ``nmllm --help`` stays fast

__all__ = ["ABLATION", "system_cost", "run_sweep", "plot_sweep", "run_ablation", "run", "register"]


def system_cost(events: list, shape, tokens: int, presets: Sequence[str], cache: dict) -> dict:
    """Energy per token and token latency from the system model on the golden model's measured activity."""
    from sim.system.activity import activity_from_layer_events
    from sim.system.compiler import mapped_on
    from sim.system.model import SystemModel

    act = activity_from_layer_events(events, shape, tokens, what="golden model of the pruned program")
    out = {}
    for name in presets:
        preset, mapping = mapped_on(shape, name, cache)
        r = SystemModel(mapping, preset, act).run(prompt_tokens=500)
        dyn = sum(v for k, v in r.energy_j.items() if k not in ("static", "total"))
        out[name] = {"energy_per_token_j": r.energy_per_token_j, "dynamic_energy_per_token_j": dyn,
                     "synaptic_op_energy_per_token_j": r.energy_j["synaptic_ops"],
                     "token_latency_s": r.token_latency_s, "tokens_per_s": r.tokens_per_s,
                     "estimate": r.estimate, "chips": r.chips}
    out["activity"] = act.to_dict()
    return out


def _ppl(program: IntegerProgram, ids: Sequence[int], window: int, stride: int) -> float:
    from models.program.integer_view import IntegerView
    from models.eval.perplexity import sequence_nll

    r = sequence_nll(IntegerView(program).logits_float, ids, window, stride)
    return math.exp(r["nll"] / r["tokens"])


def _fractions(text: str) -> list[float]:
    from models.pruning.pruner import check_sparsity

    try:
        vals = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--fractions must be comma-separated numbers, got {text!r}") from None
    if not vals:
        raise ValueError("--fractions is empty: give for example 0,0.1,0.3,0.5")
    return [check_sparsity(v, "each pruned fraction") for v in vals]


def _check_method(args: argparse.Namespace) -> None:
    """``--granularity`` and ``--saliency`` are among the pruner's (ValueError naming the allowed values)."""
    from models.pruning.pruner import GRANULARITIES, SALIENCIES, check_choice

    check_choice(args.granularity, GRANULARITIES, "granularity")
    if args.saliency is not None:
        check_choice(args.saliency, SALIENCIES, "saliency")


def _settings(args: argparse.Namespace, names: Sequence[str], **parsed) -> dict:
    """The flags ``names`` that decide the results (``data`` resolved to its default), with ``parsed`` values."""
    from models.eval.perplexity import default_data_path

    out = {n: getattr(args, n) for n in names}
    out["data"] = str(args.data or default_data_path())
    return {**out, **parsed}


def _point_key(alloc: str, s: float) -> str:
    """The results key of a sweep point; the unpruned program is one point whatever the allocation."""
    return "sweep unpruned" if s == 0.0 else f"sweep {alloc} {s!r}"


def _sweep_point(pruner, s: float, eval_ids: dict, golden_ids: list, shape, args, cache: dict) -> dict:
    """Perplexity on both domains, golden-model events and system-model cost of ``pruner`` at sparsity ``s``."""
    from models.pruning.stats import event_counts

    pr = pruner.set_sparsity(s)
    prog = pr.pruned()
    counts, events = event_counts(prog, golden_ids)
    return {"allocation": pr.allocation, "target": s, "achieved": pr.report()["achieved_sparsity"],
            "layer_sparsity": {n: round(v, 4) for n, v in pr.achieved().items()},
            "ppl": {d: _ppl(prog, ids, args.window, args.stride) for d, ids in eval_ids.items()},
            "events_per_token": counts,
            "system": system_cost(events, shape, len(golden_ids), args.presets, cache)}


def run_sweep(args: argparse.Namespace) -> dict:
    """The measurement behind ``nmllm prune``: see :func:`register` for the knobs. Every sweep point, the
    sensitivities and every domain-shift step are kept in ``<out>/pruning_sweep.partial.json`` as they finish
    (a rerun after a kill resumes there); writes ``<out>/pruning_sweep.json`` and returns the record."""
    import numpy as np
    import torch

    from models.mmfree.checkpoint import load_checkpoint
    from models.eval.perplexity import default_data_path
    from models.program.integer_program import IntegerProgram
    from models.pruning.budget import calibration_nll, check_probes, probe_projection
    from models.pruning.pruner import ALLOCATIONS, Sensitivity, SynapticPruner, check_choice, check_sparsity
    from models.pruning.stats import check_ema, gather_stats, latent_magnitudes
    from models.text.sources import heldout_corpus_text, news_text, token_windows
    from models.text.tokenizer import encode, load_tokenizer

    _check_method(args)
    fractions = _fractions(args.fractions)
    allocations = [check_choice(a, ALLOCATIONS, "allocation") for a in args.allocations.split(",")]
    if args.budget is not None and args.budget <= 0:
        raise ValueError(f"--budget must be > 0 (the allowed relative perplexity increase, e.g. 0.1), got {args.budget}")
    check_sparsity(args.shift_sparsity, "--shift-sparsity")
    check_ema(args.ema)
    res = Results(Path(args.out) / "pruning_sweep.partial.json", _settings(
        args, ("model", "granularity", "saliency", "calib_tokens", "eval_tokens", "golden_tokens", "news_eval_first",
               "probes", "ema", "shift_sparsity", "budget", "no_shift", "presets", "window", "stride"),
        fractions=fractions, allocations=allocations))
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    log = (lambda *a: None) if args.no_progress else (lambda *a: print(*a, file=sys.stderr, flush=True))
    if res.resumed:
        log(f"prune: resuming {res.resumed} stored results of {res.path}")
    model = load_checkpoint(args.model)
    tok = load_tokenizer(args.model)
    program = IntegerProgram.from_model(model)
    latent = latent_magnitudes(model) if args.saliency in (None, "wanda", "magnitude") else None
    from sim.system.shapes import model_shape
    shape = model_shape(args.model)

    # the two domains: calibration text (never a test set) and evaluation text
    wiki_test = Path(args.data) if args.data else default_data_path()
    chars = 8 * max(args.eval_tokens, args.calib_tokens, args.golden_tokens)
    news_calib, news_calib_end = news_text(0, 8 * args.calib_tokens)
    if args.news_eval_first < news_calib_end:
        raise ValueError(f"--news-eval-first {args.news_eval_first} overlaps the calibration articles 0..{news_calib_end - 1}: "
                         f"use {news_calib_end} or more")
    eval_ids = {"wikipedia": encode(tok, wiki_test.read_text(encoding="utf-8")[:chars])[:args.eval_tokens],
                "news": encode(tok, news_text(args.news_eval_first, chars)[0])[:args.eval_tokens]}
    for d, ids in eval_ids.items():
        if len(ids) < args.eval_tokens:
            raise ValueError(f"the {d} evaluation text gives only {len(ids)} tokens, fewer than --eval-tokens {args.eval_tokens}")
    calib = {"wikipedia": token_windows(tok, heldout_corpus_text("wikipedia", chars), args.calib_tokens),
             "news": token_windows(tok, news_calib, args.calib_tokens)}
    golden_ids = eval_ids["wikipedia"][:args.golden_tokens]
    data = {
        "wikipedia": {"calibration": f"held-out last 1% of the lines of the corpus's Wikipedia files (not trained on), "
                                     f"first {args.calib_tokens} tokens in windows of 256",
                      "evaluation": f"WikiText-2 test ({wiki_test.name}), first {args.eval_tokens} tokens"},
        "news": {"calibration": f"CNN/DailyMail test articles 0..{news_calib_end - 1}, first {args.calib_tokens} tokens "
                                f"in windows of 256",
                 "evaluation": f"CNN/DailyMail test articles {args.news_eval_first}.., first {args.eval_tokens} tokens"},
        "events": f"golden model on the first {args.golden_tokens} tokens of the WikiText-2 evaluation text",
        "perplexity": f"integer view, token perplexity, window {args.window}, stride {args.stride}",
    }
    log(f"prune: calibrating on {args.calib_tokens} Wikipedia tokens")
    stats = {d: gather_stats(program, w, source=data[d]["calibration"]) for d, w in calib.items()}
    kw = dict(granularity=args.granularity, saliency=args.saliency, latent=latent, ema=args.ema)
    uniform = SynapticPruner(program, stats["wikipedia"], 0.0, **kw)
    sens = None
    if "adaptive" in allocations or not args.no_shift:
        probes = check_probes(args.probes)
        log(f"prune: probing each projection's sensitivity at {args.probes} ({2 * len(uniform.names)} runs)")
        if "probe base" not in res:
            res.put("probe base", calibration_nll(program, calib["wikipedia"]))
        for n in res.pending([f"probe {n}" for n in uniform.names], "sensitivity", "proj", not args.no_progress):
            res.put(n, probe_projection(uniform, n.removeprefix("probe "), calib["wikipedia"], probes, res["probe base"]))
        sens = Sensitivity(probes=probes, rise={n: tuple(res[f"probe {n}"]) for n in uniform.names})
    pruners = {"uniform": uniform}
    if sens is not None:
        pruners["adaptive"] = SynapticPruner(program, stats["wikipedia"], 0.0, allocation="adaptive",
                                             sensitivity=sens, **kw)
    cache: dict = {}
    points = {}
    for alloc in allocations:
        for s in fractions:
            points.setdefault(_point_key(alloc, s), (alloc, s))
    for key in res.pending(points, desc="sweep", unit="point", progress=not args.no_progress):
        alloc, s = points[key]
        row = res.put(key, _sweep_point(pruners[alloc], s, eval_ids, golden_ids, shape, args, cache))
        log(f"  {alloc:8s} {s:.2f}: ppl wiki {row['ppl']['wikipedia']:.2f} news {row['ppl']['news']:.2f}, "
            f"synaptic ops/token {row['events_per_token']['synaptic_ops']:,.0f}")
    rows = [{**res[_point_key(a, s)], "allocation": a} for a in allocations for s in fractions]
    record = {"model": str(args.model), "method": {"granularity": args.granularity, "saliency": uniform.saliency_kind,
                                                   "ema": args.ema, "probes": list(args.probes)},
              "data": data, "presets": list(args.presets), "sweep": rows,
              "sensitivity": None if sens is None else sens.to_dict(),
              "calibration_stats": {d: {"mean_input_rate": float(np.mean([v.mean() for v in st.act_rate.values()]))}
                                    for d, st in stats.items()}}
    if not args.no_shift:
        record["domain_shift"] = _domain_shift(program, stats, calib, eval_ids, sens, kw, args, log, res)
    record.update(wall_s=time.perf_counter() - t_start, provenance=provenance())
    res.finish(Path(args.out) / "pruning_sweep.json", record)
    return record


def _domain_shift(program, stats, calib, eval_ids, sens, kw, args, log, res: Results) -> dict:
    """Calibrate on Wikipedia, then update the statistics (and thresholds) on news; perplexity on both. Each
    step is kept in ``res``; a stored step is not measured again (its budget search neither)."""
    import numpy as np

    from models.pruning.budget import fit_budget
    from models.pruning.pruner import SynapticPruner

    s = args.shift_sparsity
    out: dict = {"sparsity": s, "allocation": "adaptive (sensitivities probed on Wikipedia)", "steps": []}

    def step(label: str, pr: SynapticPruner, changes: Optional[dict] = None, budget: Optional[dict] = None) -> None:
        key = f"shift {label}"
        if key not in res:
            prog = pr.pruned()
            rec = {"step": label, "sparsity": pr.sparsity,
                   "ppl": {d: _ppl(prog, ids, args.window, args.stride) for d, ids in eval_ids.items()}}
            if changes is not None:
                rec["restored"] = sum(c["restored"] for c in changes.values())
                rec["newly_pruned"] = sum(c["newly_pruned"] for c in changes.values())
                rec["thresholds_changed"] = sum(c["threshold_before"] != c["threshold_after"] for c in changes.values())
                rec["removed"] = pr.report()["removed_synapses"]
            if budget is not None:
                rec["budget"] = {k: v for k, v in budget.items() if k != "trials"}
            res.put(key, rec)
            log(f"  shift {label}: sparsity {pr.sparsity:.3f}, ppl wiki {rec['ppl']['wikipedia']:.2f} "
                f"news {rec['ppl']['news']:.2f}")
        out["steps"].append(res[key])

    def fitted(label: str, pr: SynapticPruner, windows) -> None:
        """The budget search on ``windows``; for a stored step, ``pr`` set to the sparsity it found."""
        done = res.get(f"shift {label}")
        if done is not None:
            pr.set_sparsity(done["budget"]["sparsity"])
        step(label, pr, budget=None if done is not None else fit_budget(pr, windows, args.budget))

    a = {d: stats[d].act_sq for d in stats}
    out["stats_shift"] = {
        "mean_rank_correlation": float(np.mean([_spearman(a["wikipedia"][n], a["news"][n]) for n in a["wikipedia"]])),
        "mean_input_rate": {d: float(np.mean([v.mean() for v in stats[d].act_rate.values()])) for d in stats}}
    step("unpruned", SynapticPruner(program, stats["wikipedia"], 0.0, **kw))
    for ema in (0.5, 1.0):
        pr = SynapticPruner(program, stats["wikipedia"], s, allocation="adaptive", sensitivity=sens, **kw)
        if ema == 0.5:
            step("calibrated on wikipedia", pr)
        step(f"updated on news, ema {ema:g}", pr, changes=pr.update(stats["news"], ema=ema))
    if args.budget is not None:
        pr = SynapticPruner(program, stats["wikipedia"], 0.0, allocation="adaptive", sensitivity=sens, **kw)
        fitted(f"budget {args.budget:g}: fitted on wikipedia", pr, calib["wikipedia"])
        changes = pr.update(stats["news"], ema=args.ema)
        step(f"budget {args.budget:g}: news blended in (ema {args.ema:g})", pr, changes=changes)
        fitted(f"budget {args.budget:g}: re-fitted on news", pr, calib["news"])
    return out


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    import numpy as np

    rx, ry = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rx, ry)[0, 1])


def plot_sweep(record: dict, out_dir: Path) -> list[Path]:
    """Perplexity vs pruned fraction (both domains), golden-model events and system-model energy and
    latency per token vs pruned fraction; the domain-shift steps as bars."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = record["sweep"]
    allocs = sorted({r["allocation"] for r in rows}, key=["uniform", "adaptive"].index)
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.3))
    for alloc in allocs:
        rs = [r for r in rows if r["allocation"] == alloc]
        x = [r["achieved"] for r in rs]
        ls = "-" if alloc == "adaptive" else "--"
        for d, c in (("wikipedia", "C0"), ("news", "C3")):
            ax[0].plot(x, [r["ppl"][d] for r in rs], ls, marker="o", color=c, label=f"{d}, {alloc}")
        ax[1].plot(x, [r["events_per_token"]["synaptic_ops"] / 1e6 for r in rs], ls, marker="o", color="C2",
                   label=f"synaptic ops (M), {alloc}")
        ax[1].plot(x, [r["events_per_token"]["input_events"] / 1e4 for r in rs], ls, marker="s", color="C1",
                   label=f"input events (10k), {alloc}")
        ax[1].plot(x, [r["events_per_token"]["weight_bytes_read"] / 1e6 for r in rs], ls, marker="^", color="C7",
                   label=f"weight bytes read (MB), {alloc}")
        base = rs[0]["system"]
        for k, pname in enumerate(record["presets"]):
            ax[2].plot(x, [r["system"][pname]["energy_per_token_j"] / base[pname]["energy_per_token_j"] for r in rs], ls,
                       marker="o", color=f"C{4 + k}", label=f"energy/token, {pname}, {alloc}")
        p0 = record["presets"][0]
        ax[2].plot(x, [r["system"][p0]["token_latency_s"] / base[p0]["token_latency_s"] for r in rs], ls, marker="s",
                   color="C9", label=f"token latency, {p0}, {alloc}")
    ax[0].set_yscale("log")
    ax[0].set_xlabel("pruned fraction of the non-zero synapses")
    ax[0].set_ylabel("token perplexity (integer view)")
    ax[0].set_title("quality (pruning calibrated on Wikipedia)")
    ax[1].set_xlabel("pruned fraction")
    ax[1].set_ylabel("per token")
    ax[1].set_title("golden-model events per token")
    ax[1].set_ylim(bottom=0)
    ax[2].set_xlabel("pruned fraction")
    ax[2].set_ylabel("relative to the unpruned program")
    ax[2].set_title("system model, measured activity")
    for a in ax:
        a.grid(alpha=0.3)
        a.legend(fontsize=6.5)
    fig.tight_layout()
    paths = [out_dir / "pruning_sweep.png"]
    fig.savefig(paths[0], dpi=80)
    plt.close(fig)
    if "domain_shift" in record:
        steps = record["domain_shift"]["steps"]
        fig, ax = plt.subplots(figsize=(9, 4.2))
        xs = np.arange(len(steps))
        for k, (d, c) in enumerate((("wikipedia", "C0"), ("news", "C3"))):
            ax.bar(xs + (k - 0.5) * 0.38, [st["ppl"][d] for st in steps], 0.38, color=c, label=f"{d} evaluation text")
        ax.set_xticks(xs)
        ax.set_xticklabels([f"{st['step'].replace(': ', chr(10))}\n(s={st['sparsity']:.2f})" for st in steps],
                           fontsize=6.5)
        ax.set_ylabel("token perplexity")
        ax.set_title("domain shift: pruning calibrated on Wikipedia, then updated on news")
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        fig.tight_layout()
        paths.append(out_dir / "pruning_domain_shift.png")
        fig.savefig(paths[-1], dpi=80)
        plt.close(fig)
    return paths


ABLATION = (("random", "synapse", True), ("activation", "synapse", True), ("magnitude", "synapse", True),
            ("wanda", "synapse", True), ("wanda", "synapse", False), ("wanda", "input", True),
            ("wanda", "output", True))


def run_ablation(args: argparse.Namespace) -> dict:
    """Saliency and granularity compared at each fraction (uniform allocation, calibrated on Wikipedia):
    perplexity over non-overlapping windows of the first ``--eval-tokens`` WikiText-2 test tokens. Points are
    kept in ``<out>/pruning_ablation.partial.json`` (resumed after a kill); writes ``<out>/pruning_ablation.json``."""
    import torch

    from models.mmfree.checkpoint import load_checkpoint
    from models.eval.perplexity import default_data_path
    from models.program.integer_program import IntegerProgram
    from models.pruning.budget import calibration_nll
    from models.pruning.pruner import SynapticPruner
    from models.pruning.stats import gather_stats, latent_magnitudes
    from models.text.sources import heldout_corpus_text, token_windows
    from models.text.tokenizer import load_tokenizer

    _check_method(args)
    fractions = _fractions(args.fractions)
    res = Results(Path(args.out) / "pruning_ablation.partial.json",
                  _settings(args, ("model", "calib_tokens", "eval_tokens"), fractions=fractions))
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = load_checkpoint(args.model)
    tok = load_tokenizer(args.model)
    program = IntegerProgram.from_model(model)
    latent = latent_magnitudes(model)
    wiki_test = Path(args.data) if args.data else default_data_path()
    chars = 8 * max(args.eval_tokens, args.calib_tokens)
    ev = token_windows(tok, wiki_test.read_text(encoding="utf-8")[:chars], args.eval_tokens)
    cal = token_windows(tok, heldout_corpus_text("wikipedia", chars), args.calib_tokens)
    stats = gather_stats(program, cal)
    points = {"unpruned": None, **{f"{v[0]} {v[1]} {v[2]} {s!r}": (v, s) for v in ABLATION for s in fractions if s > 0}}
    for key in res.pending(points, desc="ablation", unit="point", progress=not args.no_progress):
        if points[key] is None:
            res.put(key, {"saliency": "none", "granularity": "-", "balance_rows": True, "sparsity": 0.0,
                          "ppl": math.exp(calibration_nll(program, ev))})
            continue
        (sal, gran, bal), s = points[key]
        pr = SynapticPruner(program, stats, s, saliency=sal, granularity=gran, balance_rows=bal, latent=latent)
        res.put(key, {"saliency": sal, "granularity": gran, "balance_rows": bal, "sparsity": s,
                      "achieved": pr.report()["achieved_sparsity"], "ppl": math.exp(calibration_nll(pr.pruned(), ev))})
    record = {"model": str(args.model), "rows": [res[k] for k in points], "wall_s": time.perf_counter() - t0,
              "data": {"calibration": f"held-out Wikipedia lines of the corpus, first {args.calib_tokens} tokens",
                       "evaluation": f"WikiText-2 test, first {args.eval_tokens} tokens in non-overlapping windows of "
                                     f"256 (each from an empty state; not the window/stride method of the sweep)"},
              "provenance": provenance()}
    res.finish(Path(args.out) / "pruning_ablation.json", record)
    return record


def run(args: argparse.Namespace) -> int:
    """``nmllm prune``: the sweep, or the ablation with ``--ablation``; writes the JSON (and plots), prints a table."""
    out = Path(args.out)
    if args.ablation:
        record = run_ablation(args)
        print(f"{'saliency':10s} {'granularity':11s} {'rows':5s} " + " ".join(f"{'s=' + format(s, 'g'):>8s}"
                                                                            for s in _fractions(args.fractions) if s > 0))
        for v in ABLATION:
            r = [x for x in record["rows"] if (x["saliency"], x["granularity"], x["balance_rows"]) == v]
            print(f"{v[0]:10s} {v[1]:11s} {'bal' if v[2] else 'glob':5s} " + " ".join(f"{x['ppl']:8.2f}" for x in r))
        print(f"unpruned {record['rows'][0]['ppl']:.2f}; {record['data']['evaluation']}")
        print(f"wrote {out / 'pruning_ablation.json'} in {record['wall_s']:.0f} s")
        return 0
    record = run_sweep(args)
    paths = plot_sweep(record, out)
    preset = args.presets[0]
    print(f"{'alloc':8s} {'target':>6s} {'pruned':>6s} {'ppl wiki':>9s} {'ppl news':>9s} {'syn ops/tok':>12s} "
          f"{'in ev/tok':>9s} {'kB w/tok':>8s} {'uJ/tok':>8s} {'ms/tok':>7s}")
    for r in record["sweep"]:
        e, c = r["events_per_token"], r["system"][preset]
        print(f"{r['allocation']:8s} {r['target']:6.2f} {r['achieved']:6.3f} {r['ppl']['wikipedia']:9.2f} "
              f"{r['ppl']['news']:9.2f} {e['synaptic_ops']:12,.0f} {e['input_events']:9,.0f} "
              f"{e['weight_bytes_read'] / 1e3:8,.0f} {c['energy_per_token_j'] * 1e6:8.1f} {c['token_latency_s'] * 1e3:7.3f}")
    for st in record.get("domain_shift", {}).get("steps", []):
        print(f"shift  {st['step']:55s} s={st['sparsity']:.3f}  ppl wiki {st['ppl']['wikipedia']:.2f}  news {st['ppl']['news']:.2f}")
    print(f"(perplexity: {record['data']['perplexity']}; wikipedia: {record['data']['wikipedia']['evaluation']}; "
          f"news: {record['data']['news']['evaluation']}; energy: {preset}, static included)")
    print(f"wrote {out / 'pruning_sweep.json'}, " + ", ".join(str(p) for p in paths) + f" in {record['wall_s']:.0f} s")
    return 0


def register(subparsers) -> None:
    """Add the ``prune`` subcommand."""
    p = subparsers.add_parser("prune", help="adaptive synaptic pruning: perplexity, events and energy vs pruned fraction",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/bundled", help="checkpoint directory (default models/bundled)")
    p.add_argument("--data", default=None, help="WikiText-2 test raw text (default ../shared/data/wikitext-2/wiki.test.raw)")
    p.add_argument("--fractions", default="0,0.1,0.2,0.3,0.5,0.7",
                   help="pruned fractions of the non-zero synapses, each in [0, 1) (default 0,0.1,0.2,0.3,0.5,0.7)")
    p.add_argument("--allocations", default="uniform,adaptive", help="per-layer allocations to sweep (uniform, adaptive)")
    p.add_argument("--granularity", default="synapse",
                   help="what is pruned: a granularity of models.pruning.pruner.GRANULARITIES (default synapse)")
    p.add_argument("--saliency", default=None,
                   help="synapse saliency, one of models.pruning.pruner.SALIENCIES "
                        "(default wanda: latent |w| x RMS of the input code)")
    p.add_argument("--calib-tokens", type=int, default=2048, help="calibration tokens per domain (default 2048)")
    p.add_argument("--eval-tokens", type=int, default=8192, help="evaluation tokens per domain (default 8192)")
    p.add_argument("--golden-tokens", type=int, default=256, help="tokens the golden model counts events on (default 256)")
    p.add_argument("--news-eval-first", type=int, default=1000, help="first CNN/DailyMail article of the news evaluation text")
    p.add_argument("--probes", type=float, nargs=2, default=[0.3, 0.6], help="probe sparsities of the sensitivity fit")
    p.add_argument("--ema", type=float, default=0.5, help="weight of new statistics on a domain update, in (0, 1]")
    p.add_argument("--shift-sparsity", type=float, default=0.5, help="sparsity of the domain-shift experiment")
    p.add_argument("--budget", type=float, default=0.1,
                   help="quality budget of the domain-shift experiment: allowed relative perplexity rise (default 0.1)")
    p.add_argument("--no-shift", action="store_true", help="skip the domain-shift experiment")
    p.add_argument("--ablation", action="store_true",
                   help="instead of the sweep: compare saliencies and granularities (uniform allocation) at each "
                        "fraction on non-overlapping windows; writes pruning_ablation.json")
    p.add_argument("--presets", nargs="+", default=["loihi2-estimate", "loihi1"], help="system-model presets")
    p.add_argument("--window", type=int, default=256, help="perplexity window (default 256)")
    p.add_argument("--stride", type=int, default=128, help="perplexity stride (default 128)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", default="docs/pruning", help="output folder for the JSON and PNGs (default docs/pruning)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or log lines")
    p.set_defaults(func=run)
