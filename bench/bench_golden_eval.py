"""Golden model evaluation throughput on the bundled model: windows of WikiText-2 test, as ``--engine golden``
scores them (``GoldenModel.run_batch``: one compiled call per window, windows over threads), against the
torch integer view on the same windows (``--engine integer``, batched, torch on as many threads) in the same
run; both return the same integer logits (checked). Medians of ``REPEATS`` rounds, load average recorded.
Run: ``python bench/bench_golden_eval.py`` → ``bench/results/golden_eval.json``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._records import record, write_records  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "wikitext-2" / "wiki.test.raw"
WINDOWS, WINDOW, REPEATS, SEED = 8, 256, 5, 0
BENCH = "golden_eval"


def main() -> None:
    import torch

    from models.mmfree.checkpoint import load_checkpoint
    from models.program.golden import GoldenModel
    from models.program.integer_program import IntegerProgram
    from models.program.integer_view import IntegerView
    from models.text.tokenizer import load_tokenizer

    load = os.getloadavg()[0]
    bundled = ROOT / "models" / "bundled"
    program = IntegerProgram.from_model(load_checkpoint(bundled))
    ids = load_tokenizer(bundled).encode(DATA.read_text()[:200_000]).ids
    ids = torch.tensor(ids[:WINDOWS * WINDOW]).view(WINDOWS, WINDOW)
    records = [record(BENCH, "bundled model", "load_average_1min", load, "processes", "cores", os.cpu_count())]
    for threads in sorted({1, os.cpu_count()}):
        torch.set_num_threads(threads)
        golden, view = GoldenModel(program, threads=1), IntegerView(program)
        assert np.array_equal(golden.run_batch(ids.tolist(), threads=threads), view.forward(ids)[0].numpy())
        times = {"golden": [], "integer": []}
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            golden.run_batch(ids.tolist(), threads=threads)
            times["golden"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            view.forward(ids)
            times["integer"].append(time.perf_counter() - t0)
        tok = {k: ids.numel() / statistics.median(v) for k, v in times.items()}
        case = f"bundled model, {WINDOWS} windows of {WINDOW} WikiText-2 test tokens, {threads} thread(s)"
        records.append(record(BENCH, case, "forward_tokens_per_s", tok["golden"], "tokens/s",
                              f"torch integer view, batched, {threads} thread(s)", tok["integer"]))
        print(f"{case}: golden {tok['golden']:.0f} tokens/s, integer view {tok['integer']:.0f} tokens/s")
    print(f"load average {load:.2f} -> {os.getloadavg()[0]:.2f}")
    print(write_records(BENCH, records, seed=SEED))


if __name__ == "__main__":
    main()
