"""Error analysis of a spike-converted transformer and the mixed-timestep schedule it leads to.

1. **Per-layer information loss** (:func:`layer_similarity`): cosine similarity and SNR
   (``10 log10(|y|^2 / |y - y_spike|^2)``, dB) of

   * every site's linear outputs, the converted layer fed **the same inputs** as the dense one (local
     loss: the coding and weight error of that layer alone), and
   * every decoder layer's output hidden state (the residual stream), the converted model run end to end
     on the same token ids (accumulated loss).

2. **Where the loss concentrates** (:func:`token_type_loss`): the per-token increase of negative
   log-likelihood (converted - dense) on text, grouped by token type (word start lower/upper case,
   word continuation, digits, punctuation, white space) and by token frequency rank (BPE ids are assigned
   roughly in merge = frequency order), with each group's share of the total increase.

3. **Sensitivity -> mixed-timestep schedule** (:func:`site_sensitivity`, :func:`greedy_schedule`): the
   sensitivity of a site is the mean KL divergence ``KL(p_ref || p)`` of the next-token distribution
   when **only that site** is spike-coded at the low ``T`` (all others dense; the reference has the same
   int8 weights and no spike coding), on corpus text (not the test set). Sites are then raised from ``T_low`` to ``T_high`` in decreasing order of sensitivity per
   extra synaptic op until the schedule's synaptic ops per token reach a budget (by default the cost of
   the uniform ``T_mid`` point), and the schedule's perplexity and events are compared with the uniform
   points on the same subset.

4. **Where ternary weights survive** (:func:`weight_format_snr`): local output SNR of every linear layer
   with int8 and with ternary (absmean per output channel) weights on the same inputs, and the
   perplexity with every layer ternary and with only the layers above an SNR floor ternary (activations
   dense, so the weight format alone is measured).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["cos_snr", "weight_format_snr", "layer_similarity", "token_type", "token_type_loss", "site_sensitivity",
           "greedy_schedule", "add_error_arguments", "run_error_analysis"]


def cos_snr(ref: torch.Tensor, test: torch.Tensor) -> tuple[float, float]:
    """Mean per-row cosine similarity (rows = tokens) and SNR in dB of ``test`` against ``ref``."""
    r = ref.reshape(-1, ref.shape[-1]).double()
    t = test.reshape(-1, test.shape[-1]).double()
    cos = float(F.cosine_similarity(r, t, dim=-1).mean())
    noise = float((r - t).square().sum())
    sig = float(r.square().sum())
    snr = math.inf if noise == 0 else 10 * math.log10(sig / noise)
    return cos, snr


@torch.no_grad()
def layer_similarity(sm, ids: torch.Tensor) -> dict:
    """``{"sites": {site: {cos, snr_db}}, "layers": [{layer, cos, snr_db}], "logits": {cos, snr_db, kl}}``."""
    model = sm.model
    captured: dict[str, list] = {}
    handles = []
    for name, lin in sm.linears.items():
        def hook(mod, args, out, name=name):
            captured[name] = (args[0].detach(), out.detach())
        handles.append(lin.register_forward_hook(hook))
    sm.set_dense(True)
    try:
        dense = model(input_ids=ids, use_cache=False, output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
        sm.set_dense(False)
    sites: dict[str, dict] = {}
    sm.set_counting(False)
    try:
        for site in sm.sites:
            refs, tests = [], []
            for name, lin in sm.linears.items():
                if lin.site.name != site:
                    continue
                x, y = captured[name]
                refs.append(y.reshape(-1, y.shape[-1]))
                tests.append(lin(x).reshape(-1, y.shape[-1]))
            c, s = cos_snr(torch.cat(refs, 1), torch.cat(tests, 1))
            sites[site] = {"cos": c, "snr_db": s}
        conv = model(input_ids=ids, use_cache=False, output_hidden_states=True)
    finally:
        sm.set_counting(True)
    layers = []
    for l in range(1, len(dense.hidden_states)):
        c, s = cos_snr(dense.hidden_states[l], conv.hidden_states[l])
        layers.append({"layer": l - 1, "cos": c, "snr_db": s})
    c, s = cos_snr(dense.logits, conv.logits)
    kl = float(F.kl_div(F.log_softmax(conv.logits.double(), -1), F.log_softmax(dense.logits.double(), -1),
                        log_target=True, reduction="none").sum(-1).mean())
    return {"sites": sites, "layers": layers, "logits": {"cos": c, "snr_db": s, "kl": kl}}


TOKEN_TYPES = ("word start, lower", "word start, upper", "word continuation", "digits", "punctuation",
               "white space / newline", "other")


def token_type(piece: str) -> str:
    """Type of a byte-level BPE token string (``Ġ`` = leading space, ``Ċ`` = newline)."""
    space = piece.startswith("Ġ")
    body = piece.lstrip("Ġ")
    if body == "" or set(body) <= {"Ċ", "ĉ", "Ġ"}:
        return "white space / newline"
    if body.isdigit():
        return "digits"
    if all(not ch.isalnum() for ch in body):
        return "punctuation"
    if body[0].isalpha():
        if space:
            return "word start, upper" if body[0].isupper() else "word start, lower"
        return "word continuation"
    return "other"


@torch.no_grad()
def token_nll(fn, ids: torch.Tensor, context_id: int) -> torch.Tensor:
    """Per-token NLL of ``ids`` (1-D) in one window, ``context_id`` prepended."""
    seq = torch.cat([torch.tensor([context_id]), ids]).unsqueeze(0)
    logits = fn(seq[:, :-1]).double()
    return F.cross_entropy(logits[0], seq[0, 1:], reduction="none")


def token_type_loss(sm, tokenizer, ids: torch.Tensor, context_id: int, window: int = 256) -> dict:
    """ΔNLL (converted - dense) per token type and frequency-rank bucket over consecutive windows of ``ids``."""
    fn = sm.logits_fn()
    d_all, c_all = [], []
    for b in range(0, ids.numel(), window):
        chunk = ids[b:b + window]
        sm.set_dense(True)
        d_all.append(token_nll(fn, chunk, context_id))
        sm.set_dense(False)
        c_all.append(token_nll(fn, chunk, context_id))
    d, c = torch.cat(d_all), torch.cat(c_all)
    delta = c - d
    pieces = tokenizer.convert_ids_to_tokens(ids.tolist())
    types = [token_type(p) for p in pieces]
    total = float(delta.sum())
    by_type = {}
    for t in TOKEN_TYPES:
        m = torch.tensor([x == t for x in types])
        if int(m.sum()):
            by_type[t] = {"tokens": int(m.sum()), "dense_nll": float(d[m].mean()), "spike_nll": float(c[m].mean()),
                          "delta_mean": float(delta[m].mean()), "share_of_delta": float(delta[m].sum()) / total if total else 0.0}
    by_rank = {}
    edges = [0, 256, 1024, 4096, 16384, 1 << 30]
    for lo, hi in zip(edges, edges[1:]):
        m = (ids >= lo) & (ids < hi)
        if int(m.sum()):
            by_rank[f"id {lo}-{hi - 1 if hi < 1 << 30 else 'max'}"] = {
                "tokens": int(m.sum()), "delta_mean": float(delta[m].mean()),
                "share_of_delta": float(delta[m].sum()) / total if total else 0.0}
    # where in the window (the first tokens have little context)
    pos = torch.arange(ids.numel()) % window
    by_pos = {}
    for lo, hi in ((0, 16), (16, 64), (64, window)):
        m = (pos >= lo) & (pos < hi)
        if int(m.sum()):
            by_pos[f"pos {lo}-{hi - 1}"] = {"tokens": int(m.sum()), "delta_mean": float(delta[m].mean())}
    worst = torch.argsort(delta, descending=True)[:12]
    return {"tokens": int(ids.numel()), "dense_nll": float(d.mean()), "spike_nll": float(c.mean()),
            "by_type": by_type, "by_rank": by_rank, "by_position": by_pos,
            "worst_tokens": [{"token": pieces[i], "delta": float(delta[i])} for i in worst.tolist()]}


@torch.no_grad()
def site_sensitivity(sm, ids: torch.Tensor, coding: str, t_low: int, weights: str = "int8",
                     progress: bool = False, thresholds: str = "tensor") -> dict[str, float]:
    """KL(dense || only this site spike-coded at ``t_low``) per site, mean over the tokens of ``ids``."""
    fn = sm.logits_fn()
    sm.configure(coding, {"default": 0}, weights)      # reference: the same weights, every site dense
    ref = F.log_softmax(fn(ids).double(), -1)
    out = {}
    sites = list(sm.sites)
    it = sites
    if progress:
        from tqdm import tqdm
        it = tqdm(sites, desc="sensitivity", unit="site")
    for s in it:
        sm.configure(coding, {"default": 0, s: t_low}, weights, thresholds=thresholds)
        lp = F.log_softmax(fn(ids).double(), -1)
        out[s] = float(F.kl_div(lp, ref, log_target=True, reduction="none").sum(-1).mean())
    return out


@torch.no_grad()
def weight_format_snr(sm, ids: torch.Tensor) -> dict[str, dict[str, float]]:
    """Local output SNR (dB) of every linear layer with int8 and with ternary weights (dense inputs, the
    same inputs as the dense model), ``{linear: {"int8": dB, "ternary": dB}}``."""
    from models.transformer.convert import quantize_weight

    captured = {}
    handles = [lin.register_forward_hook(lambda mod, a, o, n=name: captured.__setitem__(n, (a[0].detach(), o.detach())))
               for name, lin in sm.linears.items()]
    sm.set_dense(True)
    try:
        sm.model(input_ids=ids, use_cache=False)
    finally:
        for h in handles:
            h.remove()
        sm.set_dense(False)
    out = {}
    for name, lin in sm.linears.items():
        x, y = captured[name]
        out[name] = {}
        for fmt in ("int8", "ternary"):
            codes, scale = quantize_weight(lin.weight, fmt)
            out[name][fmt] = cos_snr(y, F.linear(x, codes.float() * scale[:, None]))[1]
    return out


def site_cost(sm, ids: torch.Tensor, coding: str, T: int, weights: str = "int8",
              thresholds: str = "tensor") -> dict[str, float]:
    """Synaptic ops per token of every site at uniform ``T`` on ``ids``."""
    sm.configure(coding, T, weights, thresholds=thresholds)
    sm.logits_fn()(ids)
    ev = sm.events_per_token()
    return {s: v["synaptic_ops"] for s, v in ev["sites"].items()}


def greedy_schedule(sensitivity: dict[str, float], cost_low: dict[str, float], cost_high: dict[str, float],
                    t_low: int, t_high: int, budget: float, per_op: bool = True) -> dict[str, int]:
    """Raise sites from ``t_low`` to ``t_high`` by decreasing sensitivity per extra op (``per_op``) or by
    decreasing sensitivity, skipping any site that does not fit, while the total synaptic ops per token
    stay within ``budget``."""
    sched = {"default": t_low}
    total = sum(cost_low.values())
    if per_op:
        order = sorted(sensitivity, key=lambda s: sensitivity[s] / max(cost_high[s] - cost_low[s], 1.0), reverse=True)
    else:
        order = sorted(sensitivity, key=lambda s: sensitivity[s], reverse=True)
    for s in order:
        extra = cost_high[s] - cost_low[s]
        if total + extra <= budget:
            sched[s] = t_high
            total += extra
    return sched


# ---------------------------------------------------------------------------- command
def add_error_arguments(p: argparse.ArgumentParser) -> None:
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
    from models.transformer.loader import context_token_id, hf_text_perplexity, load_hf_model, load_hf_tokenizer
    from models.eval.perplexity import default_data_path
    from experiments.spike_study import get_calibration
    from models.transformer.convert import calibration_token_batches, convert

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
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1) + "\n")

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
