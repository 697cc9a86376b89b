"""``nmllm summarize``: one news article summarised by the dense model and by its spike conversion, with ROUGE
against the reference and, per hardware target, tokens/s, time to first token, J per generated token and J
per summary (prefill + decode), static and dynamic apart.

Quality is measured (the summaries are generated here; ROUGE as :mod:`models.eval.rouge`). Cost is
modelled: the converted model's per-site events, measured on this article, mapped and costed by
:mod:`sim.system.transformer` on each preset. :func:`summarize_article` returns one JSON record per article,
so a study over many articles can resume per article.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TARGETS", "check_targets", "check_context", "summarize_article", "kv_report", "cost_rows", "register"]

#: Targets reported by default (``vck190`` is reported as not mapped for int8 weights).
TARGETS = ("loihi1", "loihi2-estimate", "crossbar", "vck190")


def check_targets(names: list[str], coding: str, thresholds: str, weights: str) -> dict:
    """``{name: (preset, spike format it runs in)}``; a coding/target pair the hardware cannot carry is refused."""
    from sim.system.energy import load_preset, preset_names
    from sim.system.transformer import NotMappedError, check_pair

    if weights not in ("int8", "ternary"):
        raise ValueError(f"--weights {weights}: the hardware holds int8 or ternary weights; pass --weights int8")
    out = {}
    for name in names:
        if name not in preset_names():
            raise ValueError(f"unknown target {name!r}: choose from {', '.join(preset_names())}")
        preset = load_preset(name)
        try:
            out[name] = (preset, check_pair(coding, thresholds, preset))
        except NotMappedError as exc:
            raise ValueError(f"{exc} (or drop {name} from --targets)") from None
    return out


def _article(args) -> tuple[str, str | None, str]:
    """``(article, reference or None, source)`` from ``--text`` or the CNN/DailyMail ``--article`` index."""
    if args.text is not None:
        path = Path(args.text)
        if not path.is_file():
            raise FileNotFoundError(f"--text {path}: no such file")
        ref = None
        if args.reference is not None:
            if not Path(args.reference).is_file():
                raise FileNotFoundError(f"--reference {args.reference}: no such file")
            ref = Path(args.reference).read_text(encoding="utf-8")
        return path.read_text(encoding="utf-8"), ref, str(path)
    from models.eval.rouge import default_data_path, load_pairs

    if args.article < 0:
        raise ValueError(f"--article must be a test-set index >= 0, not {args.article}")
    data = Path(args.data) if args.data else default_data_path()
    pairs = load_pairs(data, args.article + 1)
    if len(pairs) <= args.article:
        raise ValueError(f"--article {args.article}: {data} holds only {len(pairs)} articles")
    rec = pairs[args.article]
    return rec["article"], rec["highlights"], f"{data.name}#{args.article}"


def check_context(tok, shape, article: str, max_article_tokens: int, max_new_tokens: int) -> int:
    """The prompt's tokens; an article whose prompt and summary do not fit the model's context is refused."""
    from models.eval.rouge import build_prompt

    prompt = int(build_prompt(tok, article, max_article_tokens).shape[1])
    if prompt + max_new_tokens > shape.context:
        raise ValueError(f"the prompt ({prompt} tokens) plus {max_new_tokens} new tokens is longer than the model's "
                         f"context of {shape.context}: pass a smaller --max-article-tokens or --max-new-tokens")
    return prompt


def summarize_article(model, tok, sm, shape, targets: dict, article: str, reference: str | None,
                      max_new_tokens: int, max_article_tokens: int, kv_bits: int = 8, progress: bool = True) -> dict:
    """Both summaries of one article with ROUGE and, per target, the modelled cost of the converted one."""
    from tqdm import tqdm

    from models.eval.rouge import rouge_scores, summarize
    from sim.system.transformer import NotMappedError, map_transformer, summary_cost

    prompt = check_context(tok, shape, article, max_article_tokens, max_new_tokens)
    bar = tqdm(total=2 + len(targets), desc="summarize", unit="step", disable=not progress, dynamic_ncols=True)
    out = {"prompt_tokens": prompt, "summaries": {}}
    for view, dense in (("dense", True), ("converted", False)):
        sm.set_dense(dense)
        sm.reset_events()
        text, _, n_g = summarize(model, tok, article, max_new_tokens, max_article_tokens)
        rec = {"summary": text, "new_tokens": n_g}
        if reference is not None:
            rec["rouge"] = rouge_scores([text], [reference])
        out["summaries"][view] = rec
        bar.update()
    sm.set_dense(False)
    ev = sm.events_per_token()
    out["spike"] = sm.describe()
    out["event_tokens"] = ev["tokens"]
    out["events_per_token"] = ev["total"]
    out["events_per_site"] = ev["sites"]          # per token: the costs can be recomputed from the record
    n_g = max(out["summaries"]["converted"]["new_tokens"], 1)
    out["targets"] = {}
    for name, (preset, fmt) in targets.items():
        try:
            mapping = map_transformer(shape, preset, sm.describe()["weights"], fmt, prompt + n_g, kv_bits)
            out["targets"][name] = summary_cost(mapping, preset, ev["sites"], prompt, n_g)
            out["targets"][name]["kv"] = mapping["kv"]
        except NotMappedError as exc:
            out["targets"][name] = {"not_mapped": str(exc)}
        bar.update()
    bar.close()
    return out


def kv_report(shape, targets: dict, weights: str, contexts=(512, 2048), kv_bits: int = 8) -> dict:
    """Chips and KV-cache bytes per target at each context (weights + KV cache)."""
    from sim.system.transformer import NotMappedError, map_transformer

    out = {}
    for name, (preset, fmt) in targets.items():
        try:
            out[name] = {str(c): {k: m[k] for k in ("chips", "cores")} | {"kv_bytes": m["kv"]["bytes"]}
                         for c in contexts for m in [map_transformer(shape, preset, weights, fmt, c, kv_bits)]}
        except NotMappedError as exc:
            out[name] = {"not_mapped": str(exc)}
    return out


def cost_rows(r: dict) -> tuple[list[str], list[list[str]]]:
    """The per-target cost table of a :func:`summarize_article` record: header and rows (printed here, and
    generated into docs/summarize.md by ``nmllm docs``)."""
    head = ["target (spike format)", "chips", "tokens/s", "TTFT (s)", "J/token dynamic", "J/token static",
            "J/summary dynamic (prefill + decode)", "J/summary static (range; boundary)"]
    rows = []
    for name, t in r["targets"].items():
        if "not_mapped" in t:
            rows.append([name, t["not_mapped"]] + ["–"] * (len(head) - 2))
            continue
        j = t["j_per_summary"]
        rows.append([f"{name} ({t['spike_format']})", str(t["chips"]), f"{t['tokens_per_s']:.3g}", f"{t['ttft_s']:.3g}",
                     f"{t['j_per_token']['dynamic']:.3g}", f"{t['j_per_token']['static']:.3g}",
                     f"{j['prefill_dynamic']:.3g} + {j['decode_dynamic']:.3g}",
                     f"{j['static']:.3g} ({j['static_range'][0]:.3g}–{j['static_range'][1]:.3g}; {t['boundary']})"])
    return head, rows


def _print(r: dict) -> None:
    s = r["summaries"]
    for view in ("dense", "converted"):
        rg = s[view].get("rouge")
        score = (f"ROUGE-1 {rg['rouge1']:.2f}, ROUGE-2 {rg['rouge2']:.2f}, ROUGE-Lsum {rg['rougeLsum']:.2f}"
                 if rg else "no reference: no ROUGE")
        print(f"[{view}] ({s[view]['new_tokens']} tokens; {score})\n{s[view]['summary']}\n")
    print(f"converted model ({r['spike']['coding']}, T={r['spike']['timesteps']}, {r['spike']['weights']} weights) "
          f"on the hardware, prompt {r['prompt_tokens']} tokens (MODELLED from the events measured on this article):")
    head, rows = cost_rows(r)
    for line in (head, ["---"] * len(head), *rows):
        print("| " + " | ".join(line) + " |")
    print(f"\nKV cache ({r['settings']['kv_bits']}-bit values) and the chips for weights + cache:")
    for name, k in r["kv_contexts"].items():
        if "not_mapped" in k:
            continue
        print(f"  {name}: " + "; ".join(f"{c} tokens: {v['kv_bytes'] / 2**20:.3g} MiB, {v['chips']} chips"
                                        for c, v in k.items()))


def _run(args) -> int:
    from dataclasses import asdict

    from experiments.provenance import provenance

    if args.max_new_tokens < 1 or args.max_article_tokens < 0 or args.kv_bits < 1:
        raise ValueError("--max-new-tokens and --kv-bits must be >= 1 and --max-article-tokens >= 0")
    from models.transformer.coding import CODINGS

    if args.spike_coding not in CODINGS:
        raise ValueError(f"unknown --spike-coding {args.spike_coding!r}: choose one of {', '.join(CODINGS)}")
    names = [t for t in args.targets.split(",") if t]
    targets = check_targets(names, args.spike_coding, args.thresholds, args.weights)
    article, reference, source = _article(args)
    prov = provenance()
    import torch

    from models.transformer.calibration import get_calibration
    from models.transformer.convert import convert, parse_schedule
    from models.transformer.loader import is_hf_ref, load_hf_model, load_hf_tokenizer, resolve
    from sim.system.transformer import TransformerShape

    directory, gguf = resolve(args.model)
    if not is_hf_ref(args.model):
        raise ValueError(f"{args.model} is a MatMul-free checkpoint; summarize maps spike-converted Hugging Face "
                         f"(Llama-family) models such as smollm2-135m")
    from transformers import AutoConfig

    shape = TransformerShape.from_config(AutoConfig.from_pretrained(str(directory), local_files_only=True,
                                                                    **({"gguf_file": gguf} if gguf else {})))
    tok = load_hf_tokenizer(args.model)
    check_context(tok, shape, article, args.max_article_tokens, args.max_new_tokens)
    torch.set_num_threads(args.threads)
    model = load_hf_model(args.model)
    calib = get_calibration(model, tok, args.model, args.calib_tokens, args.calib_cache, progress=not args.no_progress)
    sched = parse_schedule(args.timesteps)
    sm = convert(model, calibration=calib, coding=args.spike_coding,
                 timesteps=sched if len(sched) > 1 else sched["default"], weights=args.weights, thresholds=args.thresholds)
    r = summarize_article(model, tok, sm, shape, targets, article, reference, args.max_new_tokens,
                          args.max_article_tokens, args.kv_bits, progress=not args.no_progress)
    r.update({"model": str(args.model), "source": source, "shape": asdict(shape),   # not the reference: shared data
              "settings": {"max_article_tokens": args.max_article_tokens, "max_new_tokens": args.max_new_tokens,
                           "decoding": "greedy, chat template", "kv_bits": args.kv_bits},
              "kv_contexts": kv_report(shape, targets, args.weights, kv_bits=args.kv_bits),
              "measured": "summaries, ROUGE and per-site events", "modelled": "every hardware figure (sim.system.transformer)"})
    _print(r)
    if args.json:
        from experiments.resume import write_json

        write_json(Path(args.json), {**r, "provenance": prov})
    return 0


def register(subparsers) -> None:
    """Add ``summarize``."""
    p = subparsers.add_parser("summarize", help="one article: dense vs spike-converted summary, ROUGE and cost per target",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m", help="smollm2-135m (default) or a Hugging Face Llama directory")
    p.add_argument("--article", type=int, default=0, help="CNN/DailyMail test index (default 0)")
    p.add_argument("--data", default=None, help="CNN/DailyMail JSONL (default ../shared/data/cnn_dailymail/...)")
    p.add_argument("--text", default=None, help="summarise this text file instead of a CNN/DailyMail article")
    p.add_argument("--reference", default=None, help="reference summary file for --text (ROUGE)")
    p.add_argument("--max-article-tokens", type=int, default=384, help="article cut to N tokens (0: whole; default 384)")
    p.add_argument("--max-new-tokens", type=int, default=64, help="summary length limit in tokens (default 64)")
    p.add_argument("--spike-coding", default="bitplane", help="rate, ttfs, ttfs-linear, unary, bitplane (default)")
    p.add_argument("--timesteps", default="8", help="T, or a schedule 'default=4,3.mlp_out=16' (default 8)")
    p.add_argument("--weights", default="int8", help="int8 (default) or ternary")
    p.add_argument("--thresholds", default="tensor", choices=("tensor", "channel"), help="one threshold per site or per input neuron")
    p.add_argument("--calib-tokens", type=int, default=4096, help="corpus tokens for threshold calibration")
    p.add_argument("--calib-cache", default=None, help="calibration cache file (default runs/spike/calib_<model>_<N>.pt)")
    p.add_argument("--targets", default=",".join(TARGETS), help=f"presets, comma-separated (default {','.join(TARGETS)})")
    p.add_argument("--kv-bits", type=int, default=8, help="bits per stored KV-cache value (default 8, an assumption)")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", default=None, help="also write the record (with provenance) here")
    p.set_defaults(func=_run)
