"""The sparsity study of ``nmllm sparsity``: what sparse BitLinear inputs buy on event-driven hardware.

For each lever and level (:data:`LEVERS`; the training-free ones are the number-format spec's input sparsity,
a per-token threshold or top-k on the int8 input codes of every projection kind), the integer program of the
checkpoint with that setting is measured: WikiText-2 test perplexity on the golden engine (batch mode), the
input density per projection kind and the synaptic ops and bit spikes per token (the event vocabulary,
:mod:`models.program.events`, counted by the golden model and the integer program's per-stage inputs), and
the energy and latency per token (static and dynamic apart) of the system model on the measured per-stage
activity, per hardware preset. Writes ``<out>/sparsity.json`` (with provenance) and ``<out>/pareto.png``
(perplexity vs dynamic energy per token); ``docs/sparsity.md`` is generated from the JSON.

Each finished point is kept in ``<out>/sparsity.partial.json`` (atomic, bound to the settings,
:mod:`experiments.resume`), the running perplexity sums of the point in flight in ``--work``; a rerun of the
same command after a kill resumes both.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

__all__ = ["LEVERS", "PRESETS", "point_settings", "parse_points", "measure_point", "training_record", "run_study",
           "plot_pareto"]

#: Training-free levers and their default levels: ``threshold`` t zeroes codes with |code| < t, ``topk`` f keeps
#: the round(f * fan_in) largest codes of every projection kind (``none``: the checkpoint as it is).
LEVERS = {"none": (0,), "threshold": (4, 8, 16, 32), "topk": (0.75, 0.5, 0.35, 0.25)}
#: System-model presets the study costs every point on.
PRESETS = ("loihi1", "loihi2-estimate", "crossbar")


def point_settings(lever: str, level, fan_ins: dict[str, int]) -> dict:
    """The spec's input-sparsity settings (every projection kind) of one (lever, level)."""
    if lever == "none":
        return {}
    if lever == "threshold":
        return {k: {"threshold": int(level)} for k in fan_ins}
    if lever == "topk":
        return {k: {"topk": max(1, round(float(level) * n))} for k, n in fan_ins.items()}
    raise ValueError(f"unknown lever {lever!r}; choose one of {', '.join(LEVERS)}")


def parse_points(text: str | None) -> list[tuple[str, float]]:
    """``lever:level,...`` (e.g. ``threshold:8,topk:0.5``), or None for every default of :data:`LEVERS`."""
    if text is None:
        return [(lever, level) for lever, levels in LEVERS.items() for level in levels]
    points = []
    for item in text.split(","):
        lever, _, level = item.partition(":")
        if lever not in LEVERS:
            raise ValueError(f"--points: unknown lever {lever!r} in {item!r}; choose one of {', '.join(LEVERS)}")
        try:
            value = float(level) if level else 0.0
        except ValueError:
            raise ValueError(f"--points: level {level!r} of {item!r} is not a number") from None
        if lever == "threshold" and not (value.is_integer() and 0 <= value <= 127):
            raise ValueError(f"--points: a threshold is an integer in [0, 127], not {level!r}")
        if lever == "topk" and not 0 < value <= 1:
            raise ValueError(f"--points: a top-k level is the kept fraction of the fan-in, in (0, 1], not {level!r}")
        points.append((lever, int(value) if lever != "topk" else value))
    return points


def _key(lever: str, level) -> str:
    return f"{lever}:{level:g}"


def _system_cost(stages, shape, tokens: int, presets, cache: dict) -> dict:
    """Per preset: energy per token (static and dynamic apart) and latency of the system model on the measured
    per-stage activity (``nmllm simulate --activity``'s input)."""
    from sim.system.activity import activity_from_stage_events
    from sim.system.compiler import mapped_on
    from sim.system.model import simulate

    act = activity_from_stage_events(stages, shape, tokens, what="integer program with input sparsity")
    out = {}
    for name in presets:
        preset, mapping = mapped_on(shape, name, cache)
        r = simulate(mapping, preset, act)
        out[name] = {"energy_per_token_j": r.energy_per_token_j, "dynamic_energy_per_token_j": r.dynamic_j,
                     "static_energy_per_token_j": r.static_j, "synaptic_op_energy_per_token_j": r.energy_j["synaptic_ops"],
                     "token_latency_s": r.token_latency_s, "estimate": r.estimate, "chips": r.chips}
    return {"system": out, "input_density": dict(act.input_nonzero), "weight_density": act.weight_density,
            "bit_spikes_per_event": act.bit_spikes_per_event}


