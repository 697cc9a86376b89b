"""``nmllm spike errors``: arguments, runner and plots of the error analysis and mixed-timestep schedule
of a spike-converted transformer (``experiments/spike_errors.py``; the algorithms are in
:mod:`models.transformer.error_analysis`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from experiments.provenance import provenance
from experiments.resume import write_json
from models.transformer.calibration import get_calibration

__all__ = ["add_error_arguments", "plot_errors", "run_error_analysis"]


def add_error_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``nmllm spike errors`` (besides the model/calibration ones)."""
    p.add_argument("--coding", default="rate", help="coding to analyse (default rate)")
    p.add_argument("--thresholds", default="tensor", choices=("tensor", "channel"),
                   help="one threshold per site (tensor) or per input neuron (channel)")
    p.add_argument("--t-low", type=int, default=4, help="low T of the mixed schedule")
    p.add_argument("--t-mid", type=int, default=8, help="uniform T whose cost is the schedule's budget")
    p.add_argument("--t-high", type=int, default=16, help="T of the sensitive sites")
    p.add_argument("--analysis-tokens", type=int, default=512, help="WikiText-2 test tokens for the loss analysis")
    p.add_argument("--sensitivity-tokens", type=int, default=256, help="corpus tokens for the sensitivity metric")
    p.add_argument("--max-tokens", type=int, default=4096, help="perplexity subset for the schedule comparison")
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--stride", type=int, default=128)
    p.add_argument("--rank", default="per-op", choices=("per-op", "sensitivity"),
                   help="raise sites by sensitivity per extra synaptic op (default) or by sensitivity alone")
    p.add_argument("--skip-ppl", action="store_true", help="do not evaluate the schedule's perplexity")
    p.add_argument("--ternary-tokens", type=int, default=1024, help="perplexity subset for the ternary-weight check (0: skip)")
    p.add_argument("--ternary-snr-db", type=float, default=10.0, help="ternary survives where its local SNR is at least this")
    p.add_argument("--out", default="runs/spike/errors.json", help="result JSON")
    p.add_argument("--plot-dir", default=None, help="write spike_layer_error.png / spike_sensitivity.png here")


