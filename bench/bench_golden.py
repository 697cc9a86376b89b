"""Golden model decode speed for the 370M MatMul-free shape (random ternary weights, upstream dimensions).

Measured in one run: golden tokens/s at batch 1; PyTorch fp32 dense decode of the same shapes; the
memory-bandwidth floor (packed weight bytes per token / measured read bandwidth of this machine);
tokens/s against activation sparsity (0 / 50 / 90 % zero inputs into every projection); and the
resident memory with the packed weights. Run: ``python bench/bench_golden.py`` →
``bench/results/golden.json``.
"""

from __future__ import annotations

import gc
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import record, write_records  # noqa: E402
from models.mmfree.config import preset  # noqa: E402
from models.program.events import LayerEvents  # noqa: E402
from models.program.golden import GoldenModel, _sum_squares  # noqa: E402
from models.program.integer_program import PROJECTIONS, IntegerProgram  # noqa: E402

TOKENS = 12


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def read_bandwidth(nbytes: int = 1 << 30) -> float:
    """Bytes/s of a streaming read (NumPy sum of a large uint64 array), best of 5."""
    a = np.ones(nbytes // 8, dtype=np.uint64)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        a.sum()
        best = max(best, nbytes / (time.perf_counter() - t0))
    return best


def golden_ms_per_token(golden: GoldenModel) -> float:
    golden.step(1)
    t0 = time.perf_counter()
    for t in range(TOKENS):
        golden.step(2 + t)
    return (time.perf_counter() - t0) / TOKENS * 1e3


def layer_ms_at_sparsity(golden: GoldenModel, zero: float, seed: int = 0) -> float:
    """Time of one layer's six projections on inputs with ``zero`` of the activations exactly 0."""
    rng = np.random.default_rng(seed)
    layer = golden.layers[0]
    ev, acc = np.zeros(3, dtype=np.int64), LayerEvents()
    inputs = {}
    for name in PROJECTIONS:
        x = rng.integers(-(1 << 20), 1 << 20, size=layer[name].fan_in).astype(np.int64)
        x[rng.random(x.size) < zero] = 0
        inputs[name] = (x, _sum_squares(x))
    for name in PROJECTIONS:
        layer[name](*inputs[name], ev, acc)
    t0 = time.perf_counter()
    for _ in range(10):
        for name in PROJECTIONS:
            layer[name](*inputs[name], ev, acc)
    return (time.perf_counter() - t0) / 10 * 1e3


def torch_dense_ms_per_token(config) -> float:
    import torch

    from models.mmfree.model import MMFreeForCausalLM
    torch.manual_seed(0)
    model = MMFreeForCausalLM(config).eval().set_quantize(False)
    state = model.init_state(1)
    with torch.no_grad():
        _, state = model.step(torch.tensor([1]), state)
        t0 = time.perf_counter()
        for t in range(TOKENS):
            _, state = model.step(torch.tensor([2 + t]), state)
    ms = (time.perf_counter() - t0) / TOKENS * 1e3
    del model
    gc.collect()
    return ms


def main() -> None:
    config = preset("370m")
    name = "370M shape (24 x 1024, vocab 32000), random ternary weights"
    rss0 = rss_bytes()
    golden = GoldenModel(IntegerProgram.random(config, seed=0))
    gc.collect()
    packed = golden.weight_bytes()
    rss = rss_bytes() - rss0
    ms_golden = golden_ms_per_token(golden)
    ms_torch = torch_dense_ms_per_token(config)
    bw = read_bandwidth()
    floor_ms = packed / bw * 1e3
    records = [
        record("golden", name, "decode_tokens_per_s", 1e3 / ms_golden, "tokens/s", "pytorch fp32 dense decode",
               1e3 / ms_torch),
        record("golden", name, "decode_ms_per_token", ms_golden, "ms", "bandwidth floor (packed bytes / read bandwidth)",
               floor_ms),
        record("golden", name, "resident_bytes", rss, "B", "packed weight bytes", packed),
    ]
    # the goals, stated as fractions so the JSON says how far this is (why: README, golden section)
    records.append(record("golden", name, "fraction_of_goal_100_tokens_per_s", (1e3 / ms_golden) / 100.0, "fraction",
                          "goal: 100 tokens/s", 1.0))
    records.append(record("golden", name, "fraction_of_goal_10x_pytorch_dense", (ms_torch / ms_golden) / 10.0,
                          "fraction", "goal: 10x PyTorch fp32 dense", 1.0))
    print(f"golden {ms_golden:.1f} ms/token ({1e3 / ms_golden:.1f} tokens/s); torch fp32 dense {ms_torch:.1f} ms/token; "
          f"bandwidth {bw / 1e9:.1f} GB/s -> floor {floor_ms:.2f} ms/token ({floor_ms / ms_golden:.1%} of golden time); "
          f"resident {rss / 1e6:.0f} MB for {packed / 1e6:.0f} MB packed")
    base = layer_ms_at_sparsity(golden, 0.0)
    for zero in (0.0, 0.5, 0.9):
        ms = layer_ms_at_sparsity(golden, zero)
        per_token = ms * config.num_hidden_layers
        records.append(record("golden", f"{name}, {int(zero * 100)}% zero activations", "layer_tokens_per_s",
                              1e3 / per_token, "tokens/s (24 layers, no lm_head)", "0% zero activations",
                              1e3 / (base * config.num_hidden_layers)))
        print(f"{int(zero * 100)}% zero inputs: one layer {ms:.2f} ms -> {1e3 / per_token:.1f} tokens/s over 24 layers")
    print(write_records("golden", records))


if __name__ == "__main__":
    main()