def measure_point(program, settings: dict, tok, text: str, event_ids: list[int], shape, args, cache: dict,
                  resume_file: Path) -> dict:
    """Perplexity, events per token and system cost of ``program`` with input-sparsity ``settings``: the events
    per token are the golden model's over every token the perplexity pass runs; the per-stage activity of the
    system model comes from the integer program's projection inputs on ``event_ids``."""
    import numpy as np
    import torch

    from models.eval.perplexity import text_perplexity
    from models.program import numformat as nf
    from models.program.events import EVENT_FIELDS, LayerEvents, token_events
    from models.program.golden import GoldenModel
    from sim.system.activity import stage_events

    prog = program.with_input_sparsity(settings)
    golden = GoldenModel(prog)
    seen = {"events": LayerEvents(), "tokens": 0}

    def logits(ids: torch.Tensor) -> torch.Tensor:
        out = golden.run_batch(ids.tolist())
        seen["events"] = sum(golden.batch_events, seen["events"])
        seen["tokens"] += ids.numel()
        return torch.from_numpy(out.astype(np.float32) / (1 << nf.OUT_FRAC))

    def restore(state: dict) -> None:
        seen.update(events=LayerEvents(**state["events"]), tokens=state["tokens"])

    carry = (lambda: {"events": seen["events"].as_dict(), "tokens": seen["tokens"]}, restore)
    t0 = time.perf_counter()
    ppl = text_perplexity(logits, tok, text, window=args.window, stride=args.stride, max_tokens=args.max_tokens,
                          batch_size=args.batch_size, progress=not args.no_progress, resume_file=resume_file,
                          carry=carry, run_tag=json.dumps({"model": str(args.model), "sparsity": settings}))
    ppl_s = time.perf_counter() - t0
    totals, n = seen["events"], seen["tokens"]
    cost = _system_cost(stage_events(prog, event_ids), shape, len(event_ids), args.presets, cache)
    resume_file.unlink(missing_ok=True)
    return {"settings": prog.input_sparsity, "token_ppl": ppl["token_ppl"], "ppl_tokens": ppl["tokens"],
            "bits_per_byte": ppl["bits_per_byte"], "ppl_seconds": ppl_s, "event_forward_tokens": n,
            "events_per_token": {**token_events(totals, n), "dense_macs": totals.dense_macs / n,
                                 "zero_weight_slots": totals.zero_weight_slots / n},
            "events_total": {f: getattr(totals, f) for f in EVENT_FIELDS}, **cost}


def training_record(model_dir) -> dict | None:
    """How a checkpoint written by ``nmllm train`` (``<run>/final``) was trained, from its run's log: the
    checkpoint it was fine-tuned from, its steps, last validation loss and model config; None elsewhere."""
    log = Path(model_dir).parent / "train_log.jsonl"
    if Path(model_dir).name != "final" or not log.is_file():
        return None
    recs = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    start = next((r for r in recs if r.get("event") == "start"), {})
    done = next((r for r in reversed(recs) if r.get("event") == "done"), {})
    return {"init_from": start.get("train", {}).get("init_from"), "act_l1": start.get("train", {}).get("act_l1"),
            "steps": done.get("step"), "val_loss": done.get("val_loss"), "config": start.get("config")}


def _check_args(args) -> None:
    if args.max_tokens is not None and args.max_tokens < 1:
        raise ValueError(f"--max-tokens must be a positive number of tokens, not {args.max_tokens}")
    if args.event_tokens < 1:
        raise ValueError(f"--event-tokens must be a positive number of tokens, not {args.event_tokens}")
    from sim.system.energy import load_preset
    for name in args.presets:
        load_preset(name)  # one line naming the known presets when unknown
    if not (Path(args.model) / "config.json").is_file():
        raise FileNotFoundError(f"--model {args.model} is not a checkpoint directory (no config.json)")


