"""``nmllm eval perplexity|rouge``: perplexity of a MatMul-free checkpoint or of a Hugging Face model (dense or
spike-converted), and ROUGE on CNN/DailyMail (methods in :mod:`models.eval.perplexity`, :mod:`models.eval.rouge`)."""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["register"]

#: ``--engine`` of a MatMul-free checkpoint -> the ``view`` named in the result.
_VIEWS = {"float": "float-qat", "fp32": "float-fp32-noquant", "integer": "integer-view", "golden": "golden-model"}


def _load_hf(args, progress: bool):
    """``(model, tokenizer, spike_model or None)`` of a Hugging Face ``--model`` and the spike options."""
    from models.transformer.loader import load_hf_model, load_hf_tokenizer

    model = load_hf_model(args.model)
    tok = load_hf_tokenizer(args.model)
    if args.spike_coding is None:
        return model, tok, None
    from models.transformer.calibration import get_calibration
    from models.transformer.convert import convert, parse_schedule

    calib = get_calibration(model, tok, args.model, args.calib_tokens, args.calib_cache, progress=progress)
    sched = parse_schedule(args.timesteps)
    sm = convert(model, calibration=calib, coding=None if args.spike_coding == "none" else args.spike_coding,
                 timesteps=sched if len(sched) > 1 else sched["default"], weights=args.weights,
                 thresholds=args.thresholds)
    return model, tok, sm


def _write(r: dict, args) -> None:
    """Print the result (without per-article detail); with ``--json`` also write it whole, with the provenance
    taken when the command started."""
    print(json.dumps({k: v for k, v in r.items() if k != "articles"}, indent=1))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({**r, "provenance": args.provenance}, indent=1) + "\n")


def _perplexity_mmfree(args, data: Path, text: str) -> int:
    import torch

    from models.eval.perplexity import text_perplexity
    from models.mmfree.checkpoint import load_checkpoint
    from models.text.tokenizer import load_tokenizer

    torch.set_num_threads(args.threads)
    from models.program.engines import logits_fn

    engine = "fp32" if args.no_quant else args.engine or "float"
    model = load_checkpoint(args.model)
    tok = load_tokenizer(args.model)
    r = text_perplexity(logits_fn(model, engine), tok, text, window=args.window, stride=args.stride,
                        max_tokens=args.max_tokens, batch_size=args.batch_size, progress=not args.no_progress,
                        resume_file=args.resume_file)
    r.update({"model": str(args.model), "data": str(data), "engine": engine, "view": _VIEWS[engine]})
    _write(r, args)
    return 0


def _run_tag(args, sm) -> str:
    """What a resume file of a Hugging Face model is bound to beside its data: the model and its conversion
    (dense float32 keeps the empty tag of files written before conversions were bound)."""
    if sm is None:
        return ""
    return json.dumps({"model": str(args.model), "spike": sm.describe(), "weights": args.weights,
                       "calib_tokens": args.calib_tokens}, sort_keys=True)


def _perplexity_hf(args, data: Path, text: str) -> int:
    import torch

    from models.transformer.loader import hf_text_perplexity

    torch.set_num_threads(args.threads)
    model, tok, sm = _load_hf(args, progress=not args.no_progress)
    fn = sm.logits_fn() if sm is not None else (lambda ids: model(input_ids=ids, use_cache=False).logits)
    with torch.no_grad():
        r = hf_text_perplexity(fn, tok, text, window=args.window, stride=args.stride, max_tokens=args.max_tokens,
                               batch_size=args.batch_size, progress=not args.no_progress,
                               resume_file=args.resume_file,
                               carry=(sm.event_state, sm.restore_events) if sm is not None else None,
                               run_tag=_run_tag(args, sm))
    r.update({"model": str(args.model), "data": str(data)})
    if sm is not None:
        r["spike"] = sm.describe()
        r["events_per_token"] = sm.events_per_token()["total"]
    else:
        r["view"] = "dense-float32"
    _write(r, args)
    return 0


def _read_data(args) -> tuple[Path, str]:
    """``--data`` (default WikiText-2 test) and its text, read before any model loads."""
    from models.eval.perplexity import default_data_path

    data = Path(args.data) if args.data else default_data_path()
    if not data.is_file():
        raise FileNotFoundError(f"no text file {str(data)!r}: pass --data FILE or set NMLLM_DATA to the data folder")
    return data, data.read_text(encoding="utf-8")


def _perplexity(args) -> int:
    """A MatMul-free checkpoint through ``--engine``; a Hugging Face model dense or spike-converted.
    Options, the model reference and the text are checked before anything loads."""
    from experiments.provenance import provenance
    from models.eval.options import check_options

    check_options(**vars(args))
    args.provenance = provenance()
    from models.transformer.loader import is_hf_ref, resolve

    if is_hf_ref(args.model):
        if args.engine is not None or args.no_quant:
            flag = "--no-quant" if args.no_quant else f"--engine {args.engine}"
            raise ValueError(f"{flag} runs MatMul-free checkpoints only; {args.model} is a Hugging Face model: drop it "
                             f"(dense float32) or convert the model with --spike-coding")
        resolve(args.model)
        return _perplexity_hf(args, *_read_data(args))
    if args.spike_coding is not None:
        raise ValueError("--spike-coding applies to Hugging Face models (smollm2-135m or an HF directory)")
    if args.no_quant and args.engine not in (None, "fp32"):
        raise ValueError(f"--no-quant means --engine fp32: drop one of --no-quant and --engine {args.engine}")
    return _perplexity_mmfree(args, *_read_data(args))


