"""``nmllm decode``: greedy, standard beam and spike-based beam search on CNN/DailyMail (``experiments/decode.py``).

Every decoder of :mod:`models.decoding.beam_search` summarises the first ``--n-articles`` test articles
(prompt: :func:`models.decoding.prompts.make_prompt`); the run writes ``results.json`` (ROUGE against the
highlights and lead-3, events per generated token with their named parts, and the run's provenance) and
``rouge_vs_events.png`` to ``--out`` and prints the table. Events per generated token are those of
:func:`models.program.events.token_events` (as in ``nmllm ablation``): the model's input events + synaptic ops +
attention additions of every forward step while decoding, + the spike decoder's output spikes and comparisons
(``event_breakdown_per_token`` names each part; records written before it name ``model_input_events_per_token``
and ``model_synaptic_ops_per_token``). ``--prompt TEXT`` decodes one prompt with every decoder instead;
``--replot`` redraws from the JSON.
Each finished article (every decoder on it) is kept in ``<out>/results.partial.json``, written atomically:
the same command rerun after a kill resumes there, one with other settings is refused
(:mod:`experiments.resume`); the partial file is deleted when ``results.json`` is written.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

from experiments.provenance import provenance
from experiments.resume import Results
from models.decoding.prompts import SUMMARY_CUE

if TYPE_CHECKING:
    from models.decoding.beam_search import Decoded
    from models.program.events import LayerEvents

__all__ = ["register", "run_experiment", "plot"]


def _decoder_specs(beam: int, timesteps: Sequence[int]) -> list[tuple[str, dict]]:
    specs = [("greedy", {"kind": "greedy"}), (f"beam k={beam}", {"kind": "beam", "beam": beam})]
    specs += [(f"spike beam k={beam} T={t}", {"kind": "spike", "beam": beam, "timesteps": t}) for t in timesteps]
    return specs


def _run_one(stepper, spec: dict, prompt, args) -> Decoded:
    from models.decoding.beam_search import beam_search, greedy, spike_beam_search
    from models.text.tokenizer import EOS_ID

    common = dict(max_new_tokens=args.max_new_tokens, eos_id=EOS_ID, no_repeat_ngram=args.no_repeat_ngram)
    if spec["kind"] == "greedy":
        return greedy(stepper, prompt, **common)
    if spec["kind"] == "beam":
        return beam_search(stepper, prompt, spec["beam"], length_penalty=args.length_penalty, **common)
    return spike_beam_search(stepper, prompt, spec["beam"], spec["timesteps"], window=args.window,
                             length_penalty=args.length_penalty, early_termination=not args.no_early_termination,
                             **common)


def _article(stepper, specs: list[tuple[str, dict]], tok, article: str, args) -> dict:
    """Every decoder on one article: per decoder its summary, generated tokens, seconds, model events (golden
    engine) and decoder statistics, and for beam search its score minus greedy's; the prompt's prefill."""
    from models.decoding.beam_search import normalized_score
    from models.decoding.prompts import make_prompt
    from models.decoding.steppers import GoldenStepper
    from models.text.tokenizer import EOS_ID, decode

    golden = isinstance(stepper, GoldenStepper)
    prompt = make_prompt(tok, article, args.article_tokens, args.cue)
    stepper.prefill(prompt)
    rec: dict = {"prefill_tokens": len(prompt), "prefill_events": stepper.prefill_events.as_dict() if golden else None,
                 "decoders": {}}
    out = {}
    for name, spec in specs:
        ev0 = stepper.events if golden else None
        t0 = time.perf_counter()
        d = out[name] = _run_one(stepper, spec, prompt, args)
        rec["decoders"][name] = {"summary": decode(tok, [t for t in d.tokens if t != EOS_ID]).strip(),
                                 "tokens": len(d.tokens), "seconds": time.perf_counter() - t0,
                                 "events": _diff(stepper.events, ev0) if golden else None,
                                 "stats": dict(d.stats)}
    g = out["greedy"]
    for name, spec in specs:
        if spec["kind"] == "beam":  # own score: sum log p (length-normalised as the decoder chooses)
            rec["decoders"][name]["score_vs_greedy"] = (
                out[name].normalized - normalized_score(g.score, len(g.tokens), args.length_penalty))
    return rec


def _diff(a: LayerEvents, b: LayerEvents) -> dict:
    """The event counts of ``a`` minus those of ``b``."""
    from models.program.events import EVENT_FIELDS

    return {f: getattr(a, f) - getattr(b, f) for f in EVENT_FIELDS}


def _sum_events(counts: Sequence[Optional[dict]]) -> LayerEvents:
    """The sum of event-count dicts (``None``: no counts, float engine)."""
    from models.program.events import LayerEvents

    total = LayerEvents()
    for c in counts:
        if c is not None:
            total = total + LayerEvents(**c)
    return total


def run_experiment(args: argparse.Namespace) -> dict:
    """Every decoder on the first ``--n-articles`` CNN/DailyMail test articles; ROUGE and events per token.
    Articles are kept in ``<out>/results.partial.json`` as they finish (resumed after a kill); writes
    ``<out>/results.json`` and returns the result."""
    import numpy as np

    from models.decoding.beam_search import check_int
    from models.decoding.prompts import lead3
    from models.decoding.steppers import GoldenStepper, TorchStepper
    from models.eval.rouge import default_data_path, load_pairs, rouge_scores
    from models.mmfree.checkpoint import load_checkpoint
    from models.program.events import token_events
    from models.program.golden import GoldenModel
    from models.program.integer_program import IntegerProgram
    from models.text.tokenizer import load_tokenizer

    timesteps = [check_int("timesteps", t, 1, "pass T >= 1") for t in args.timesteps]
    check_int("--beam", args.beam, 1, "pass the beam width (1 = greedy)")
    check_int("--article-tokens", args.article_tokens, 1, "pass the article length in tokens")
    data = str(args.data or default_data_path())
    pairs = load_pairs(Path(data), args.n_articles)
    res = Results(Path(args.out) / "results.partial.json", {
        "model": str(args.model), "engine": args.engine, "data": data, "n_articles": args.n_articles,
        "article_tokens": args.article_tokens, "cue": args.cue, "max_new_tokens": args.max_new_tokens,
        "beam": args.beam, "timesteps": timesteps, "window": args.window, "length_penalty": args.length_penalty,
        "no_repeat_ngram": args.no_repeat_ngram, "no_early_termination": args.no_early_termination})
    model = load_checkpoint(args.model).eval()
    tok = load_tokenizer(args.model)
    if args.engine == "golden":
        stepper = GoldenStepper(GoldenModel(IntegerProgram.from_model(model)))
    else:
        stepper = TorchStepper(model)
    specs = _decoder_specs(args.beam, timesteps)
    articles = {f"article {i}": pair["article"] for i, pair in enumerate(pairs)}
    for key in res.pending(articles, desc="decode", unit="article", progress=not args.no_progress):
        res.put(key, _article(stepper, specs, tok, articles[key], args))
    arts = [res[k] for k in articles]
    refs = [p["highlights"] for p in pairs]
    preds = {name: [a["decoders"][name]["summary"] for a in arts] for name, _ in specs}
    samples = [{"see_index": pair.get("see_index"), "reference": pair["highlights"], "lead3": lead3(pair["article"]),
                **{name: preds[name][i] for name, _ in specs}} for i, pair in enumerate(pairs[:args.samples])]
    prefill_tokens = sum(a["prefill_tokens"] for a in arts)
    prefill_events = _sum_events([a["prefill_events"] for a in arts])
    acc = {}
    for name, _ in specs:
        per = [a["decoders"][name] for a in arts]
        stats: dict = {}
        for p in per:
            for k, v in p["stats"].items():
                stats[k] = stats.get(k, 0) + v
        acc[name] = {"tokens": sum(p["tokens"] for p in per), "seconds": sum(p["seconds"] for p in per),
                     "events": _sum_events([p["events"] for p in per]), "stats": stats,
                     "score_vs_greedy": [p["score_vs_greedy"] for p in per if "score_vs_greedy" in p]}
    rows = []
    lead = rouge_scores([lead3(p["article"]) for p in pairs], refs)
    rows.append({"decoder": "lead-3 (extractive)", **lead})
    for name, spec in specs:
        a = acc[name]
        ntok = max(a["tokens"], 1)
        row = {"decoder": name, **rouge_scores(preds[name], refs), "generated_tokens": a["tokens"],
               "tokens_per_summary": a["tokens"] / len(pairs), "seconds": a["seconds"],
               "mean_log_prob_per_token": a["stats"]["log_prob"] / ntok,
               "forward_steps_per_token": a["stats"]["forward_steps"] / ntok,
               "candidates_compared_per_token": a["stats"]["candidates_compared"] / ntok}
        if spec["kind"] == "spike":
            for k in ("output_neuron_updates", "output_spikes", "compare_events", "bound_checks",
                      "neuron_steps_saved", "forward_steps_saved"):
                row[f"{k}_per_token"] = a["stats"][k] / ntok
            full = a["stats"]["output_neuron_updates"] + a["stats"]["neuron_steps_saved"]
            row["neuron_steps_saved_fraction"] = a["stats"]["neuron_steps_saved"] / max(full, 1)
            done = a["stats"]["forward_steps"] + a["stats"]["forward_steps_saved"]
            row["forward_steps_saved_fraction"] = a["stats"]["forward_steps_saved"] / max(done, 1)
        if args.engine == "golden":
            fig = token_events(a["events"], ntok, a["stats"].get("output_spikes", 0), a["stats"].get("compare_events", 0))
            row["events_per_token"], row["event_breakdown_per_token"] = fig["events"], fig
        if a["score_vs_greedy"]:
            diffs = np.array(a["score_vs_greedy"])
            row["articles_scoring_below_greedy"] = int((diffs < 0).sum())
            row["mean_score_gain_over_greedy"] = float(diffs.mean())
        rows.append(row)
    return res.finish(Path(args.out) / "results.json", {
        "model": str(args.model), "engine": args.engine, "data": data,
        "n_articles": len(pairs), "article_tokens": args.article_tokens, "prompt": "[BOS] + article[:A] + cue", "cue": args.cue,
        "max_new_tokens": args.max_new_tokens, "no_repeat_ngram": args.no_repeat_ngram,
        "length_penalty": args.length_penalty, "window_nats": args.window, "beam": args.beam, "timesteps": timesteps,
        "early_termination": not args.no_early_termination,
        "prefill_tokens_per_article": prefill_tokens / len(pairs),
        "prefill_synaptic_ops_per_article": prefill_events.synaptic_ops / len(pairs) if args.engine == "golden" else None,
        "prefill_input_events_per_article": prefill_events.input_events / len(pairs) if args.engine == "golden" else None,
        "rows": rows, "samples": samples, "provenance": provenance(),
    })


def plot(result: dict, path: Path) -> None:
    """Left: ROUGE-1 (circles) and ROUGE-Lsum (squares) against events per generated token, one colour per
    decoder, lead-3 as grey lines. Right: ROUGE-1 against the mean log p per token of the answers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key_x = "events_per_token" if any("events_per_token" in r for r in result["rows"]) else "forward_steps_per_token"
    rows = [r for r in result["rows"] if key_x in r]
    scale = 1e6 if key_x == "events_per_token" else 1.0
    lead = result["rows"][0]
    colors = plt.get_cmap("tab10").colors
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for i, r in enumerate(rows):
        col = colors[i % len(colors)]
        ax.scatter(r[key_x] / scale, r["rouge1"], color=col, marker="o", label=r["decoder"])
        ax.scatter(r[key_x] / scale, r["rougeLsum"], color=col, marker="s", facecolors="none")
        ax2.scatter(r["mean_log_prob_per_token"], r["rouge1"], color=col, marker="o")
    for a in (ax, ax2):
        a.axhline(lead["rouge1"], color="grey", ls=":", lw=1)
        a.grid(alpha=0.3)
    ax.axhline(lead["rougeLsum"], color="grey", ls="--", lw=1)
    ax.set_xlabel("events per generated token (millions: model input events + synaptic ops\n"
                  "+ attention additions + output spikes + compare events)" if scale > 1
                  else "forward steps per generated token (float engine: no event counts)")
    ax.set_ylabel("ROUGE F1 x 100 (o: ROUGE-1, s: ROUGE-Lsum)")
    ax.set_title(f"{result['n_articles']} CNN/DailyMail test articles, bundled MatMul-free LM ({result['engine']})\n"
                 "grey lines: lead-3 ROUGE-1 (dotted), ROUGE-Lsum (dashed)", fontsize=8)
    ax.legend(fontsize=7, loc="center right")
    ax2.set_xlabel("mean log p per generated token of the answer (nats)")
    ax2.set_ylabel("ROUGE-1 F1 x 100")
    ax2.set_title("ROUGE-1 against the model's own likelihood of the answer (same colours)", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _table(result: dict) -> str:
    lines = ["decoder                      R-1    R-2    R-Lsum  logp/tok  fwd/tok  synops/tok   out-events/tok  events/tok"]
    for r in result["rows"]:
        if "generated_tokens" not in r:
            lines.append(f"{r['decoder']:<28} {r['rouge1']:5.2f}  {r['rouge2']:5.2f}  {r['rougeLsum']:6.2f}")
            continue
        oe = r.get("output_spikes_per_token", 0) + r.get("compare_events_per_token", 0)
        synops = r.get("event_breakdown_per_token", {}).get("synaptic_ops", r.get("model_synaptic_ops_per_token",
                                                                                   float("nan")))
        lines.append(f"{r['decoder']:<28} {r['rouge1']:5.2f}  {r['rouge2']:5.2f}  {r['rougeLsum']:6.2f}  "
                     f"{r['mean_log_prob_per_token']:8.3f}  {r['forward_steps_per_token']:7.3f}  {synops:10.4g}   "
                     f"{oe:14.4g}  {r.get('events_per_token', float('nan')):10.4g}")
    return "\n".join(lines)


def _cmd_decode(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    if args.prompt is not None:
        return _cmd_prompt(args)
    out = Path(args.out)
    if args.replot:
        r = json.loads((out / "results.json").read_text())
        plot(r, out / "rouge_vs_events.png")
        print(_table(r))
        return 0
    r = run_experiment(args)
    plot(r, out / "rouge_vs_events.png")
    print(_table(r))
    print(f"wrote {out / 'results.json'} and {out / 'rouge_vs_events.png'}")
    return 0


def _cmd_prompt(args: argparse.Namespace) -> int:
    from models.decoding.steppers import GoldenStepper, TorchStepper
    from models.mmfree.checkpoint import load_checkpoint
    from models.program.golden import GoldenModel
    from models.program.integer_program import IntegerProgram
    from models.text.tokenizer import BOS_ID, EOS_ID, decode, encode, load_tokenizer

    model = load_checkpoint(args.model).eval()
    tok = load_tokenizer(args.model)
    stepper = (GoldenStepper(GoldenModel(IntegerProgram.from_model(model))) if args.engine == "golden"
               else TorchStepper(model))
    prompt = [BOS_ID] + encode(tok, args.prompt)
    for name, spec in _decoder_specs(args.beam, args.timesteps):
        d = _run_one(stepper, spec, prompt, args)
        print(f"{name:<24} score {d.score:9.3f}  {decode(tok, [t for t in d.tokens if t != EOS_ID])!r}")
    return 0


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 4,8,16, not {text!r}") from None


def register(subparsers) -> None:
    """Add ``decode``: greedy, beam and spike beam search on a prompt or on CNN/DailyMail (ROUGE, events)."""
    p = subparsers.add_parser("decode", help="greedy / beam / spike-based beam search: ROUGE and events per token",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/bundled", help="MatMul-free checkpoint directory (default models/bundled)")
    p.add_argument("--engine", choices=("golden", "float"), default="golden",
                   help="golden: Numba golden model, counts model events (default); float: torch QAT view, no model events")
    p.add_argument("--prompt", default=None, help="decode this text with every decoder and print (no ROUGE run)")
    p.add_argument("--data", default=None, help="CNN/DailyMail JSONL (default ../shared/data/cnn_dailymail/...)")
    p.add_argument("--n-articles", type=int, default=200, help="first N test articles (default 200)")
    p.add_argument("--article-tokens", type=int, default=256, help="article cut to its first N tokens (default 256)")
    p.add_argument("--cue", default=SUMMARY_CUE, help="text after the article (default '\\nSummary:')")
    p.add_argument("--max-new-tokens", type=int, default=64, help="summary length limit in tokens (default 64)")
    p.add_argument("--beam", type=int, default=4, help="beam width k (default 4)")
    p.add_argument("--timesteps", type=_int_list, default=[4, 8, 16], help="spike decoder T values (default 4,8,16)")
    p.add_argument("--window", type=float, default=8.0, help="D: log p window in nats; drive clip(log p + D, 0, D), threshold D (default 8)")
    p.add_argument("--length-penalty", type=float, default=1.0, help="final choice by score / length**p (default 1)")
    p.add_argument("--no-repeat-ngram", type=int, default=3, help="block repeated generated n-grams (0: off; default 3)")
    p.add_argument("--no-early-termination", action="store_true", help="spike decoder: run every neuron all T steps")
    p.add_argument("--samples", type=int, default=5, help="summaries of the first N articles kept in the JSON")
    p.add_argument("--out", default="docs/beam_search", help="output directory (results.json, rouge_vs_events.png)")
    p.add_argument("--replot", action="store_true", help="only redraw the plot and table from --out/results.json")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.set_defaults(func=_cmd_decode)
