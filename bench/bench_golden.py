"""Golden model decode speed for the 370M MatMul-free shape (random ternary weights, upstream dimensions).

Measured in one run, medians of ``REPEATS`` runs of ``TOKENS`` tokens, the baselines interleaved with the
golden model round by round (a burst of load from other jobs hits every candidate alike), the calling
thread pinned to one core for every 1-thread figure (``os.sched_setaffinity``) and the 1-minute load
average recorded (``load_average_1min``) — on a shared machine every figure is a share of a core:

* golden tokens/s at batch 1 on one thread (the bit-sliced kernel, one compiled call per token) against
  the same token's work done densely on one thread: PyTorch fp32 dense decode (quantisers off, the
  whole model), NumPy fp32 BLAS matvecs (exact here: integer partial sums below 2**24) and int8 dense
  matvecs (``torch._int_mm``) — both of the 145 matvecs of a token, timed as 24 x one layer's six plus
  ``lm_head``, matvecs only (no norm, quantisation or scaling), so lower bounds on a dense token;
* golden tokens/s on every core (``numba`` threads over output blocks) against one thread, each in a
  process of its own started under ``taskset`` on that many cores;
* giga ternary MACs per second per core, the fraction of the bandwidth floor (packed 2-bit bytes per
  token / one thread's measured read bandwidth), the weight bytes held and the resident memory after load
  against the packed size;
* one layer's tokens/s at 0 / 50 / 90 % zero activations (the bit-sliced kernel does dense work: flat),
  against the int8 dense matvecs of the same six projections.

``litespark-inference`` (the ternary AVX-512/VNNI kernel the goal is set against) is not installed here
and is not measured. Run: ``python bench/bench_golden.py`` → ``bench/results/golden.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # NumPy's BLAS on one thread (read when NumPy loads)

import ctypes  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import record, write_records  # noqa: E402
from models.mmfree.config import preset  # noqa: E402
from models.program.events import LayerEvents  # noqa: E402
from models.program.golden import GoldenModel, _sum_squares  # noqa: E402
from models.program.integer_program import PROJECTIONS, IntegerProgram  # noqa: E402

TOKENS = 8
REPEATS = 5
SEED = 0
BENCH = "golden"


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def read_bandwidth(nbytes: int = 1 << 29) -> float:
    """Bytes/s of a streaming read on one thread (NumPy sum of a large uint64 array), median of 5."""
    a = np.ones(nbytes // 8, dtype=np.uint64)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        a.sum()
        times.append(time.perf_counter() - t0)
    return nbytes / statistics.median(times)


def median_times(fns: dict, repeats: int = REPEATS) -> dict:
    """Median seconds per call of each function of ``fns`` over ``repeats`` rounds (one warm-up call each
    first); within a round every function runs once, so the candidates share the machine's load."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def pinned(cores: set[int], fn):
    """``fn`` run with the calling thread on ``cores``."""
    def run():
        os.sched_setaffinity(0, cores)
        return fn()
    return run


def golden_tokens(golden: GoldenModel):
    """``TOKENS`` decode steps (one call of the measurement)."""
    def run():
        for t in range(TOKENS):
            golden.step(2 + t)
    return run


def golden_alone(threads: int) -> None:
    """Print the golden model's median ms per token on ``threads`` threads (the process started under
    ``taskset`` on as many cores, ``NUMBA_NUM_THREADS`` = ``threads``)."""
    golden = GoldenModel(IntegerProgram.random(preset("370m"), seed=SEED), threads=threads)
    print(json.dumps({"threads": threads, "ms": median_times({"g": golden_tokens(golden)})["g"] * 1e3 / TOKENS}))


