"""``nmllm spike``: the spike-conversion study of a pre-trained transformer (SmolLM2-135M).

Subcommands
-----------
``study``      dense baseline, int8 weights alone, and every coding x T: WikiText-2 test perplexity on the
               first ``--max-tokens`` tokens, events per token (and ROUGE on ``--rouge-articles`` articles
               for the points named by ``--rouge-points``), one point at a time into ``--out``: a JSON bound
               to the settings that decide the numbers (:mod:`experiments.resume`), rewritten atomically
               after every point; a rerun resumes it and may add points, one with other settings is refused.
``plot``       quality against events per token from a study JSON (small PNGs).
``table``      the study as a markdown table.
``errors``     error analysis and the mixed-timestep schedule (runner :mod:`experiments.spike_errors`,
               algorithms :mod:`models.transformer.error_analysis`).
``interpret``  firing rates, spike-count entropy and NMI with ambiguous/clear sentences (runner
               :mod:`experiments.spike_interpret`, algorithms :mod:`models.transformer.interpret`).

This module (``experiments/spike_study.py``) registers ``spike`` and runs ``study``/``plot``/``table``.
Thresholds are calibrated on corpus text (``<data>/corpus``) and cached in
``runs/spike/calib_<model>_<tokens>.pt`` (:mod:`models.transformer.calibration`); the evaluation sets
are never used for calibration.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from experiments.provenance import provenance
from experiments.resume import Results
from experiments.spike_errors import add_error_arguments, run_error_analysis
from experiments.spike_interpret import add_interpret_arguments, run_interpret
from models.transformer.calibration import RUNS, get_calibration

__all__ = ["register", "study", "plot_study", "study_table", "merge_studies"]


def _load(model_ref: str, threads: int):
    import torch

    from models.transformer.loader import load_hf_model, load_hf_tokenizer

    torch.set_num_threads(threads)
    return load_hf_model(model_ref), load_hf_tokenizer(model_ref)


def _points(codings: list[str], timesteps: list[int]) -> list[str]:
    return ["dense", "int8"] + [f"{c}:{T}" for c in codings for T in timesteps]


def _configure(sm, key: str, weights: str = "int8", thresholds: str = "tensor") -> None:
    if key == "dense":
        sm.set_dense(True)
        return
    if key == "int8":
        sm.configure(None, 1, weights)
        return
    coding, T = key.split(":")
    sm.configure(coding, int(T), weights, thresholds=thresholds)


#: The flags that decide a study's numbers: a study file is bound to them (``--threads``, ``--batch-size`` and
#: the point list are free; a rerun may add points).
STUDY_SETTINGS = ("model", "data", "max_tokens", "window", "stride", "calib_tokens", "thresholds", "rouge_articles",
                  "max_new_tokens", "max_article_tokens")


def study(args: argparse.Namespace) -> int:
    """``nmllm spike study``: the points one at a time into ``--out`` (resumed), then the plots."""
    from models.eval.options import check_options
    check_options(**vars(args))                          # bad flags fail now, not after minutes of loading
    import torch

    from models.eval.perplexity import default_data_path
    from models.transformer.convert import convert
    from models.transformer.loader import hf_text_perplexity

    data = str(args.data or default_data_path())
    res = Results(args.out, {k: data if k == "data" else getattr(args, k) for k in STUDY_SETTINGS})
    if res.resumed:
        print(f"resuming {res.resumed} points of {res.path}", file=sys.stderr)
    model, tok = _load(args.model, args.threads)
    calib = get_calibration(model, tok, args.model, args.calib_tokens, args.calib_cache, progress=not args.no_progress)
    sm = convert(model, calibration=calib, coding=None, timesteps=1)
    text = Path(data).read_text(encoding="utf-8")
    codings = [c for c in args.codings.split(",") if c]
    Ts = [int(t) for t in args.timesteps.split(",") if t]
    rouge_points = set(p for p in args.rouge_points.split(",") if p) if args.rouge_articles > 0 else set()
    pairs = None
    if rouge_points:
        from models.eval.rouge import default_data_path as cnn_path, load_pairs
        pairs = load_pairs(cnn_path(), args.rouge_articles)
    keys = ["dense", "int8"] + [k for k in args.points.split(",") if k] if getattr(args, "points", None) else _points(codings, Ts)
    for key in keys:
        rec = res.get(key, {})
        want_rouge = key in rouge_points and "rouge" not in rec
        if "ppl" in rec and not want_rouge:
            continue
        _configure(sm, key, thresholds=args.thresholds)
        sm.set_counting(True)
        if "ppl" not in rec:
            sm.reset_events()
            with torch.no_grad():
                r = hf_text_perplexity(sm.logits_fn(), tok, text, window=args.window, stride=args.stride,
                                       max_tokens=args.max_tokens, batch_size=args.batch_size,
                                       progress=not args.no_progress)
            rec["ppl"] = {k: r[k] for k in ("token_ppl", "word_ppl", "bits_per_byte", "tokens", "forward_tokens",
                                            "seconds", "forward_tok_per_s")}
            if key != "dense":
                ev = sm.events_per_token()
                rec["events_per_token"] = ev["total"]
                rec["events_per_layer"] = ev["layers"]
            rec["describe"] = sm.describe() if key != "dense" else {"coding": "dense float32"}
            rec["provenance"] = provenance()
            rec = res.put(key, rec)
            print(f"{key:>16}: token ppl {r['token_ppl']:.3f}  "
                  f"{rec.get('events_per_token', {}).get('synaptic_ops', float('nan')):.4g} syn ops/token", file=sys.stderr)
        if want_rouge:
            from models.eval.rouge import evaluate_rouge
            sm.reset_events()
            rr = evaluate_rouge(model, tok, pairs, args.max_new_tokens, args.max_article_tokens,
                                progress=not args.no_progress)
            rec["rouge"] = {k: rr[k] for k in ("rouge1", "rouge2", "rougeLsum", "n_articles", "seconds",
                                               "generated_tokens", "prompt_tokens")}
            rec["rouge_summaries"] = [a["summary"] for a in rr["articles"]]
            rec["rouge_provenance"] = provenance()
            res.put(key, rec)
            print(f"{key:>16}: ROUGE-1/2/Lsum {rr['rouge1']:.2f}/{rr['rouge2']:.2f}/{rr['rougeLsum']:.2f}", file=sys.stderr)
        sm.set_dense(False)
    if args.plot_dir:
        plot_study({"settings": res.settings, "points": res.points}, Path(args.plot_dir))
    return 0


def plot_study(res: dict, out_dir: Path) -> list[Path]:
    """``spike_quality_vs_events.png`` (token perplexity vs synaptic ops per token, one line per coding)
    and, where ROUGE exists, ``spike_rouge_vs_events.png``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    pts = res["points"]
    dense = pts.get("dense", {}).get("ppl", {}).get("token_ppl")
    by_coding: dict[str, list] = {}
    for key, rec in pts.items():
        if ":" in key and "ppl" in rec:
            c, T = key.split(":")
            by_coding.setdefault(c, []).append((int(T), rec["events_per_token"]["synaptic_ops"], rec["ppl"]["token_ppl"],
                                               rec.get("rouge", {}).get("rougeLsum")))
    paths = []
    meta = res.get("settings", {})
    for what, idx, fname, ylabel in (("ppl", 2, "spike_quality_vs_events.png", "token perplexity (log)"),
                                     ("rouge", 3, "spike_rouge_vs_events.png", "ROUGE-Lsum F1")):
        fig, ax = plt.subplots(figsize=(5.2, 3.6), dpi=90)
        any_point = False
        for c, rows in sorted(by_coding.items()):
            rows = sorted(r for r in rows if r[idx] is not None)
            if not rows:
                continue
            any_point = True
            ax.plot([r[1] for r in rows], [r[idx] for r in rows], marker="o", label=c)
            for r in rows:
                ax.annotate(f"T={r[0]}", (r[1], r[idx]), fontsize=6, xytext=(2, 2), textcoords="offset points")
        ref = dense if what == "ppl" else pts.get("dense", {}).get("rouge", {}).get("rougeLsum")
        if ref is not None:
            ax.axhline(ref, color="k", ls="--", lw=1, label="dense float")
        i8 = pts.get("int8", {}).get("ppl" if what == "ppl" else "rouge", {})
        i8v = i8.get("token_ppl" if what == "ppl" else "rougeLsum")
        if i8v is not None:
            ax.axhline(i8v, color="gray", ls=":", lw=1, label="int8 weights, dense act.")
        if not any_point:
            plt.close(fig)
            continue
        macs = next((r["events_per_token"]["dense_macs"] for r in pts.values()
                     if r.get("events_per_token", {}).get("dense_macs")), None)
        if macs:
            ax.axvline(macs, color="k", lw=0.8, alpha=0.5, label="dense MACs/token")
        ax.set_xscale("log")
        if what == "ppl":
            ax.set_yscale("log")
        ax.set_xlabel("synaptic ops per token (log)")
        ax.set_ylabel(ylabel)
        sub = (f"WikiText-2 test, first {meta.get('max_tokens')} tokens" if what == "ppl"
               else f"CNN/DM test, first {meta.get('rouge_articles')} articles")
        ax.set_title(f"{meta.get('model', '')}: {sub}", fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
        fig.tight_layout()
        p = out_dir / fname
        fig.savefig(p)
        plt.close(fig)
        paths.append(p)
    return paths


def study_table(res: dict) -> str:
    """Markdown table of a study: one row per point (dense, int8, coding x T)."""
    meta = res.get("settings", {})
    rows = ["| point | coding | T | token ppl | word ppl | bits/byte | spikes/token | synaptic ops/token | "
            "dense MACs/token | ROUGE-1/2/Lsum |", "|---|---|---|---|---|---|---|---|---|---|"]
    dense_macs = next((r["events_per_token"]["dense_macs"] for k, r in res["points"].items()
                       if "events_per_token" in r and r["events_per_token"]["dense_macs"]), None)

    def order(k):
        if k == "dense":
            return (0, "", 0)
        if k == "int8":
            return (1, "", 0)
        c, T = k.split(":")
        return (2, c, int(T) if T.isdigit() else 99)

    for key in sorted(res["points"], key=order):
        rec = res["points"][key]
        if "ppl" not in rec:
            continue
        p = rec["ppl"]
        ev = rec.get("events_per_token")
        coding, T = (key.split(":") + [""])[:2] if ":" in key else (
            ("dense float32" if key == "dense" else "int8 weights, dense activations"), "-")
        rg = rec.get("rouge")
        rtxt = f"{rg['rouge1']:.2f} / {rg['rouge2']:.2f} / {rg['rougeLsum']:.2f}" if rg else ""
        if ev and ev["input_events"]:
            evs = f"{ev['input_events']:.3g} | {ev['synaptic_ops']:.3g} | {ev['dense_macs']:.3g}"
        else:
            evs = f"- | - | {dense_macs:.3g}" if dense_macs else "- | - | -"
        rows.append(f"| {key} | {coding} | {T} | {p['token_ppl']:.4g} | {p['word_ppl']:.4g} | {p['bits_per_byte']:.3f} | "
                    f"{evs} | {rtxt} |")
    head = (f"Perplexity: WikiText-2 test, first {meta.get('max_tokens')} tokens, window {meta.get('window')}, stride "
            f"{meta.get('stride')}; thresholds calibrated with --calib-tokens {meta.get('calib_tokens')}.")
    head += f" Thresholds: {meta.get('thresholds', 'tensor')}."
    return head + "\n\n" + "\n".join(rows)


def _cmd_table(args: argparse.Namespace) -> int:
    print(study_table(json.loads(Path(args.study).read_text())))
    return 0


def merge_studies(studies: list[dict]) -> dict:
    """One study dict of several (e.g. per-site and per-channel thresholds); with more than one, each
    coding is labelled with its thresholds (``rate (channel):8``)."""
    if len(studies) == 1:
        return studies[0]
    out = {"settings": dict(studies[0].get("settings", {})), "points": {}}
    for st in studies:
        th = st.get("settings", {}).get("thresholds", "tensor")
        for key, rec in st["points"].items():
            if ":" in key:
                c, T = key.split(":")
                out["points"][f"{c} ({th}):{T}"] = rec
            else:
                out["points"].setdefault(key, rec)
    return out


def _cmd_plot(args: argparse.Namespace) -> int:
    res = merge_studies([json.loads(Path(p).read_text()) for p in args.study])
    for p in plot_study(res, Path(args.out)):
        print(p)
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="smollm2-135m", help="smollm2-135m (default) or a Hugging Face layout directory")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--calib-tokens", type=int, default=4096, help="corpus tokens for threshold calibration")
    p.add_argument("--calib-cache", default=None, help="calibration cache (default runs/spike/calib_<model>_<N>.pt)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")