def plot_errors(res: dict, out_dir: Path, prefix: str = "") -> list[Path]:
    """``spike_layer_error<_prefix>.png`` and, with sensitivities, ``spike_sensitivity<_prefix>.png``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    sim = res["similarity"]
    tag = f"_{prefix}" if prefix else ""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), dpi=90)
    kinds = ("attn_in", "attn_out", "mlp_in", "mlp_out")
    for k in kinds:
        rows = [(int(s.split(".")[0]), v["snr_db"]) for s, v in sim["sites"].items() if s.endswith(k)]
        rows.sort()
        axes[0].plot([r[0] for r in rows], [r[1] for r in rows], marker=".", label=k)
    axes[0].set_xlabel("layer")
    axes[0].set_ylabel("local SNR (dB), same inputs")
    axes[0].legend(fontsize=7)
    axes[0].grid(alpha=0.3)
    ls = sim["layers"]
    axes[1].plot([r["layer"] for r in ls], [r["snr_db"] for r in ls], marker=".", color="C4", label="SNR (dB)")
    axes[1].set_xlabel("layer")
    axes[1].set_ylabel("hidden-state SNR (dB), end to end")
    ax2 = axes[1].twinx()
    ax2.plot([r["layer"] for r in ls], [r["cos"] for r in ls], ls="--", color="C5", label="cosine")
    ax2.set_ylabel("cosine")
    fig.suptitle(f"{res['coding']} T={res['t_low']} ({res.get('thresholds', 'tensor')} thresholds): information loss per layer ({res['analysis_tokens']} WikiText-2 test tokens)", fontsize=8)
    fig.tight_layout()
    p = out_dir / f"spike_layer_error{tag}.png"
    fig.savefig(p)
    plt.close(fig)
    paths.append(p)
    if "sensitivity" not in res:
        return paths
    sens = res["sensitivity"]
    fig, ax = plt.subplots(figsize=(8, 2.8), dpi=90)
    for k in kinds + ("lm_head",):
        rows = sorted((int(s.split(".")[0]) if s != "lm_head" else len(sim["layers"]), v) for s, v in sens.items() if s.endswith(k))
        ax.plot([r[0] for r in rows], [r[1] for r in rows], marker="o" if k == "lm_head" else ".", label=k)
    ax.set_yscale("log")
    ax.set_xlabel("layer (lm_head last)")
    ax.set_ylabel("KL when only this site is coded")
    ax.set_title(f"sensitivity at {res['coding']} T={res['t_low']}, {res.get('thresholds', 'tensor')} thresholds "
                 f"({res['sensitivity_tokens']} corpus tokens)", fontsize=8)
    ax.legend(fontsize=7, ncol=5)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    p = out_dir / f"spike_sensitivity{tag}.png"
    fig.savefig(p)
    plt.close(fig)
    paths.append(p)
    return paths


def run_error_analysis(args: argparse.Namespace) -> int:
    """``nmllm spike errors``: similarity, token loss, sensitivity, schedule and ternary check (resumable JSON)."""
    from models.eval.options import check_options

    check_options(**vars(args))  # before anything slow loads
    import torch

    from models.eval.perplexity import default_data_path
    from models.transformer.convert import calibration_token_batches, convert
    from models.transformer.error_analysis import (greedy_schedule, layer_similarity, site_cost, site_sensitivity,
                                                   token_type_loss, weight_format_snr)
    from models.transformer.loader import context_token_id, hf_text_perplexity, load_hf_model, load_hf_tokenizer

    torch.set_num_threads(args.threads)
    model, tok = load_hf_model(args.model), load_hf_tokenizer(args.model)
    calib = get_calibration(model, tok, args.model, args.calib_tokens, args.calib_cache, progress=not args.no_progress)
    sm = convert(model, calibration=calib, coding=args.coding, timesteps=args.t_low, thresholds=args.thresholds)
    text = default_data_path().read_text(encoding="utf-8")
    ids = torch.tensor(tok.backend_tokenizer.encode(text, add_special_tokens=False).ids[:args.analysis_tokens])
    ctx = context_token_id(tok)
    out = Path(args.out)
    res = json.loads(out.read_text()) if out.is_file() else {}
    key = f"{args.coding}:{args.t_low}:{args.t_high}:{args.thresholds}"
    if res.get("key") != key:
        res = {"key": key}
    res.update({"model": args.model, "coding": args.coding, "thresholds": args.thresholds, "t_low": args.t_low, "t_mid": args.t_mid,
                "t_high": args.t_high, "analysis_tokens": int(ids.numel()), "sensitivity_tokens": args.sensitivity_tokens,
                "ppl_tokens": args.max_tokens})

    def save():
        res["provenance"] = provenance()
        write_json(out, res)

    t0 = time.perf_counter()
    if "similarity" not in res:
        sm.configure(args.coding, args.t_low, thresholds=args.thresholds)
        w = args.window
        sims = [layer_similarity(sm, ids[b:b + w].unsqueeze(0)) for b in range(0, ids.numel(), w)]
        # token-weighted means over the windows
        n = len(sims)
        res["similarity"] = {
            "sites": {s: {k: sum(x["sites"][s][k] for x in sims) / n for k in ("cos", "snr_db")} for s in sims[0]["sites"]},
            "layers": [{"layer": l["layer"], **{k: sum(x["layers"][i][k] for x in sims) / n for k in ("cos", "snr_db")}}
                       for i, l in enumerate(sims[0]["layers"])],
            "logits": {k: sum(x["logits"][k] for x in sims) / n for k in ("cos", "snr_db", "kl")}}
        res["token_loss"] = token_type_loss(sm, tok, ids, ctx, window=w)
        save()
        print(f"similarity + token loss in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    sens_ids = calibration_token_batches(tok, n_tokens=args.sensitivity_tokens, seq_len=min(256, args.sensitivity_tokens))
    if "sensitivity" not in res:
        res["sensitivity"] = site_sensitivity(sm, sens_ids, args.coding, args.t_low, progress=not args.no_progress,
                                              thresholds=args.thresholds)
        save()
    if "schedule" not in res:
        costs = {T: site_cost(sm, sens_ids, args.coding, T, thresholds=args.thresholds) for T in (args.t_low, args.t_mid, args.t_high)}
        budget = sum(costs[args.t_mid].values())
        res["site_cost"] = {str(T): c for T, c in costs.items()}
        res["schedule"] = greedy_schedule(res["sensitivity"], costs[args.t_low], costs[args.t_high],
                                          args.t_low, args.t_high, budget, per_op=args.rank == "per-op")
        res["rank"] = args.rank
        res["budget_synaptic_ops"] = budget
        save()
    if not args.skip_ppl and "schedule_eval" not in res:
        sm.configure(args.coding, res["schedule"], thresholds=args.thresholds)
        sm.reset_events()
        with torch.no_grad():
            r = hf_text_perplexity(sm.logits_fn(), tok, text, window=args.window, stride=args.stride,
                                   max_tokens=args.max_tokens, progress=not args.no_progress)
        ev = sm.events_per_token()
        res["schedule_eval"] = {"token_ppl": r["token_ppl"], "word_ppl": r["word_ppl"], "bits_per_byte": r["bits_per_byte"],
                                "tokens": r["tokens"], "events_per_token": ev["total"],
                                "sites_at_t_high": sum(1 for k, v in res["schedule"].items() if k != "default" and v == args.t_high),
                                "mean_timesteps": sm.describe()["mean_timesteps"]}
        save()
        print(f"mixed schedule: token ppl {r['token_ppl']:.3f}, {ev['total']['synaptic_ops']:.4g} syn ops/token", file=sys.stderr)
    if "weight_snr" not in res:
        res["weight_snr"] = weight_format_snr(sm, sens_ids[:1])
        save()
    if not args.skip_ppl and args.ternary_tokens > 0 and "ternary_eval" not in res:
        snr = res["weight_snr"]
        res["ternary_eval"] = {}
        chosen = {"all": list(snr), f"ternary SNR >= {args.ternary_snr_db:g} dB": [n for n, v in snr.items() if v["ternary"] >= args.ternary_snr_db]}
        for label, names in chosen.items():
            sm.configure(None, 1, "int8", ternary=names)           # dense activations: the weight format alone
            with torch.no_grad():
                r = hf_text_perplexity(sm.logits_fn(), tok, text, window=args.window, stride=args.stride,
                                       max_tokens=args.ternary_tokens, progress=not args.no_progress)
            res["ternary_eval"][label] = {"linears": len(names), "token_ppl": r["token_ppl"], "tokens": r["tokens"]}
            save()
        sm.configure(None, 1, "int8")
        with torch.no_grad():
            r = hf_text_perplexity(sm.logits_fn(), tok, text, window=args.window, stride=args.stride,
                                   max_tokens=args.ternary_tokens, progress=False)
        res["ternary_eval"]["none (int8 only)"] = {"linears": 0, "token_ppl": r["token_ppl"], "tokens": r["tokens"]}
        save()
    if args.plot_dir:
        for p in plot_errors(res, Path(args.plot_dir), prefix=f"{args.coding}{args.t_low}_{args.thresholds}"):
            print(p)
    print(json.dumps({k: res[k] for k in ("key", "schedule_eval") if k in res}, indent=1))
    return 0
