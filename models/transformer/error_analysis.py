"""Error analysis of a spike-converted transformer and the mixed-timestep schedule it leads to
(``models/transformer/error_analysis.py``; run by ``nmllm spike errors``, :mod:`experiments.spike_errors`).

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

import math

import torch
import torch.nn.functional as F

__all__ = ["cos_snr", "layer_similarity", "TOKEN_TYPES", "token_type", "token_nll", "token_type_loss",
           "site_sensitivity", "weight_format_snr", "site_cost", "greedy_schedule"]


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
