"""The golden model equals the torch integer view bit for bit on 1 and 2 threads and on the generic x86-64
CPU target (no AVX-512), on random tiny models and both bundled models: each target in a fresh process,
since Numba reads ``NUMBA_NUM_THREADS`` and ``NUMBA_CPU_NAME`` when it starts."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHECK = r"""
import sys
import numpy as np
import torch
sys.path.insert(0, {tests!r})
from test_golden import random_model
from models.mmfree.checkpoint import load_checkpoint
from models.program.golden import GoldenModel
from models.program.integer_program import IntegerProgram
from models.program.integer_view import IntegerView

models = {{"tiny seed 0": random_model(0), "tiny seed 1, 3 layers": random_model(1, hidden_size=48, num_hidden_layers=3),
          "bundled": load_checkpoint({root!r} + "/models/bundled"),
          "bundled_spike_attention": load_checkpoint({root!r} + "/models/bundled_spike_attention")}}
for name, model in models.items():
    program = IntegerProgram.from_model(model)
    ids = torch.arange(5, 5 + 12 * 37, 37).remainder(program.vocab_size).view(1, -1)
    logits, state = IntegerView(program).forward(ids)
    counts = []
    for threads in (1, 2):
        golden = GoldenModel(program, threads=threads)
        out, events = golden.run(ids[0].tolist())
        assert np.array_equal(out, logits[0].numpy()), (name, threads)
        if program.token_mixer == "mlgru":
            assert np.array_equal(golden.state, state[:, 0].numpy()), (name, threads)
        counts.append(events)
    assert counts[0] == counts[1], name
    print("bit-exact:", name)
"""


@pytest.mark.slow
@pytest.mark.parametrize("cpu", ["host", "generic"])
def test_golden_is_bit_exact_on_one_and_two_threads(cpu):
    env = {**os.environ, "NUMBA_NUM_THREADS": "2"}
    if cpu == "generic":
        env["NUMBA_CPU_NAME"] = "generic"
    script = CHECK.format(tests=str(ROOT / "tests"), root=str(ROOT))
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("bit-exact:") == 4
