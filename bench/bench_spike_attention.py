"""Spike attention unit on the trained model's real spikes: cycles per token on the RTL, both simulators.

Loads a trained spike-attention checkpoint (``models/configs/bundled_spike_attention.yaml``: hidden 256,
4 heads of width 64, T 4, decay shifts 2, 4, 6, 8), runs the first ``--tokens`` tokens of the WikiText-2
test text (``wiki.test.raw``, the checkpoint's tokenizer) through the model in torch, takes the input of
each layer's attention and its spike counts ``(n_q, n_k, n_v)`` (``SpikeLinearAttention.counts``) of head
``--head``, and streams them through :class:`hw.spike_attention.SpikeAttention` (head width 64, T 4, the
head's decay shift, ``--lanes`` lanes): one sequence per layer, each starting with ``clear``, first without
stalls (every token's cycle count checked against :func:`hw.spike_attention.cycles_per_token`), then again
with random stalls. Every output word is compared with :func:`models.program.spike_attention.head_step`, which is
first checked against the model's own integers (:func:`models.program.spike_attention.exact_attention`).

Records: cycles per token (baseline: the same unit without event skipping, every (timestep, row) pair
costing a cycle per column group), q spikes per token (baseline: ``dh * T``), and simulated cycles/s of
Verilator vs Icarus. ``runs/`` is not committed: every record names the checkpoint it used.
Run: ``python bench/bench_spike_attention.py [--checkpoint DIR | latest] [--tokens N] [--layers all]``
→ ``bench/results/spike_attention.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench._records import record, write_records  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / "runs" / "spike_attention"
#: the shipped spike-attention model (``runs/spike_attention/final`` converted to float16)
DEFAULT_CHECKPOINT = ROOT / "models" / "bundled_spike_attention"
MIN_TOKENS = 16


def newest_checkpoint(run_dir: Path = RUN_DIR) -> Path | None:
    """``final/`` if it exists, else the newest ``checkpoints/step-*``, else None."""
    if (run_dir / "final" / "config.json").exists():
        return run_dir / "final"
    steps = sorted(d for d in (run_dir / "checkpoints").glob("step-*") if (d / "config.json").exists())
    return steps[-1] if steps else None


def resolve_checkpoint(arg: str | None) -> Path:
    """The checkpoint directory to use: ``arg`` (a directory, or ``latest`` of a training run), by default
    the shipped model."""
    if arg == "latest":
        found = newest_checkpoint()
        if found is None:
            raise SystemExit(f"no checkpoint under {RUN_DIR} yet; train one with: "
                             f"nmllm train models/configs/bundled_spike_attention.yaml --out {RUN_DIR}")
        return found
    path = Path(arg) if arg else DEFAULT_CHECKPOINT
    if not (path / "config.json").exists():
        newest = newest_checkpoint()
        hint = f"; newest available: {newest} (pass --checkpoint latest or --checkpoint {newest})" if newest else ""
        raise SystemExit(f"checkpoint {path} not found (no config.json){hint}")
    return path


def tokenizer_path(ckpt: Path) -> Path:
    """``tokenizer.json`` of the checkpoint (``final/`` holds one; step checkpoints use the run's)."""
    for p in (ckpt / "tokenizer.json", ckpt.parent.parent / "tokenizer.json"):
        if p.exists():
            return p
    raise SystemExit(f"no tokenizer.json in {ckpt} or {ckpt.parent.parent}")


def real_counts(ckpt: Path, n_tokens: int, layers: list[int] | None, heads: list[int]) -> dict:
    """Spike counts of ``heads`` at every layer in ``layers`` (None: all) for the first ``n_tokens`` tokens
    of the WikiText-2 test text; checks the golden head against the model's own integers."""
    import torch

    from models.mmfree.checkpoint import load_checkpoint
    from models.program.spike_attention import exact_attention, head_step, spike_trains
    from models.text.tokenizer import encode, load_tokenizer

    torch.set_num_threads(1)
    model = load_checkpoint(ckpt)
    cfg = model.config
    if cfg.token_mixer != "spike_attention":
        raise SystemExit(f"{ckpt} is a {cfg.token_mixer} model, not spike attention")
    tok = load_tokenizer(tokenizer_path(ckpt))
    from models.eval.perplexity import default_data_path

    wikitext = default_data_path()
    ids = encode(tok, wikitext.read_text(encoding="utf-8")[:20 * n_tokens + 1000])[:n_tokens]
    if len(ids) < n_tokens:
        raise SystemExit(f"only {len(ids)} tokens from {wikitext}")
    layers = list(range(cfg.num_hidden_layers)) if layers is None else layers
    inputs = {}
    hooks = [model.model.layers[li].attn.register_forward_pre_hook(
        lambda mod, args, li=li: inputs.__setitem__(li, args[0].detach().clone())) for li in layers]
    with torch.no_grad():
        model(torch.tensor([ids]))
        for h in hooks:
            h.remove()
        out = {}
        for li in layers:
            attn = model.model.layers[li].attn
            nq, nk, nv = attn.counts(inputs[li])
            exact, _ = exact_attention(nq, nk, nv, attn.shifts)
            for head in heads:
                q, k, v = (x[0, :, head].numpy().astype(np.int64) for x in (nq, nk, nv))
                S = np.zeros((attn.head_dim, attn.head_dim), dtype=np.int64)
                gold = np.stack([head_step(S, attn.shifts[head], k[n], spike_trains(v[n], attn.timesteps),
                                           spike_trains(q[n], attn.timesteps))[0] for n in range(n_tokens)])
                want = exact[0, :, head].numpy().astype(np.int64)
                if not np.array_equal(gold, want):
                    raise RuntimeError(f"layer {li} head {head}: golden head_step differs from the model's integers")
                out[(li, head)] = (q, k, v)
    return {"counts": out, "shifts": list(cfg.decay_shifts), "head_dim": cfg.input_dim // cfg.num_heads,
            "timesteps": cfg.spike_timesteps, "layers": layers, "text_tokens": ids}


def measure(data: dict, head: int, lanes: int, simulators: list[str], ckpt_label: str) -> dict:
    """One unit configuration (head ``head``'s decay shift) on every simulator; returns the measurements."""
    from hw.spike_attention import SpikeAttention, cycles_per_token, dense_cycles_per_token
    from hw.verilog import emit
    from verif.flow import BUILD_ROOT
    from verif.simulators import run_testbench
    from verif.spike_attention_vectors import make_sequence_vectors

    dh, T, shift = data["head_dim"], data["timesteps"], data["shifts"][head]
    unit = SpikeAttention(head_dim=dh, timesteps=T, decay_shift=shift, lanes=lanes)
    seqs = [(f"layer{li}_head{head}", *data["counts"][(li, head)]) for li in data["layers"]]
    vectors = make_sequence_vectors(unit, seqs)
    config = f"dh{dh}_t{T}_s{shift}_p{lanes}"
    runs = {}
    for sim in simulators:
        build = BUILD_ROOT.parent / "bench" / "spike_attention" / config / sim
        build.mkdir(parents=True, exist_ok=True)
        (build / "vectors.json").write_text(json.dumps(vectors))
        res = run_testbench(unit="spike_attention", config=config, verilog=emit(unit, "spike_attention"),
                            toplevel="spike_attention", test_module="verif.tb_spike_attention", simulator=sim,
                            build_dir=build, extra_env={"NMLLM_TB_VECTORS": str(build / "vectors.json")})
        if not res.passed:
            raise RuntimeError(f"{config} on {sim}: the RTL run failed: {res.detail}")
        runs[sim] = res
    first = runs[simulators[0]]
    per_layer = {}
    for (name, q, _, _) in seqs:
        cycles = first.summary["cycles_list"][name]
        for sim, r in runs.items():
            assert r.summary["cycles_list"][name] == cycles, f"{name}: {sim} counted other cycles"
        q_spikes = q.sum(axis=1)
        assert cycles == [cycles_per_token(dh, T, lanes, int(n)) for n in q_spikes]
        per_layer[name] = {"cycles_per_token": float(np.mean(cycles)), "q_spikes_per_token": float(q_spikes.mean()),
                           "tokens": len(cycles)}
    return {"config": config, "checkpoint": ckpt_label, "decay_shift": shift, "lanes": lanes, "per_layer": per_layer,
            "dense_cycles_per_token": dense_cycles_per_token(dh, T, lanes), "head_dim": dh, "timesteps": T,
            "words_checked": sum(len(p["expect"]["res"]) for p in vectors["phases"]),
            "sim": {sim: {"cycles": r.cycles, "run_s": r.run_s, "build_s": r.build_s} for sim, r in runs.items()}}


def main(argv=None) -> None:
    from verif.simulators import available_simulators

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help=f"checkpoint directory, or 'latest' (default {DEFAULT_CHECKPOINT})")
    parser.add_argument("--tokens", type=int, default=32, help=f"WikiText-2 test tokens (at least {MIN_TOKENS})")
    parser.add_argument("--layers", default="all", help="'all' or comma-separated layer indices (default all)")
    parser.add_argument("--head", type=int, action="append", help="head to run (repeatable; default 0)")
    parser.add_argument("--lanes", type=int, default=8, help="lanes of the unit (default 8)")
    parser.add_argument("--simulator", action="append", choices=["verilator", "icarus"],
                        help="simulator (repeatable; default both)")
    args = parser.parse_args(argv)
    if args.tokens < MIN_TOKENS:
        raise SystemExit(f"--tokens must be at least {MIN_TOKENS}")
    ckpt = resolve_checkpoint(args.checkpoint)
    try:
        label = str(ckpt.resolve().relative_to(ROOT))
    except ValueError:
        label = str(ckpt.resolve())
    sims = args.simulator or ["verilator", "icarus"]
    missing = [s for s in sims if s not in available_simulators()]
    if missing:
        raise SystemExit(f"simulator(s) not installed: {missing}")
    heads = args.head or [0]
    layers = None if args.layers == "all" else [int(x) for x in args.layers.split(",")]
    t0 = time.perf_counter()
    data = real_counts(ckpt, args.tokens, layers, heads)
    print(f"checkpoint {label}: {args.tokens} WikiText-2 test tokens, layers {data['layers']}, heads {heads} "
          f"(golden head_step == the model's integers) in {time.perf_counter() - t0:.0f} s")
    records, results = [], []
    for head in heads:
        r = measure(data, head, args.lanes, sims, label)
        results.append(r)
        where = f"checkpoint {label}, {args.tokens} WikiText-2 test tokens"
        for name, p in r["per_layer"].items():
            print(f"{r['config']} {name}: {p['cycles_per_token']:.1f} cycles/token "
                  f"({p['q_spikes_per_token']:.1f} q spikes/token; dense {r['dense_cycles_per_token']})")
            case = f"{name} {r['config']} RTL ({' + '.join(sims)}, every word bit-exact), {where}"
            records.append(record("spike_attention", case, "cycles_per_token", p["cycles_per_token"], "cycles",
                                  "dense (no event skipping) cycles per token, same unit", r["dense_cycles_per_token"]))
            records.append(record("spike_attention", case, "q_spikes_per_token", p["q_spikes_per_token"], "spikes",
                                  "dh * T (every q spike)", r["head_dim"] * r["timesteps"]))
        all_cycles = [p["cycles_per_token"] for p in r["per_layer"].values()]
        records.append(record("spike_attention", f"all layers head {head} {r['config']}, {where}", "cycles_per_token",
                              float(np.mean(all_cycles)), "cycles", "dense (no event skipping) cycles per token, "
                              "same unit", r["dense_cycles_per_token"]))
        speed = {sim: s["cycles"] / s["run_s"] for sim, s in r["sim"].items()}
        for sim, s in r["sim"].items():
            print(f"{r['config']} on {sim}: {r['words_checked']} words bit-exact, {s['cycles']} cycles in "
                  f"{s['run_s']:.1f} s ({speed[sim]:.0f} cycles/s; build {s['build_s']:.1f} s)")
        if {"verilator", "icarus"} <= set(speed):
            records.append(record("spike_attention", f"head {head} {r['config']} real-spike testbench, {where}",
                                  "simulated_cycles_per_s", speed["verilator"], "cycles/s", "icarus", speed["icarus"]))
    print(write_records("spike_attention", records))


if __name__ == "__main__":
    main()
