"""Baselines for the system model: measured PyTorch CPU decode on this machine, analytic GPU rooflines.

* **CPU, measured**: the MatMul-free LM of each shape as a dense fp32 PyTorch model (every BitLinear's
  quantisers off: the plain fp32 view of the same architecture), batch 1, token-by-token ``step`` with
  the recurrent state, on ``threads`` CPU threads. Only shapes whose fp32 weights fit in 40 % of the
  available memory are run. Energy comes from RAPL (``/sys/class/powercap/intel-rapl:*``) when readable,
  else from a STATED estimate of :data:`CPU_WATTS_PER_CORE` per busy core.
* **GPU, analytic roofline** (not measured; no GPU here): batch-1 decode is weight-bandwidth bound, so
  ``tokens/s = bandwidth / bytes of weights read per token`` and ``J/token = power / tokens/s`` over the
  board's power range. Jetson Orin Nano 8 GB (68 GB/s LPDDR5, 7-15 W) and H100 SXM (3.35 TB/s, 700 W).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from sim.system.shapes import ModelShape

__all__ = ["CPU_WATTS_PER_CORE", "GPUS", "CpuResult", "available_memory_bytes", "read_rapl_uj", "fits_in_memory",
           "measure_cpu_decode", "gpu_roofline"]

#: Estimate when RAPL is unreadable: AMD EPYC 9005 parts are rated 155-500 W for 8-192 cores, 2.6-19 W
#: per core; we charge 5 W per busy core (a stated estimate, not a measurement).
CPU_WATTS_PER_CORE = 5.0

#: Published specs used by the rooflines: (bandwidth bytes/s, (min W, max W), memory bytes, source).
GPUS = {
    "jetson-orin-nano": (68e9, (7.0, 15.0), 8e9, "NVIDIA Jetson Orin Nano 8 GB: 68 GB/s LPDDR5, 7-15 W"),
    "h100-sxm": (3.35e12, (700.0, 700.0), 80e9, "NVIDIA H100 SXM 80 GB: 3.35 TB/s HBM3, 700 W"),
}

_RAPL = Path("/sys/class/powercap")


def available_memory_bytes() -> int:
    """``MemAvailable`` from ``/proc/meminfo`` (0 when unreadable)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def read_rapl_uj() -> Optional[int]:
    """Sum of package energy counters in microjoules, or None when RAPL is not readable."""
    total, found = 0, False
    for f in sorted(_RAPL.glob("intel-rapl:*/energy_uj")):
        if f.parent.name.count(":") != 1:
            continue
        try:
            total += int(f.read_text())
            found = True
        except (OSError, ValueError):
            return None
    return total if found else None


def fits_in_memory(shape: ModelShape, fraction: float = 0.4) -> bool:
    """True when the dense fp32 model takes at most ``fraction`` of the available memory."""
    return shape.params * 4 <= fraction * available_memory_bytes()


@dataclass
class CpuResult:
    """A measured CPU decode run."""

    model: str
    params: int
    threads: int
    tokens: int
    tokens_per_s: float
    energy_per_token_j: float
    energy_source: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def measure_cpu_decode(shape: ModelShape, tokens: int = 8, threads: int = 1, warmup: int = 2,
                       seed: int = 0) -> CpuResult:
    """Decode ``tokens`` tokens (after ``warmup``) with the dense fp32 model of ``shape``; time and energy."""
    import torch

    from models.mmfree.config import MMFreeConfig
    from models.mmfree.model import MMFreeForCausalLM

    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
        raise ValueError(f"tokens must be a positive integer, got {tokens!r}")
    if not fits_in_memory(shape):
        raise ValueError(f"{shape.name} needs {shape.params * 4 / 1e9:.1f} GB in fp32, more than 40 % of the "
                         f"{available_memory_bytes() / 1e9:.1f} GB available: measure a smaller shape")
    cfg = MMFreeConfig(vocab_size=shape.vocab, hidden_size=shape.hidden, num_hidden_layers=shape.layers,
                       intermediate_size=shape.intermediate, hidden_ratio=4)
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        model = MMFreeForCausalLM(cfg, init=False).eval().set_quantize(False)
        with torch.no_grad():
            for p in model.parameters():
                p.uniform_(-0.02, 0.02)
            ids = torch.tensor([1])
            state = model.init_state(1)
            for _ in range(warmup):
                logits, state = model.step(ids, state)
                ids = logits.argmax(-1)
            e0 = read_rapl_uj()
            t0 = time.perf_counter()
            for _ in range(tokens):
                logits, state = model.step(ids, state)
                ids = logits.argmax(-1)
            dt = time.perf_counter() - t0
            e1 = read_rapl_uj()
    finally:
        torch.set_num_threads(old_threads)
    if e0 is not None and e1 is not None and e1 > e0:
        e_tok, src = (e1 - e0) * 1e-6 / tokens, "RAPL package counters (whole socket, measured)"
    else:
        e_tok = CPU_WATTS_PER_CORE * threads * dt / tokens
        src = f"ESTIMATE: RAPL not readable; {CPU_WATTS_PER_CORE:g} W per busy core x {threads} thread(s) x time"
    return CpuResult(model=shape.name, params=shape.params, threads=threads, tokens=tokens,
                     tokens_per_s=tokens / dt, energy_per_token_j=e_tok, energy_source=src)


def gpu_roofline(shape: ModelShape, gpu: str, bytes_per_weight: float = 2.0) -> dict:
    """ANALYTIC batch-1 decode roofline: every weight read once per token at the GPU's bandwidth.

    ``bytes_per_weight`` 2 = fp16 dense, 1 = int8, 0.25 = packed 2-bit ternary. Returns tokens/s and the
    J/token range over the board's power range, labelled as analytic.
    """
    if gpu not in GPUS:
        raise ValueError(f"unknown GPU {gpu!r}: choose one of {', '.join(GPUS)}")
    bw, (w_lo, w_hi), mem, src = GPUS[gpu]
    tok_s = bw / (shape.params * bytes_per_weight)
    return {"gpu": gpu, "model": shape.name, "bytes_per_weight": bytes_per_weight, "tokens_per_s": tok_s,
            "fits": shape.params * bytes_per_weight <= mem,
            "j_per_token_min": w_lo / tok_s, "j_per_token_max": w_hi / tok_s,
            "label": f"ANALYTIC roofline (not measured): {src}; weights read once per token, batch 1"}