def run_study(args) -> dict:
    """Measure every point of ``args.points`` (resumable) and write ``<out>/sparsity.json`` and the plot."""
    from experiments.provenance import provenance
    from experiments.resume import Results

    points = parse_points(args.points)
    _check_args(args)
    from models.eval.perplexity import default_data_path
    from models.mmfree.checkpoint import load_checkpoint
    from models.program.integer_program import IntegerProgram
    from models.text.tokenizer import encode, load_tokenizer
    from sim.system.shapes import model_shape

    data = Path(args.data) if args.data else default_data_path()
    if not data.is_file():
        raise FileNotFoundError(f"no WikiText-2 test text at {data}: pass --data FILE")
    out = Path(args.out)
    res = Results(out / "sparsity.partial.json", {
        "model": str(args.model), "data": str(data), "max_tokens": args.max_tokens, "event_tokens": args.event_tokens,
        "window": args.window, "stride": args.stride, "presets": list(args.presets)})
    log = (lambda *a: None) if args.no_progress else (lambda *a: print(*a, file=sys.stderr, flush=True))
    if res.resumed:
        log(f"sparsity: resuming {res.resumed} stored points of {res.path}")
    program = IntegerProgram.from_model(load_checkpoint(args.model))
    tok = load_tokenizer(args.model)
    text = data.read_text(encoding="utf-8")
    event_ids = encode(tok, text[:20 * args.event_tokens])[:args.event_tokens]
    shape = model_shape(args.model)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    keys = {_key(lever, level): (lever, level) for lever, level in points}
    cache: dict = {}
    for key in res.pending(keys, desc="sparsity", progress=not args.no_progress):
        lever, level = keys[key]
        settings = point_settings(lever, level, program.kind_fan_ins())
        row = res.put(key, {"lever": lever, "level": level,
                            **measure_point(program, settings, tok, text, event_ids, shape, args, cache,
                                            work / f"{key.replace(':', '_')}.ppl.json")})
        log(f"  {key:16s} ppl {row['token_ppl']:.2f}, synaptic ops/token {row['events_per_token']['synaptic_ops']:,.0f}")
    rows = [res[k] for k in keys]
    record = {"model": str(args.model),
              "data": {"perplexity": f"WikiText-2 test ({data.name}), "
                                     + ("all tokens" if args.max_tokens is None else f"first {args.max_tokens} tokens")
                                     + f", golden engine, window {args.window}, stride {args.stride}",
                       "events": "golden model, every forward token of the perplexity pass (windows overlap: "
                                 "a token in two windows runs twice)",
                       "activity": f"system model's per-stage activity: the integer program's projection inputs "
                                   f"on the first {args.event_tokens} tokens of the same text"},
              "presets": list(args.presets), "rows": rows, "training": training_record(args.model),
              "provenance": provenance()}
    res.finish(out / "sparsity.json", record)
    plot_pareto(record, out / "pareto.png")
    return record


def plot_pareto(record: dict, path: Path) -> Path:
    """Perplexity vs dynamic energy per token, one panel per preset, one marker per lever."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    presets = record["presets"]
    fig, axes = plt.subplots(1, len(presets), figsize=(4.2 * len(presets), 3.6), squeeze=False)
    markers = {"none": "*", "threshold": "o", "topk": "s", "relu": "^", "ternary": "v", "l1": "D", "control": "P"}
    for ax, preset in zip(axes[0], presets):
        for lever in dict.fromkeys(r["lever"] for r in record["rows"]):
            rows = sorted((r for r in record["rows"] if r["lever"] == lever),
                          key=lambda r: r["system"][preset]["dynamic_energy_per_token_j"])
            ax.plot([r["system"][preset]["dynamic_energy_per_token_j"] * 1e6 for r in rows],
                    [r["token_ppl"] for r in rows], marker=markers.get(lever, "x"), label=lever,
                    markersize=10 if lever == "none" else 6)
        ax.set_xlabel("dynamic energy per token (µJ)")
        ax.set_title(preset + (" (estimate)" if record["rows"][0]["system"][preset]["estimate"] else ""))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("WikiText-2 test perplexity (golden engine)")
    axes[0][0].legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

