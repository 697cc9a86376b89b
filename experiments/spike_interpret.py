"""``nmllm spike interpret``: arguments, runner and plot of the interpretability study of a spike-converted
transformer (``experiments/spike_interpret.py``; the algorithms are in :mod:`models.transformer.interpret`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from experiments.provenance import provenance
from experiments.resume import write_json
from models.transformer.calibration import get_calibration

__all__ = ["add_interpret_arguments", "plot_interpret", "run_interpret"]


def plot_interpret(res: dict, out_dir: Path) -> list[Path]:
    """``spike_interpret.png``: firing rate, entropy and NMI per layer and site kind."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    sites = res["sites"]
    kinds = ("attn_in", "attn_out", "mlp_in", "mlp_out")
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.0), dpi=90)
    for k in kinds:
        rows = sorted((int(s.split(".")[0]), v) for s, v in sites.items() if s.endswith(k))
        x = [r[0] for r in rows]
        axes[0].plot(x, [r[1]["firing_rate"] for r in rows], marker=".", label=k)
        axes[1].plot(x, [r[1]["entropy_bits"] for r in rows], marker=".", label=k)
        axes[2].plot(x, [r[1]["nmi_neurons"] for r in rows], marker=".", label=k)
    floor = sorted((int(s.split(".")[0]), v["nmi_neurons_shuffled"]) for s, v in sites.items() if s.endswith("mlp_in"))
    axes[2].plot([f[0] for f in floor], [f[1] for f in floor], color="k", ls=":", label="shuffled labels")
    for ax, t in zip(axes, ("firing rate (spikes/neuron/step)", "entropy of spike counts (bits)",
                            f"NMI ambiguous vs clear (top neurons)")):
        ax.set_title(t, fontsize=8)
        ax.set_xlabel("layer")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6)
    axes[2].legend(fontsize=6)
    fig.suptitle(f"{res['coding']} T={res['timesteps']} ({res.get('thresholds', 'tensor')} thresholds), "
                 f"{res['sentences']} AmbiEnt premises", fontsize=8)
    fig.tight_layout()
    p = out_dir / "spike_interpret.png"
    fig.savefig(p)
    plt.close(fig)
    return [p]


def add_interpret_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``nmllm spike interpret`` (besides the model/calibration ones)."""
    p.add_argument("--coding", default="rate", help="coding (default rate)")
    p.add_argument("--timesteps", type=int, default=8, help="uniform T (default 8)")
    p.add_argument("--thresholds", default="channel", choices=("tensor", "channel"),
                   help="one threshold per site (tensor) or per input neuron (channel, default)")
    p.add_argument("--n-per-class", type=int, default=100, help="sentences per class (default 100)")
    p.add_argument("--top-k", type=int, default=16, help="neurons averaged in nmi_neurons")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="ambient_sentences.tsv (default ../shared/data/ambiguity/...)")
    p.add_argument("--out", default="runs/spike/interpret.json")
    p.add_argument("--plot-dir", default=None, help="write spike_interpret.png here")


def run_interpret(args: argparse.Namespace) -> int:
    """``nmllm spike interpret``: per-site statistics to ``--out``, the best sites to stdout."""
    from models.eval.options import check_options

    check_options(**vars(args))  # before anything slow loads
    import torch

    from models.transformer.convert import convert
    from models.transformer.interpret import default_path, interpret, load_sentences
    from models.transformer.loader import load_hf_model, load_hf_tokenizer

    torch.set_num_threads(args.threads)
    sentences = load_sentences(Path(args.data) if args.data else default_path(), args.n_per_class, args.seed)
    model, tok = load_hf_model(args.model), load_hf_tokenizer(args.model)
    calib = get_calibration(model, tok, args.model, args.calib_tokens, args.calib_cache, progress=not args.no_progress)
    sm = convert(model, calibration=calib, coding=args.coding, timesteps=args.timesteps, thresholds=args.thresholds)
    res = interpret(sm, tok, sentences, top_k=args.top_k, seed=args.seed, progress=not args.no_progress)
    res.update({"model": args.model, "coding": args.coding, "timesteps": args.timesteps, "thresholds": args.thresholds})
    res["provenance"] = provenance()
    write_json(Path(args.out), res)
    if args.plot_dir:
        for p in plot_interpret(res, Path(args.plot_dir)):
            print(p)
    best = sorted(res["sites"].items(), key=lambda kv: kv[1]["nmi_neurons"] - kv[1]["nmi_neurons_shuffled"], reverse=True)[:5]
    print(json.dumps({"sentences": res["sentences"], "best_sites": {k: {m: round(v[m], 4) for m in
          ("nmi_neurons", "nmi_neurons_shuffled", "nmi_length", "nmi_kmeans", "firing_rate", "rate_diff")} for k, v in best}}, indent=1))
    return 0
