"""``nmllm sparsity``: the sparsity study (:mod:`experiments.sparsity`): perplexity, events and energy per
token of the integer program at each lever and level of its input sparsity."""

from __future__ import annotations

__all__ = ["register"]


def _run(args) -> int:
    from experiments.sparsity import run_study

    record = run_study(args)
    print(f"sparsity: {len(record['rows'])} points written to {args.out}/sparsity.json and {args.out}/pareto.png")
    return 0


def register(subparsers) -> None:
    """Add the ``sparsity`` subcommand."""
    p = subparsers.add_parser("sparsity", help="sparsity levers: perplexity vs synaptic ops and energy per token",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="models/bundled", help="checkpoint directory (default models/bundled)")
    p.add_argument("--data", default=None, help="WikiText-2 test raw text (default ../shared/data/wikitext-2/wiki.test.raw)")
    p.add_argument("--points", default=None,
                   help="lever:level list, e.g. threshold:8,topk:0.5 (levers none, threshold = integer in [0, 127], "
                        "topk = kept fraction of the fan-in; default: every default level)")
    p.add_argument("--max-tokens", type=int, default=None, help="score only the first N test tokens (default: all)")
    p.add_argument("--event-tokens", type=int, default=1024,
                   help="tokens the system model's per-stage activity is measured on (default 1024); the events per "
                        "token are the golden model's over the whole perplexity pass")
    p.add_argument("--presets", nargs="+", default=["loihi1", "loihi2-estimate", "crossbar"], help="system-model presets")
    p.add_argument("--window", type=int, default=256, help="perplexity window (default 256)")
    p.add_argument("--stride", type=int, default=128, help="perplexity stride (default 128)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per golden-engine batch (default 8)")
    p.add_argument("--out", default="docs/sparsity", help="output folder of sparsity.json and pareto.png")
    p.add_argument("--work", default="runs/sparsity", help="folder of the in-flight point's perplexity sums")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or log lines")
    p.set_defaults(func=_run)