def register(subparsers) -> argparse.ArgumentParser:
    """Add ``spike`` with its subcommands to the ``nmllm`` parser."""
    sp = subparsers.add_parser("spike", help="spike conversion of a pre-trained transformer: study, plots, errors, interpretability",
                               description=__doc__.split("\n\n")[0])
    sub = sp.add_subparsers(dest="spike_command", required=True)

    p = sub.add_parser("study", help="perplexity (and ROUGE) + events per token for dense, int8 and each coding x T")
    _common(p)
    p.add_argument("--codings", default="rate,ttfs,bitplane", help="comma-separated codings")
    p.add_argument("--timesteps", default="1,2,4,8,16", help="comma-separated T values")
    p.add_argument("--points", default=None, help="explicit points in this order instead of codings x timesteps, e.g. rate:4,bitplane:8")
    p.add_argument("--data", default=None, help="raw text for perplexity (default WikiText-2 test)")
    p.add_argument("--thresholds", default="tensor", choices=("tensor", "channel"),
                   help="one threshold per site (tensor, default) or per input neuron (channel)")
    p.add_argument("--max-tokens", type=int, default=8192, help="score the first N tokens (default 8192)")
    p.add_argument("--window", type=int, default=256)
    p.add_argument("--stride", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--rouge-articles", type=int, default=0, help="ROUGE on the first N CNN/DM test articles (0: none)")
    p.add_argument("--rouge-points", default="dense", help="points that get ROUGE, e.g. dense,int8,rate:8,bitplane:4")
    p.add_argument("--max-new-tokens", type=int, default=80)
    p.add_argument("--max-article-tokens", type=int, default=512)
    p.add_argument("--out", default=str(RUNS / "study.json"),
                   help="result JSON (resumed if it exists and has the same settings; new points are added)")
    p.add_argument("--plot-dir", default=None, help="also write the plots here")
    p.set_defaults(func=study)

    p = sub.add_parser("plot", help="plots of one or more study JSONs (one figure)")
    p.add_argument("--study", action="append", required=True, help="study JSON (repeat to overlay several)")
    p.add_argument("--out", default="docs")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("table", help="markdown table of a study JSON")
    p.add_argument("--study", default=str(RUNS / "study.json"))
    p.set_defaults(func=_cmd_table)

    p = sub.add_parser("errors", help="per-layer cosine/SNR, where loss concentrates, sensitivity -> mixed schedule")
    _common(p)
    add_error_arguments(p)
    p.set_defaults(func=run_error_analysis)

    p = sub.add_parser("interpret", help="firing rate, entropy and NMI with ambiguous vs clear sentences, per layer")
    _common(p)
    add_interpret_arguments(p)
    p.set_defaults(func=run_interpret)
    return sp
