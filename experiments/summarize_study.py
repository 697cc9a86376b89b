"""``nmllm summarize-study``: the summarisation test case over the first CNN/DailyMail test articles — quality
and cost per summary of the dense model on this CPU, its int8 dynamically quantised twin on this CPU, the
spike-converted model on the neuromorphic targets and an edge GPU, in one table (``docs/summarize.md``).

* ``cpu``: summaries of the first ``--n-articles`` articles by SmolLM2 on this CPU, ``--variant dense`` (float32)
  or ``int8-dynamic`` (``torch.ao.quantization.quantize_dynamic`` of every ``nn.Linear``), each with its
  ROUGE, time to first token, decode wall time and the process's CPU time; resumable per article.
* ``errors``: per-site and per-layer spike error (:func:`models.transformer.error_analysis.layer_similarity`)
  of the converted model on chosen articles (prompt + dense summary), resumable per article.
* ``compose``: the study JSON from the committed 200-article decodes (``docs/spike_conversion/rouge_*_200.json``,
  their per-article ROUGE recomputed here), the converted run's measured event counts, the CPU runs, the error
  runs and the cited edge-GPU specs; hardware costs of the converted model are modelled by
  :mod:`sim.system.transformer`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

__all__ = ["VARIANTS", "CPU_W_PER_CORE", "EDGE_GPU", "timed_summary", "cpu_variant", "roofline_gpu", "per_article_rouge", "compose",
           "study_rows", "worst_articles", "worst_rows", "error_contrast", "plot_study", "run_cpu", "run_errors", "register"]

#: CPU variants of the dense model: float32, and torch's dynamic int8 quantisation of every ``nn.Linear`` with
#: one weight scale per tensor (its default) or per output channel.
VARIANTS = ("dense", "int8-dynamic", "int8-dynamic-channel")
RUNS = Path("runs/summarize")
OUT = Path("docs/summarize")
#: Stated power of one busy core of this machine's Xeon (no RAPL here): an assumption, with its range.
CPU_W_PER_CORE = {"w": 6.0, "range": [3.0, 12.0],
                  "why": "assumed: a 2.1 GHz server Xeon at 150-205 W TDP over 24-28 cores is 5-9 W per core; "
                         "this machine exposes no RAPL, so the power is stated, not measured"}
#: The edge GPU of the roofline: NVIDIA Jetson Orin Nano 8 GB, its two power modes (cited specs).
EDGE_GPU = {
    "name": "Jetson Orin Nano 8 GB",
    "source": "NVIDIA, 'NVIDIA Jetson Orin Nano Developer Kit Gets a Super Boost' (developer.nvidia.com blog, Dec "
              "2024) and the Jetson Orin Nano module datasheet: 128-bit LPDDR5, 68 GB/s at 15 W (40 INT8 sparse "
              "TOPS), 102 GB/s at 25 W in the Super mode (67 INT8 sparse TOPS)",
    "modes": {"15 W": {"bandwidth_gbs": 68.0, "power_w": 15.0, "int8_sparse_tops": 40.0},
              "25 W (Super)": {"bandwidth_gbs": 102.0, "power_w": 25.0, "int8_sparse_tops": 67.0}},
    "weight_bytes": 2, "kv_bytes": 2,
    "assumptions": "fp16 weights and KV cache; dense fp16 tensor-core rate = INT8 sparse TOPS / 4 (Ampere: sparse "
                   "doubles, fp16 halves the INT8 rate); a decode token reads every weight once (lm_head tied to the "
                   "embedding) plus the KV cache; prefill is bound by the larger of compute and one weight pass; "
                   "energy = the mode's whole-module power x the bound time (a lower bound at that power)",
}


def timed_summary(model, tok, article: str, max_new_tokens: int, max_article_tokens: int) -> dict:
    """The greedy summary of ``article`` (:func:`models.eval.rouge.summarize`) with its wall and CPU time:
    ``ttft_s`` (prompt in, first forward done), ``decode_s`` (the other forwards), and this process's CPU time
    (``*_cpu_s``; on a shared machine the wall time also holds the time other processes held the core)."""
    from models.eval.rouge import summarize

    marks: list[tuple[float, float]] = []
    hooks = [model.register_forward_hook(lambda m, a, o: marks.append((time.perf_counter(), time.process_time())))]
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        text, n_p, n_g = summarize(model, tok, article, max_new_tokens, max_article_tokens)
    finally:
        for h in hooks:
            h.remove()
    t1, c1 = time.perf_counter(), time.process_time()
    return {"summary": text, "prompt_tokens": n_p, "new_tokens": n_g, "forwards": len(marks),
            "ttft_s": marks[0][0] - t0, "decode_s": t1 - marks[0][0], "wall_s": t1 - t0,
            "ttft_cpu_s": marks[0][1] - c0, "decode_cpu_s": c1 - marks[0][1], "cpu_s": c1 - c0}


def _pairs(args) -> list[dict]:
    from models.eval.rouge import default_data_path, load_pairs

    data = Path(args.data) if args.data else default_data_path()
    pairs = load_pairs(data, args.n_articles)
    if len(pairs) < args.n_articles:
        raise ValueError(f"--n-articles {args.n_articles}: {data} holds only {len(pairs)} articles")
    return pairs


def _load(args):
    """``(model, tokenizer)`` of ``--model`` on ``--threads`` threads."""
    import torch

    from models.transformer.loader import is_hf_ref, load_hf_model, load_hf_tokenizer

    if not is_hf_ref(args.model):
        raise ValueError(f"{args.model} is not a Hugging Face model: pass smollm2-135m or a Llama directory")
    tok = load_hf_tokenizer(args.model)
    torch.set_num_threads(args.threads)
    return load_hf_model(args.model), tok


def cpu_variant(model, variant: str):
    """``model`` as the CPU ``variant`` runs it: float32 (``dense``) or every ``nn.Linear`` dynamically quantised
    to int8 weights (one scale per tensor, ``int8-dynamic``, or per output channel, ``int8-dynamic-channel``) with
    its input quantised to 8 bits per call (PyTorch's x86 backend)."""
    if variant == "dense":
        return model
    import warnings

    import torch
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    qconfig = per_channel_dynamic_qconfig if variant == "int8-dynamic-channel" else default_dynamic_qconfig
    with warnings.catch_warnings():     # torch.ao.quantization announces its move to torchao (not installed here)
        warnings.filterwarnings("ignore", message=r"torch\.(ao\.quantization is|quantize_per_(tensor|channel).*are) deprecated")
        return quantize_dynamic(model, {torch.nn.Linear: qconfig}, dtype=torch.qint8)


def run_cpu(args) -> int:
    """``summarize-study cpu``: one variant on this CPU, one record per article (resumable)."""
    from experiments.provenance import provenance
    from experiments.resume import Results, write_json
    from models.eval.rouge import rouge_scores

    if args.variant not in VARIANTS:
        raise ValueError(f"unknown --variant {args.variant!r}: choose one of {', '.join(VARIANTS)}")
    if args.n_articles < 1 or args.max_new_tokens < 1:
        raise ValueError("--n-articles and --max-new-tokens must be >= 1")
    pairs = _pairs(args)
    settings = {"model": args.model, "variant": args.variant, "max_new_tokens": args.max_new_tokens,
                "max_article_tokens": args.max_article_tokens, "threads": args.threads,
                "data": Path(args.data).name if args.data else "cnndm_test_see2017_first2000.jsonl"}
    partial = Path(args.partial or RUNS / f"cpu_{args.variant}.partial.json")
    res = Results(partial, settings)
    keys = [f"{i:04d}" for i in range(args.n_articles)]
    if any(k not in res for k in keys):
        model, tok = _load(args)
        model = cpu_variant(model, args.variant)
        for key in res.pending(keys, desc=f"cpu {args.variant}", unit="article", progress=not args.no_progress):
            p = pairs[int(key)]
            r = timed_summary(model, tok, p["article"], args.max_new_tokens, args.max_article_tokens)
            r["rouge"] = rouge_scores([r["summary"]], [p["highlights"]])
            res.put(key, {"see_index": p.get("see_index"), **r})
    recs = [res[k] for k in keys]
    n = len(recs)
    out = {"settings": settings, "n_articles": n,
           "rouge": {k: sum(r["rouge"][k] for r in recs) / n for k in ("rouge1", "rouge2", "rougeLsum")},
           "totals": {k: sum(r[k] for r in recs) for k in ("prompt_tokens", "new_tokens", "forwards", "ttft_s",
                                                             "decode_s", "wall_s", "ttft_cpu_s", "decode_cpu_s", "cpu_s")},
           "articles": recs, "measured": "summaries, ROUGE, wall and process CPU time on this machine",
           "provenance": provenance()}
    write_json(args.out or OUT / f"cpu_{args.variant}.json", out)
    t = out["totals"]
    print(f"{args.variant}: {n} articles, ROUGE-1 {out['rouge']['rouge1']:.2f}, "
          f"{(t['new_tokens'] - n) / t['decode_s']:.3g} decode tokens/s (wall), {t['cpu_s'] / t['new_tokens']:.3g} "
          f"CPU s per generated token")
    return 0


def run_errors(args) -> int:
    """``summarize-study errors``: the converted model's per-site and per-layer error on chosen articles."""
    import torch

    from experiments.provenance import provenance
    from experiments.resume import Results, write_json
    from models.eval.rouge import build_prompt
    from models.transformer.calibration import get_calibration
    from models.transformer.convert import convert
    from models.transformer.error_analysis import layer_similarity

    try:
        idx = [int(x) for x in args.articles.split(",") if x.strip()]
    except ValueError:
        idx = []
    if not idx or min(idx) < 0:
        raise ValueError(f"--articles {args.articles!r}: give comma-separated test indices >= 0")
    dense = json.loads(Path(args.dense).read_text(encoding="utf-8"))["articles"]
    if max(idx) >= len(dense):
        raise ValueError(f"--articles: {args.dense} holds {len(dense)} summaries, not index {max(idx)}")
    args.n_articles = max(idx) + 1
    pairs = _pairs(args)
    settings = {"model": args.model, "coding": args.coding, "timesteps": args.timesteps, "thresholds": args.thresholds,
                "weights": "int8", "calib_tokens": args.calib_tokens, "max_article_tokens": args.max_article_tokens,
                "dense": str(args.dense)}
    res = Results(Path(args.partial or RUNS / "errors.partial.json"), settings)
    keys = [f"{i:04d}" for i in idx]
    if any(k not in res for k in keys):
        model, tok = _load(args)
        calib = get_calibration(model, tok, args.model, args.calib_tokens, args.calib_cache, progress=not args.no_progress)
        sm = convert(model, calibration=calib, coding=args.coding, timesteps=args.timesteps, weights="int8",
                     thresholds=args.thresholds)
        for key in res.pending(keys, desc="errors", unit="article", progress=not args.no_progress):
            i = int(key)
            prompt = build_prompt(tok, pairs[i]["article"], args.max_article_tokens)
            summ = tok.backend_tokenizer.encode(dense[i]["summary"], add_special_tokens=False).ids
            ids = torch.cat([prompt, torch.tensor([summ], dtype=torch.long)], 1)
            t0 = time.perf_counter()
            sim = layer_similarity(sm, ids)
            res.put(key, {"tokens": int(ids.shape[1]), "prompt_tokens": int(prompt.shape[1]), **sim,
                          "seconds": time.perf_counter() - t0})
    write_json(args.out or OUT / "errors_articles.json",
               {"settings": settings, "articles": {k: res[k] for k in keys},
                "measured": "cosine and SNR of every site's outputs (same inputs) and every layer's hidden state "
                            "(end to end) on the prompt followed by the dense model's summary",
                "provenance": provenance()})
    return 0


def roofline_gpu(mode: dict, params: int, kv_per_token: int, prompt: int, new: int) -> dict:
    """The edge GPU's roofline for one summary: TTFT, decode tokens/s at the mean decode context, J."""
    bw, flops = mode["bandwidth_gbs"] * 1e9, mode["int8_sparse_tops"] * 1e12 / 4
    wb, kb = EDGE_GPU["weight_bytes"], EDGE_GPU["kv_bytes"]
    ttft = max(2 * params * prompt / flops, (params * wb + kv_per_token * prompt * kb) / bw)
    tok = (params * wb + kv_per_token * (prompt + new // 2) * kb) / bw
    seconds = ttft + (new - 1) * tok
    return {"ttft_s": ttft, "tokens_per_s": 1 / tok, "seconds": seconds, "j_per_summary": mode["power_w"] * seconds,
            "j_per_token": mode["power_w"] * tok}


def per_article_rouge(summaries: list[str], refs: list[str]) -> list[dict]:
    """ROUGE-1/2/Lsum of every summary against its reference (:func:`models.eval.rouge.rouge_scores`, one each)."""
    from models.eval.rouge import rouge_scores

    return [rouge_scores([s], [r]) for s, r in zip(summaries, refs)]


def repeats(text: str, n: int = 3) -> int:
    """How often the most frequent word ``n``-gram of ``text`` occurs (a degenerate loop repeats one)."""
    words = text.lower().replace("-", " ").split()
    grams: dict[tuple, int] = {}
    for i in range(len(words) - n + 1):
        grams[tuple(words[i:i + n])] = grams.get(tuple(words[i:i + n]), 0) + 1
    return max(grams.values(), default=0)


def _mean(rows: list[dict]) -> dict:
    return {k: sum(r[k] for r in rows) / len(rows) for k in ("rouge1", "rouge2", "rougeLsum")}


def _site_events(resume: dict, committed: dict) -> dict:
    """Per-token events per site from a ROUGE run's resume file (its running totals), checked against the
    committed record's events per token."""
    carry = resume["carry"]
    tokens = carry[next(iter(carry))]["tokens"]      # forwarded tokens, as SpikeModel.events_per_token divides
    sites = {s: {k: v / tokens for k, v in c["events"].items()} for s, c in carry.items()}
    want, got = committed["events_per_token"]["synaptic_ops"], sum(v["synaptic_ops"] for v in sites.values())
    if tokens != committed["event_tokens"] or abs(got - want) > 1e-6 * want:
        raise ValueError(f"the resume file's event counts ({got:.6g} synaptic ops/token over {tokens} tokens) are not those of "
                         f"the committed record ({want:.6g}): pass the resume file of the same run")
    return sites


def _cpu_row(cpu: dict, committed_rouge: dict | None) -> dict:
    """A CPU baseline row from a ``summarize-study cpu`` record (measured time; energy at the stated power)."""
    t, n, w = cpu["totals"], cpu["n_articles"], CPU_W_PER_CORE
    dec_tokens = t["forwards"] - n
    cpu_per_summary = t["cpu_s"] / n
    return {"rouge": committed_rouge or cpu["rouge"], "timed_articles": n,
            "tokens_per_s": dec_tokens / t["decode_s"], "tokens_per_cpu_s": dec_tokens / t["decode_cpu_s"],
            "ttft_s": t["ttft_s"] / n, "ttft_cpu_s": t["ttft_cpu_s"] / n, "cpu_s_per_summary": cpu_per_summary,
            "j_per_summary": w["w"] * cpu_per_summary, "j_per_summary_range": [x * cpu_per_summary for x in w["range"]],
            "j_per_token": w["w"] * t["decode_cpu_s"] / dec_tokens, "threads": cpu["settings"]["threads"],
            "load_average": cpu["provenance"]["load_average"]}


def compose(args) -> dict:
    """The study record (see the module docstring); written to ``--out``."""
    from dataclasses import asdict

    from experiments.provenance import provenance
    from experiments.resume import write_json
    from experiments.summarize import check_targets
    from sim.system.transformer import NotMappedError, TransformerShape, map_transformer, summary_cost

    here = Path(args.summarize_dir)
    for f in (args.dense, args.converted, args.events):
        if not Path(f).is_file():
            raise FileNotFoundError(f"{f}: no such record (see --dense, --converted, --events)")
    dense, conv = (json.loads(Path(f).read_text(encoding="utf-8")) for f in (args.dense, args.converted))
    if "spike" not in conv or "spike" in dense:
        raise ValueError(f"--dense {args.dense} must be a dense ROUGE record and --converted {args.converted} a spike one")
    n = dense["n_articles"]
    for k in ("n_articles", "max_new_tokens", "max_article_tokens", "prompt_tokens"):
        if conv[k] != dense[k]:
            raise ValueError(f"the dense and converted decodes differ in {k}: they are not one study")
    args.n_articles = n
    pairs = _pairs(args)
    refs = [p["highlights"] for p in pairs]
    from models.eval.rouge import build_prompt
    from models.transformer.loader import load_hf_tokenizer, resolve

    tok = load_hf_tokenizer(args.model)
    prompts = [int(build_prompt(tok, p["article"], dense["max_article_tokens"]).shape[1]) for p in pairs]
    if sum(prompts) != dense["prompt_tokens"]:
        raise ValueError(f"the prompts re-tokenised here ({sum(prompts)} tokens) are not the decodes' "
                         f"({dense['prompt_tokens']}): another tokenizer or data file")
    scores = {view: per_article_rouge([a["summary"] for a in r["articles"]], refs)
              for view, r in (("dense", dense), ("converted", conv))}
    for view, r in (("dense", dense), ("converted", conv)):        # the per-article scores average to the record's
        if abs(_mean(scores[view])["rouge1"] - r["rouge1"]) > 1e-9:
            raise ValueError(f"the {view} per-article ROUGE-1 does not average to the committed {r['rouge1']:.4f}")
    from transformers import AutoConfig

    directory, gguf = resolve(args.model)
    shape = TransformerShape.from_config(AutoConfig.from_pretrained(str(directory), local_files_only=True,
                                                                    **({"gguf_file": gguf} if gguf else {})))
    sites = _site_events(json.loads(Path(args.events).read_text(encoding="utf-8")), conv)
    sp = conv["spike"]
    g = round(conv["generated_tokens"] / n)
    cpu = json.loads((here / "cpu_dense.json").read_text())
    rows = [{"system": "dense float32", "hardware": "this CPU, 1 core", "how": "measured",
             **_cpu_row(cpu, {**_mean(scores["dense"]), "articles": n}),
             "same_summary_as_record": sum(a["summary"] == b["summary"] for a, b in zip(cpu["articles"], dense["articles"]))}]
    for variant, scale in (("int8-dynamic", "tensor"), ("int8-dynamic-channel", "output channel")):
        if (here / f"cpu_{variant}.json").is_file():
            q = json.loads((here / f"cpu_{variant}.json").read_text())
            rows.append({"system": f"dense, torch dynamic int8 (a weight scale per {scale})", "hardware": "this CPU, 1 core",
                         "how": "measured", **_cpu_row(q, {**q["rouge"], "articles": q["n_articles"]}),
                         "dense_rouge_same_articles": {**_mean(scores["dense"][:q["n_articles"]]), "articles": q["n_articles"]}})
    targets = {}
    for name in args.targets.split(","):
        try:
            targets.update(check_targets([name], sp["coding"], sp["thresholds"], sp["weights"]))
        except ValueError as exc:
            rows.append({"system": f"{sp['coding']} T={sp['timesteps']}, {sp['thresholds']} thresholds", "hardware": name,
                         "how": "modelled", "not_mapped": str(exc).split("; use ")[0]})
    for name, (preset, fmt) in targets.items():
        row = {"system": f"{sp['coding']} T={sp['timesteps']}, {sp['thresholds']} thresholds", "hardware": name,
               "how": "modelled", "rouge": {**_mean(scores["converted"]), "articles": n}}
        try:
            costs = [summary_cost(map_transformer(shape, preset, sp["weights"], fmt, p + g), preset, sites, p, g)
                     for p in prompts]
        except NotMappedError as exc:
            rows.append({**row, "not_mapped": str(exc).removeprefix(f"{name}: not mapped (").removesuffix(")"),
                         "rouge": None})
            continue

        def mean(f, costs=costs) -> float:
            return sum(f(c) for c in costs) / len(costs)
        row.update({"spike_format": fmt, "estimate": preset.estimate, "chips": max(c["chips"] for c in costs),
                    "tokens_per_s": mean(lambda c: c["tokens_per_s"]), "ttft_s": mean(lambda c: c["ttft_s"]),
                    "j_per_summary": mean(lambda c: c["j_per_summary"]["total"]),
                    "j_per_summary_static": mean(lambda c: c["j_per_summary"]["static"]),
                    "j_per_summary_dynamic": mean(lambda c: c["j_per_summary"]["prefill_dynamic"] + c["j_per_summary"]["decode_dynamic"]),
                    "j_per_summary_range": [mean(lambda c, i=i: c["j_per_summary"]["prefill_dynamic"] + c["j_per_summary"]["decode_dynamic"]
                                                 + c["j_per_summary"]["static_range"][i]) for i in (0, 1)],
                    "j_per_token": mean(lambda c: c["j_per_token"]["dynamic"] + c["j_per_token"]["static"])})
        rows.append(row)
    params = sum(shape.linear(k)[0] * shape.linear(k)[1] for k in ("attn_in", "attn_out", "mlp_in", "mlp_out")) * shape.layers
    params += shape.linear("lm_head")[0] * shape.linear("lm_head")[1]
    for mode_name, mode in EDGE_GPU["modes"].items():
        r = [roofline_gpu(mode, params, shape.kv_values_per_token, p, g) for p in prompts]
        rows.append({"system": "dense fp16", "hardware": f"{EDGE_GPU['name']}, {mode_name}", "how": "roofline",
                     "rouge": None, "rouge_why": "not run: no GPU here",
                     **{k: sum(x[k] for x in r) / n for k in ("tokens_per_s", "ttft_s", "j_per_summary", "j_per_token")}})
    delta = [{"index": i, "see_index": dense["articles"][i]["see_index"], "prompt_tokens": prompts[i],
              "dense": scores["dense"][i], "converted": scores["converted"][i],
              "delta_rouge1": scores["converted"][i]["rouge1"] - scores["dense"][i]["rouge1"],
              "same_summary": dense["articles"][i]["summary"] == conv["articles"][i]["summary"],
              "repeats": {v: repeats(r["articles"][i]["summary"]) for v, r in (("dense", dense), ("converted", conv))},
              "converted_start": conv["articles"][i]["summary"][:80]} for i in range(n)]
    out = {"n_articles": n, "settings": {k: dense[k] for k in ("max_new_tokens", "max_article_tokens")} |
           {"decoding": "greedy, chat template", "model": dense["model"]}, "spike": sp,
           "generated_tokens": {"dense": dense["generated_tokens"], "converted": conv["generated_tokens"]},
           "new_tokens_costed": g, "shape": {"params_linear": params, **asdict(shape)},
           "events": {"source": f"`{args.events}` (the run's running totals over {conv['event_tokens']:,} forwarded "
                                 f"tokens of all {n} articles: a mean, not per article)", "per_site": sites},
           "cpu_power": CPU_W_PER_CORE, "edge_gpu": EDGE_GPU, "rows": rows, "articles": delta,
           "records": [str(args.dense), str(args.converted)],
           "measured": "summaries and ROUGE (the committed decodes; per-article ROUGE recomputed), CPU wall and CPU "
                       "time, the converted model's events", "modelled": "every neuromorphic cost "
                       "(sim.system.transformer), the edge GPU (roofline from cited specs), CPU energy (stated power)"}
    errs = here / "errors_articles.json"
    if errs.is_file():
        out["errors"] = json.loads(errs.read_text())
    if args.corpus_errors and Path(args.corpus_errors).is_file():    # the WikiText-2 error analysis, for contrast
        e = json.loads(Path(args.corpus_errors).read_text())
        sens = sorted(e["sensitivity"].items(), key=lambda kv: -kv[1])
        out["corpus_errors"] = {"source": str(args.corpus_errors), "coding": e["coding"], "t": e["t_low"],
                                "thresholds": e["thresholds"], "sensitivity_tokens": e["sensitivity_tokens"],
                                "most_sensitive": sens[:8], "local_snr_db": {k: v["snr_db"] for k, v in
                                                                             e["similarity"]["sites"].items()}}
    out["provenance"] = provenance()
    write_json(args.out or here / f"study_{n}.json", out)
    return out


def _g(x: float) -> str:
    return f"{x:.3g}"


def study_rows(study: dict) -> tuple[list[str], list[list[str]]]:
    """The study's table (printed by ``compose``, generated into docs/summarize.md and the README)."""
    head = ["model", "hardware", "how the cost is obtained", "ROUGE-1 / 2 / Lsum (articles)", "tokens/s",
            "TTFT (s)", "J per summary (range)", "J per generated token"]
    how = {"measured": "measured time; energy = CPU time x stated {w:g} W/core ({lo:g}-{hi:g} W)",
           "modelled": "modelled from the measured events (sim/system/transformer.py){est}",
           "roofline": "roofline from cited specs, energy = module power x time"}
    w = study["cpu_power"]
    out = []
    for r in study["rows"]:
        label = how[r["how"]].format(w=w["w"], lo=w["range"][0], hi=w["range"][1],
                                     est="; preset is an estimate" if r.get("estimate") else "")
        if "not_mapped" in r:
            out.append([r["system"], r["hardware"], f"not mapped: {r['not_mapped']}"] + [""] * (len(head) - 3))
            continue
        g = r.get("rouge")
        q = (f"{g['rouge1']:.2f} / {g['rouge2']:.2f} / {g['rougeLsum']:.2f} ({g['articles']})" if g
             else r.get("rouge_why", ""))
        if "dense_rouge_same_articles" in r:
            q += f"; dense on the same articles: {r['dense_rouge_same_articles']['rouge1']:.2f}"
        rng = r.get("j_per_summary_range")
        j = _g(r["j_per_summary"]) + (f" ({_g(rng[0])}-{_g(rng[1])})" if rng else "")
        tps = _g(r["tokens_per_s"]) + (f" wall, {_g(r['tokens_per_cpu_s'])} per CPU-s ({r['timed_articles']} "
                                       f"articles timed)" if "tokens_per_cpu_s" in r else "")
        if "chips" in r:
            label += f"; {r['chips']} chips, {r['spike_format']} spikes"
        ttft = _g(r["ttft_s"]) + (f" wall, {_g(r['ttft_cpu_s'])} CPU" if "ttft_cpu_s" in r else "")
        out.append([r["system"], r["hardware"], label, q, tps, ttft, j, _g(r["j_per_token"])])
    return head, out


def worst_articles(study: dict, k: int = 5) -> list[dict]:
    """The ``k`` articles whose converted summary loses most ROUGE-1 against the dense one."""
    return sorted(study["articles"], key=lambda a: a["delta_rouge1"])[:k]


def _errors_of(study: dict, index: int) -> dict | None:
    return study.get("errors", {}).get("articles", {}).get(f"{index:04d}")


def _lowest_sites(err: dict, n: int = 3) -> str:
    return ", ".join(f"{s} {v['snr_db']:.1f}" for s, v in sorted(err["sites"].items(), key=lambda kv: kv[1]["snr_db"])[:n])


def worst_rows(study: dict, k: int = 5) -> tuple[list[str], list[list[str]]]:
    """The worst articles with their ROUGE, the converted summary's start and, where run, its spike errors."""
    head = ["article", "dense ROUGE-1", "converted ROUGE-1", "change", "converted summary starts", "most repeated 3-gram (dense / converted)",
            "logits KL", "last layer cos", "3 sites of lowest local SNR (dB)"]
    rows = []
    for a in worst_articles(study, k):
        e = _errors_of(study, a["index"])
        start = a["converted_start"].replace("|", "/").replace("\n", " ")
        rows.append([str(a["index"]), f"{a['dense']['rouge1']:.1f}", f"{a['converted']['rouge1']:.1f}",
                     f"{a['delta_rouge1']:+.1f}", f"{start}...", f"{a['repeats']['dense']} / {a['repeats']['converted']}",
                     *((f"{e['logits']['kl']:.2f}", f"{e['layers'][-1]['cos']:.3f}", _lowest_sites(e)) if e
                       else ("", "", "not run"))])
    return head, rows


def error_contrast(study: dict, k: int = 5) -> dict | None:
    """Worst ``k`` articles against the other articles of the error run: mean logits KL, mean SNR per site
    and per layer, the sites and layers where the worst articles lose most SNR, and the correlation (Pearson)
    of the logits KL with the ROUGE-1 change over all the articles of the run."""
    errs = study.get("errors", {}).get("articles", {})
    worst = {f"{a['index']:04d}" for a in worst_articles(study, k)}
    groups = {"worst": [v for key, v in errs.items() if key in worst], "contrast": [v for key, v in errs.items() if key not in worst]}
    if not groups["worst"] or not groups["contrast"]:
        return None
    by = {g: {"kl": sum(e["logits"]["kl"] for e in es) / len(es),
              "sites": {s: sum(e["sites"][s]["snr_db"] for e in es) / len(es) for s in es[0]["sites"]},
              "layers": [sum(e["layers"][i]["snr_db"] for e in es) / len(es) for i in range(len(es[0]["layers"]))],
              "articles": sorted(int(key) for key, v in errs.items() if (key in worst) == (g == "worst"))}
          for g, es in groups.items()}
    from statistics import correlation

    delta = {f"{a['index']:04d}": a["delta_rouge1"] for a in study["articles"]}
    keys = sorted(errs)
    by["kl_vs_delta_r"] = correlation([errs[k]["logits"]["kl"] for k in keys], [delta[k] for k in keys])
    gap = {s: by["contrast"]["sites"][s] - by["worst"]["sites"][s] for s in by["worst"]["sites"]}
    lgap = [c - w for c, w in zip(by["contrast"]["layers"], by["worst"]["layers"])]
    top = sorted(gap.items(), key=lambda kv: -kv[1])[:6]
    lowest = [min(e["sites"], key=lambda s: e["sites"][s]["snr_db"]) for e in errs.values()]
    weakest = max(set(lowest), key=lowest.count)
    return {**by, "site_gap_db": top, "layer_gap_db": sorted(enumerate(lgap), key=lambda kv: -kv[1])[:5],
            "site_range_db": {s: {g: [min(e["sites"][s]["snr_db"] for e in es), max(e["sites"][s]["snr_db"] for e in es)]
                                  for g, es in groups.items()} for s, _ in top},
            "weakest_site": [weakest, lowest.count(weakest)]}


def plot_study(study: dict, path: Path) -> Path:
    """ROUGE-1 against J per summary, every point labelled measured / modelled / roofline."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.6), dpi=90)
    markers = {"measured": "o", "modelled": "s", "roofline": "^"}
    for i, r in enumerate(r for r in study["rows"] if "not_mapped" not in r):
        c, rng = f"C{i}", r.get("j_per_summary_range")
        g = r.get("rouge")
        label = f"{r['system']} on {r['hardware']} ({r['how']}" + (f", {g['articles']} articles)" if g else ", no ROUGE)")
        if g is None:                                # no quality measured: the energy alone, as a line
            ax.axvline(r["j_per_summary"], color=c, ls=":", lw=1.5, label=label)
            continue
        err = [[r["j_per_summary"] - rng[0]], [rng[1] - r["j_per_summary"]]] if rng else None
        ax.errorbar([r["j_per_summary"]], [g["rouge1"]], xerr=err, fmt=markers[r["how"]], color=c, capsize=3, ms=7,
                    label=label)
    ax.set_xscale("log")
    ax.set_xlabel("J per summary (bars: the stated CPU power range / the preset's static-power range)")
    ax.set_ylabel("ROUGE-1 (measured)")
    ax.set_ylim(0, 40)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6.5, loc="lower left")
    ax.set_title(f"SmolLM2-135M, first {study['n_articles']} CNN/DailyMail test articles. ROUGE measured. Energy: CPU = "
                 f"measured CPU time x stated W/core,\nneuromorphic = modelled from measured events, edge GPU = roofline "
                 f"from cited specs", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def run_compose(args) -> int:
    """``summarize-study compose``: write the study JSON and the quality-vs-energy plot, print the table."""
    out = compose(args)
    plot_study(out, Path(args.plot or Path(args.summarize_dir) / "quality_vs_energy.png"))
    head, rows = study_rows(out)
    for line in (head, ["---"] * len(head), *rows):
        print("| " + " | ".join(line) + " |")
    return 0


def _common(p) -> None:
    p.add_argument("--model", default="smollm2-135m", help="smollm2-135m (default) or a Hugging Face Llama directory")
    p.add_argument("--data", default=None, help="CNN/DailyMail JSONL (default ../shared/data/cnn_dailymail/...)")
    p.add_argument("--max-article-tokens", type=int, default=384, help="article cut to N tokens (default 384)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--partial", default=None, help="resumable per-article state (default runs/summarize/...)")
    p.add_argument("--out", default=None, help="result JSON (default docs/summarize/...)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers) -> None:
    """Add ``summarize-study`` with ``cpu``, ``errors`` and ``compose``."""
    sp = subparsers.add_parser("summarize-study", help="the 200-article summarisation study: quality vs energy per hardware",
                               description=__doc__.split("\n\n")[0])
    sub = sp.add_subparsers(dest="study_command", required=True)
    p = sub.add_parser("compose", help="the study JSON, table and plot from the committed decodes and the runs here")
    p.add_argument("--model", default="smollm2-135m", help="the model of the decodes (tokenizer and shape)")
    p.add_argument("--data", default=None, help="CNN/DailyMail JSONL (default ../shared/data/cnn_dailymail/...)")
    p.add_argument("--dense", default="docs/spike_conversion/rouge_dense_200.json", help="the dense ROUGE record")
    p.add_argument("--converted", default="docs/spike_conversion/rouge_bitplane8_channel_200.json",
                   help="the converted model's ROUGE record (same articles and lengths)")
    p.add_argument("--events", default="runs/spike/rouge_bitplane8_channel_200.resume.json",
                   help="the converted run's resume file: its per-site event totals (read only)")
    p.add_argument("--summarize-dir", default=str(OUT), help="the CPU and error records; the study is written here")
    p.add_argument("--targets", default="loihi1,loihi2-estimate,crossbar,vck190", help="presets, comma-separated")
    p.add_argument("--corpus-errors", default="docs/spike_conversion/errors_rate_channel.json",
                   help="the WikiText-2 error analysis (nmllm spike errors) quoted beside the per-article errors")
    p.add_argument("--out", default=None, help="study JSON (default docs/summarize/study_<N>.json)")
    p.add_argument("--plot", default=None, help="plot (default docs/summarize/quality_vs_energy.png)")
    p.set_defaults(func=run_compose)
    p = sub.add_parser("cpu", help="dense or int8-dynamic SmolLM2 on this CPU: summaries, ROUGE, time (resumable)")
    _common(p)
    p.add_argument("--variant", default="dense", help=f"{', '.join(VARIANTS)} (default dense)")
    p.add_argument("--n-articles", type=int, default=5, help="the first N test articles (default 5)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="summary length limit in tokens (default 64)")
    p.set_defaults(func=run_cpu)
    p = sub.add_parser("errors", help="per-site / per-layer spike error of the converted model on chosen articles")
    _common(p)
    p.add_argument("--articles", required=True, help="comma-separated CNN/DailyMail test indices")
    p.add_argument("--dense", default="docs/spike_conversion/rouge_dense_200.json", help="the dense summaries")
    p.add_argument("--coding", default="bitplane", help="spike coding (default bitplane)")
    p.add_argument("--timesteps", type=int, default=8, help="T (default 8)")
    p.add_argument("--thresholds", default="channel", choices=("tensor", "channel"), help="default channel")
    p.add_argument("--calib-tokens", type=int, default=4096, help="corpus tokens for threshold calibration")
    p.add_argument("--calib-cache", default=None, help="calibration cache (default runs/spike/calib_<model>_<N>.pt)")
    p.set_defaults(func=run_errors)