def _rouge(args) -> int:
    from experiments.provenance import provenance
    from models.eval.options import check_options

    check_options(**vars(args))
    args.provenance = provenance()
    import torch

    from models.eval.rouge import default_data_path, evaluate_rouge, load_pairs
    from models.transformer.loader import is_hf_ref, resolve

    resolve(args.model)
    if not is_hf_ref(args.model):
        raise ValueError(f"{args.model} is a MatMul-free checkpoint; eval rouge runs Hugging Face models (smollm2-135m "
                         f"or a Hugging Face layout directory): summarise with a MatMul-free model through nmllm decode")
    torch.set_num_threads(args.threads)
    pairs = load_pairs(Path(args.data) if args.data else default_data_path(), args.n_articles)
    model, tok, sm = _load_hf(args, progress=not args.no_progress)
    r = evaluate_rouge(model, tok, pairs, args.max_new_tokens, args.max_article_tokens, progress=not args.no_progress,
                       resume_file=args.resume_file, run_tag=_run_tag(args, sm),
                       carry=(sm.event_state, sm.restore_events) if sm is not None else None)
    r["model"] = str(args.model)
    if sm is not None:
        r["spike"] = sm.describe()
        ev = sm.events_per_token()
        r["events_per_token"] = ev["total"]
        r["event_tokens"] = ev["tokens"]
    _write(r, args)
    return 0


def _add_spike_arguments(p) -> None:
    """Spike-conversion options of Hugging Face models (``eval perplexity`` and ``eval rouge``)."""
    p.add_argument("--spike-coding", default=None,
                   help="convert to spikes with this coding (rate, ttfs, ttfs-linear, unary, bitplane); "
                        "'none' = int8 weights, dense activations; default: the dense float model")
    p.add_argument("--timesteps", default="8", help="T, or a schedule 'default=4,3.mlp_out=16' or a .json file")
    p.add_argument("--weights", default="int8", choices=("int8", "ternary", "float"), help="weight format of converted layers")
    p.add_argument("--thresholds", default="tensor", choices=("tensor", "channel"),
                   help="one threshold per site (tensor) or per input neuron (channel)")
    p.add_argument("--calib-tokens", type=int, default=4096, help="corpus tokens for threshold calibration")
    p.add_argument("--calib-cache", default=None, help="calibration cache file (default runs/spike/calib_<model>_<N>.pt)")


def register(subparsers) -> None:
    """Add ``eval`` with its ``perplexity`` and ``rouge`` subcommands."""
    ev = subparsers.add_parser("eval", help="evaluate a model (perplexity, ROUGE)")
    sub = ev.add_subparsers(dest="eval_command", required=True)

    p = sub.add_parser("perplexity", help="token/word perplexity and bits per byte on raw text",
                       description="Perplexity on raw text (default: WikiText-2 test, wiki.test.raw) of a MatMul-free "
                                   "checkpoint or a Hugging Face model, dense or spike-converted.")
    p.add_argument("--model", default="models/bundled",
                   help="checkpoint directory (config.json, model.safetensors, tokenizer.json; default models/bundled), "
                        "smollm2-135m or a Hugging Face layout directory")
    p.add_argument("--data", default=None, help="raw text file (default ../shared/data/wikitext-2/wiki.test.raw, or $NMLLM_DATA)")
    p.add_argument("--window", type=int, default=256, help="tokens per window (default 256)")
    p.add_argument("--stride", type=int, default=128, help="new tokens scored per window (default 128)")
    p.add_argument("--max-tokens", type=int, default=None, help="score only the first N tokens")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--engine", choices=["float", "fp32", "integer", "golden"], default=None,
                   help="executor of a MatMul-free checkpoint: float QAT view (default), fp32 (quantisers off), "
                        "the torch integer view of the integer program, or the Numba golden model (same integers "
                        "as 'integer'); refused for Hugging Face models")
    p.add_argument("--no-quant", action="store_true", help="same as --engine fp32")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.add_argument("--json", default=None, help="also write the result JSON here")
    p.add_argument("--resume-file", type=Path, default=None,
                   help="save the running sums here and continue from them if the file exists (long runs)")
    _add_spike_arguments(p)
    p.set_defaults(func=_perplexity)

    r = sub.add_parser("rouge", help="ROUGE-1/2/Lsum on CNN/DailyMail test pairs (HF models, dense or spiking)",
                       description="ROUGE on CNN/DailyMail test pairs (dense or spike-converted Hugging Face model).")
    r.add_argument("--model", default="smollm2-135m",
                   help="smollm2-135m (default; needs the optional extra smollm) or a Hugging Face layout directory")
    r.add_argument("--data", default=None, help="CNN/DailyMail JSONL (default ../shared/data/cnn_dailymail/...)")
    r.add_argument("--n-articles", type=int, default=200, help="first N test articles (default 200)")
    r.add_argument("--max-new-tokens", type=int, default=80, help="summary length limit in tokens (default 80)")
    r.add_argument("--max-article-tokens", type=int, default=512, help="article cut to N tokens (0: whole; default 512)")
    r.add_argument("--threads", type=int, default=2, help="torch threads")
    r.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    r.add_argument("--json", default=None, help="also write the result JSON (with the summaries) here")
    r.add_argument("--resume-file", type=Path, default=None,
                   help="save the summaries so far here after every article and continue from them if the file "
                        "exists (long runs)")
    _add_spike_arguments(r)
    r.set_defaults(func=_rouge)
