"""Training and evaluation throughput of the bundled MatMul-free LM on this CPU.

Cases (model = ``preset("bundled")``, random token ids, AdamW):

* ``train``: one optimiser step (forward, cross-entropy, backward, clip, AdamW) on a 16 x 256 batch;
  metric tokens/s.
* ``eval``: forward pass without gradients on 8 windows of 256 tokens (what ``eval perplexity``
  runs); metric tokens/s.
* ``decode``: token-by-token ``step()`` with batch 1 (the recurrent-state API); metric tokens/s.

Each is measured with the quantisers on (ternary weights + int8 activations, the QAT float view) and,
as the baseline in the same run, with them off (the same model in plain fp32), at 1 and 2 torch
threads. The best of several repetitions is reported; other jobs may share the CPU, so each case names
the 1-minute load average seen while it ran (2 threads on a loaded 2-core machine stall badly).
Run: ``python bench/bench_training.py`` → ``bench/results/training.json``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import best_time, record, write_records  # noqa: E402
from models.mmfree.config import preset  # noqa: E402
from models.mmfree.model import MMFreeForCausalLM  # noqa: E402


def measure(quantize: bool, threads: int, repeat: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = preset("bundled")
    model = MMFreeForCausalLM(cfg).set_quantize(quantize)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    batch = torch.randint(0, cfg.vocab_size, (16, 257), generator=gen)
    windows = torch.randint(0, cfg.vocab_size, (8, 256), generator=gen)

    def train_step():
        model.train()
        logits = model(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, cfg.vocab_size), batch[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    @torch.no_grad()
    def eval_fwd():
        model.eval()
        model(windows)

    @torch.no_grad()
    def decode():
        model.eval()
        state = None
        for t in range(64):
            _, state = model.step(windows[:1, t], state)

    return {
        "train": batch[:, 1:].numel() / best_time(train_step, repeat),
        "eval": windows.numel() / best_time(eval_fwd, repeat),
        "decode": 64 / best_time(decode, repeat),
    }


def main() -> None:
    cfg = preset("bundled")
    n_params = MMFreeForCausalLM(cfg).num_parameters()
    records = []
    desc = {"train": "train step, batch 16 x 256", "eval": "eval forward, 8 x 256 windows",
            "decode": "decode step(), batch 1"}
    for threads in (1, 2):
        load0 = os.getloadavg()[0]
        q = measure(True, threads, repeat=3)
        fp = measure(False, threads, repeat=3)
        load = max(load0, os.getloadavg()[0])
        for kind in ("train", "eval", "decode"):
            case = (f"bundled ({n_params / 1e6:.2f} M params), {desc[kind]}, {threads} thread{'s' if threads > 1 else ''}, "
                    f"QAT ternary+int8, CPU load average {load:.1f} during the run")
            records.append(record("training", case, f"{kind}_tokens_per_s", q[kind], "tokens/s",
                                  "same model, plain fp32 (quantisers off)", fp[kind]))
            print(f"{case}: {q[kind]:.0f} tok/s (fp32 {fp[kind]:.0f}, ratio {q[kind] / fp[kind]:.2f})", flush=True)
    path = write_records("training", records)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