def golden_ms_per_token(threads: int) -> float:
    """:func:`golden_alone` in a fresh process on cores ``0 .. threads - 1`` (``taskset``): Numba reads
    ``NUMBA_NUM_THREADS`` when it starts, and a thread pool left in this process would disturb the others."""
    cmd = ["taskset", "-c", ",".join(map(str, range(threads))), sys.executable, __file__, "--golden-alone", str(threads)]
    done = subprocess.run(cmd, env={**os.environ, "NUMBA_NUM_THREADS": str(threads)}, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["ms"]


def dense_matvecs(program: IntegerProgram) -> dict:
    """One token's 145 matvecs, dense, one thread: NumPy fp32 BLAS and int8 ``torch._int_mm`` (24 x layer 0's
    six projections + ``lm_head``); each checked exact against int64 first."""
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    layers = len(program.layers)
    mats = [program.layers[0].proj[n].codes for n in PROJECTIONS]
    head = program.lm_head.codes
    xs = {id(w): rng.integers(-127, 128, size=w.shape[1]) for w in mats + [head]}
    f32 = [(w.astype(np.float32), xs[id(w)].astype(np.float32)) for w in mats + [head]]
    i8 = [(torch.from_numpy(w), torch.from_numpy(xs[id(w)].astype(np.int8)).reshape(-1, 1)) for w in mats + [head]]
    for (w, x), (tw, tx) in zip(f32, i8):
        ref = w.astype(np.int64) @ x.astype(np.int64)
        assert np.array_equal((w @ x).astype(np.int64), ref) and np.array_equal(torch._int_mm(tw, tx).numpy()[:, 0], ref)

    def numpy_token():
        for _ in range(layers):
            for w, x in f32[:-1]:
                w @ x
        f32[-1][0] @ f32[-1][1]

    def int8_token():
        for _ in range(layers):
            for w, x in i8[:-1]:
                torch._int_mm(w, x)
        torch._int_mm(*i8[-1])

    def int8_layer():
        for w, x in i8[:-1]:
            torch._int_mm(w, x)
    return {"numpy": numpy_token, "int8": int8_token, "int8_layer": int8_layer}


def torch_dense_token(config):
    """PyTorch fp32 dense decode (quantisers off) of ``config`` on one thread: ``TOKENS`` steps per call."""
    import torch

    from models.mmfree.model import MMFreeForCausalLM
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = MMFreeForCausalLM(config).eval().set_quantize(False)
    state = [model.init_state(1)]

    def run():
        with torch.no_grad():
            for t in range(TOKENS):
                _, state[0] = model.step(torch.tensor([2 + t]), state[0])
    return run


def layer_at_sparsity(golden: GoldenModel, zero: float):
    """One layer's six projections on inputs with ``zero`` of the activations exactly 0."""
    rng = np.random.default_rng(SEED)
    layer = golden.layers[0]
    inputs = {}
    for name in PROJECTIONS:
        x = rng.integers(-(1 << 20), 1 << 20, size=layer[name].fan_in).astype(np.int64)
        x[rng.random(x.size) < zero] = 0
        inputs[name] = (x, _sum_squares(x))

    def run():
        for name in PROJECTIONS:
            layer[name](*inputs[name], LayerEvents())
    return run


def main() -> None:
    config = preset("370m")
    name = "370M shape (24 x 1024, vocab 32000), random ternary weights"
    load = os.getloadavg()[0]
    cores = os.cpu_count()
    print(f"load average {load:.2f} on {cores} cores")
    program = IntegerProgram.random(config, seed=SEED)
    projs = [L.proj[n] for L in program.layers for n in program.projections] + [program.lm_head]
    packed = sum(p.fan_in * p.fan_out for p in projs) // 4  # 2-bit codes
    macs = sum(p.fan_in * p.fan_out for p in projs)
    trim = ctypes.CDLL("libc.so.6").malloc_trim  # hand back the memory the allocator keeps of freed temporaries
    gc.collect()
    trim(0)
    rss0 = rss_bytes()
    golden = GoldenModel(program, threads=1)
    gc.collect()
    trim(0)
    rss = rss_bytes() - rss0
    dense = dense_matvecs(program)
    del program, projs
    gc.collect()
    one = {0}
    fns = {"golden": pinned(one, golden_tokens(golden)), "numpy": pinned(one, dense["numpy"]),
           "int8": pinned(one, dense["int8"])}
    t = median_times(fns)
    ms = {k: v * 1e3 / (TOKENS if k == "golden" else 1) for k, v in t.items()}
    os.sched_setaffinity(0, one)
    ms["torch"] = median_times({"torch": torch_dense_token(config)})["torch"] * 1e3 / TOKENS
    os.sched_setaffinity(0, set(range(cores)))
    gc.collect()
    os.sched_setaffinity(0, one)
    bw = read_bandwidth()
    floor_ms = packed / bw * 1e3
    tok = 1e3 / ms["golden"]
    records = [record(BENCH, name, "load_average_1min", load, "processes", "cores", cores)]
    for key, label in (("torch", "pytorch fp32 dense decode, 1 thread"),
                       ("numpy", "numpy fp32 BLAS matvecs of a token (24 x layer + lm_head; exact), 1 thread"),
                       ("int8", "int8 dense matvecs of a token (torch._int_mm, 24 x layer + lm_head), 1 thread")):
        records.append(record(BENCH, name, "decode_tokens_per_s", tok, "tokens/s", label, 1e3 / ms[key]))
    records += [
        record(BENCH, name, "decode_ms_per_token", ms["golden"], "ms",
               "bandwidth floor (packed bytes / 1-thread read bandwidth)", floor_ms),
        record(BENCH, name, "giga_ternary_macs_per_s_per_core", macs / ms["golden"] / 1e6, "GMAC/s",
               "numpy fp32 BLAS, 1 thread", macs / ms["numpy"] / 1e6),
        record(BENCH, name, "resident_bytes", rss, "B", "packed weight bytes", packed),
        record(BENCH, name, "weight_bytes", golden.weight_bytes(), "B", "packed weight bytes", packed),
        record(BENCH, name, "fraction_of_goal_120_tokens_per_s", tok / 120.0, "fraction", "goal: 120 tokens/s", 1.0),
        record(BENCH, name, "fraction_of_goal_half_bandwidth_floor", (floor_ms / ms["golden"]) / 0.5, "fraction",
               "goal: 50 % of the bandwidth floor's speed", 1.0),
    ]
    alone = {n: golden_ms_per_token(n) for n in ((1, cores) if cores > 1 else (1,))}
    if cores > 1:
        tok1, tok2 = 1e3 / alone[1], 1e3 / alone[cores]
        records += [record(BENCH, name, f"decode_tokens_per_s_{cores}_threads", tok2, "tokens/s",
                           "golden, 1 thread (taskset, its own process)", tok1),
                    record(BENCH, name, f"fraction_of_goal_300_tokens_per_s_{cores}_threads", tok2 / 300.0, "fraction",
                           "goal: 300 tokens/s", 1.0)]
    print(f"golden {ms['golden']:.2f} ms/token ({tok:.1f} tokens/s, {macs / ms['golden'] / 1e6:.1f} GMAC/s)"
          + "; alone under taskset: " + ", ".join(f"{n} thread(s) {v:.2f} ms" for n, v in alone.items())
          + f"; torch fp32 {ms['torch']:.1f} ms, numpy fp32 BLAS {ms['numpy']:.1f} ms, int8 {ms['int8']:.1f} ms; "
          f"bandwidth {bw / 1e9:.1f} GB/s -> floor {floor_ms:.2f} ms ({floor_ms / ms['golden']:.1%} of golden time); "
          f"weights {golden.weight_bytes() / 1e6:.1f} MB, resident {rss / 1e6:.1f} MB for {packed / 1e6:.1f} MB packed")
    layers = config.num_hidden_layers
    lay = median_times({"int8": dense["int8_layer"],
                        **{z: layer_at_sparsity(golden, z) for z in (0.0, 0.5, 0.9)}}, repeats=2 * REPEATS)
    unit = f"tokens/s ({layers} layers, no lm_head)"
    for zero in (0.0, 0.5, 0.9):
        case = f"{name}, {int(zero * 100)}% zero activations"
        v = 1 / (lay[zero] * layers)
        records.append(record(BENCH, case, "layer_tokens_per_s", v, unit, "0% zero activations", 1 / (lay[0.0] * layers)))
        records.append(record(BENCH, case, "layer_tokens_per_s", v, unit,
                              "int8 dense matvecs of the six projections (torch._int_mm, 1 thread; no front end)",
                              1 / (lay["int8"] * layers)))
        print(f"{int(zero * 100)}% zero inputs: one layer {lay[zero] * 1e3:.2f} ms (int8 dense {lay['int8'] * 1e3:.2f} ms)")
    print(f"load average now {os.getloadavg()[0]:.2f}")
    print(write_records(BENCH, records, seed=SEED))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--golden-alone"]:
        golden_alone(int(sys.argv[2]))
    else:
        main()
