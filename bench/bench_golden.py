"""Golden model decode speed for the 370M MatMul-free shape (random ternary weights, upstream dimensions).

Measured in one run: golden tokens/s at batch 1 (Numba, one thread); the PyTorch fp32 dense decode of the
same shapes (quantisers off, weights as fp32 through BLAS) on one thread — the same resources as the
golden model, the headline baseline — and on every core when other jobs leave them free; the
memory-bandwidth floor (packed weight bytes per token / measured read bandwidth of this machine); one
layer's tokens/s against activation sparsity (0 / 50 / 90 % zero inputs into every projection), each also
against the int8 dense matvecs of the same six projections (``torch._int_mm``, one thread; matvecs only,
no RMSNorm, quantisation or scaling, so a lower bound on a dense int8 layer); and the resident memory with
the packed weights. Run: ``python bench/bench_golden.py`` → ``bench/results/golden.json``.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import best_time, free_cores, record, write_records  # noqa: E402
from models.mmfree.config import preset  # noqa: E402
from models.program.events import LayerEvents  # noqa: E402
from models.program.golden import GoldenModel, _sum_squares  # noqa: E402
from models.program.integer_program import PROJECTIONS, IntegerProgram  # noqa: E402

TOKENS = 12
SEED = 0


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
    """Time of one layer's six projections on inputs with ``zero`` of the activations exactly 0 (best of 10)."""
    rng = np.random.default_rng(seed)
    layer = golden.layers[0]
    inputs = {}
    for name in PROJECTIONS:
        x = rng.integers(-(1 << 20), 1 << 20, size=layer[name].fan_in).astype(np.int64)
        x[rng.random(x.size) < zero] = 0
        inputs[name] = (x, _sum_squares(x))

    def run():
        for name in PROJECTIONS:
            layer[name](*inputs[name], LayerEvents())
    return best_time(run, repeat=10) * 1e3


def int8_dense_layer_ms(golden: GoldenModel, seed: int = 0) -> float:
    """Time of the six projections of one layer as int8 dense matvecs (``torch._int_mm``, one thread; best of 10)."""
    import torch

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(seed)
    layer = golden.layers[0]
    mats = [(torch.randint(-1, 2, (layer[n].fan_out, layer[n].fan_in), dtype=torch.int8, generator=gen),
             torch.randint(-127, 128, (layer[n].fan_in, 1), dtype=torch.int8, generator=gen)) for n in PROJECTIONS]

    def run():
        for w, x in mats:
            torch._int_mm(w, x)
    return best_time(run, repeat=10) * 1e3


def torch_dense_ms_per_token(config, threads: int) -> float:
    """PyTorch fp32 dense decode (quantisers off) of ``config`` on ``threads`` threads, ms per token."""
    import torch

    from models.mmfree.model import MMFreeForCausalLM
    torch.set_num_threads(threads)
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
    golden = GoldenModel(IntegerProgram.random(config, seed=SEED))
    gc.collect()
    packed = golden.weight_bytes()
    rss = rss_bytes() - rss0
    ms_golden = golden_ms_per_token(golden)
    cores = os.cpu_count()
    threads = [1]
    if cores > 1 and free_cores() >= cores - 0.5:
        threads.append(cores)
    else:
        print(f"note: load average {os.getloadavg()[0]:.1f} on {cores} cores: the {cores}-thread PyTorch baseline "
              "is not measured (it would time the other jobs)")
    ms_torch = {n: torch_dense_ms_per_token(config, n) for n in threads}
    bw = read_bandwidth()
    floor_ms = packed / bw * 1e3
    records = [
        record("golden", name, "decode_tokens_per_s", 1e3 / ms_golden, "tokens/s",
               f"pytorch fp32 dense decode, {n} thread{'s' * (n > 1)}", 1e3 / ms)
        for n, ms in ms_torch.items()]
    records += [
        record("golden", name, "decode_ms_per_token", ms_golden, "ms", "bandwidth floor (packed bytes / read bandwidth)",
               floor_ms),
        record("golden", name, "resident_bytes", rss, "B", "packed weight bytes", packed),
    ]
    # the goals, stated as fractions so the JSON says how far this is (why: README, golden section)
    records.append(record("golden", name, "fraction_of_goal_100_tokens_per_s", (1e3 / ms_golden) / 100.0, "fraction",
                          "goal: 100 tokens/s", 1.0))
    records.append(record("golden", name, "fraction_of_goal_10x_pytorch_dense", (ms_torch[1] / ms_golden) / 10.0,
                          "fraction", "goal: 10x PyTorch fp32 dense (1 thread)", 1.0))
    torch_txt = ", ".join(f"{n} thread(s) {ms:.1f} ms/token" for n, ms in ms_torch.items())
    print(f"golden {ms_golden:.1f} ms/token ({1e3 / ms_golden:.1f} tokens/s); torch fp32 dense {torch_txt}; "
          f"bandwidth {bw / 1e9:.1f} GB/s -> floor {floor_ms:.2f} ms/token ({floor_ms / ms_golden:.1%} of golden time); "
          f"resident {rss / 1e6:.0f} MB for {packed / 1e6:.0f} MB packed")
    layers = config.num_hidden_layers
    int8_ms = int8_dense_layer_ms(golden, seed=SEED)
    base = layer_ms_at_sparsity(golden, 0.0, seed=SEED)
    for zero in (0.0, 0.5, 0.9):
        ms = base if zero == 0.0 else layer_ms_at_sparsity(golden, zero, seed=SEED)
        case = f"{name}, {int(zero * 100)}% zero activations"
        unit = f"tokens/s ({layers} layers, no lm_head)"
        records.append(record("golden", case, "layer_tokens_per_s", 1e3 / (ms * layers), unit, "0% zero activations",
                              1e3 / (base * layers)))
        records.append(record("golden", case, "layer_tokens_per_s", 1e3 / (ms * layers), unit,
                              "int8 dense matvecs of the six projections (torch._int_mm, 1 thread; no front end)",
                              1e3 / (int8_ms * layers)))
        print(f"{int(zero * 100)}% zero inputs: one layer {ms:.2f} ms -> {1e3 / (ms * layers):.1f} tokens/s over "
              f"{layers} layers (int8 dense matvecs {int8_ms:.2f} ms)")
    print(write_records("golden", records, seed=SEED))


if __name__ == "__main__":
    main()
