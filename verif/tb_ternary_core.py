"""cocotb testbench: the ternary core (matvec + per-token scale) against the golden words, every output.

Reads ``$NMLLM_TB_VECTORS`` (:mod:`verif.ternary_core_vectors`), stall seed ``$NMLLM_TB_SEED``; writes
``{"vectors", "cycles", "cycles_per_vector"}`` to ``$NMLLM_TB_SUMMARY``. Streams ``act``, ``scale`` in and
``res`` out, each with random stalls on the stalled phases.
"""

from __future__ import annotations

import json
import os

import cocotb

from verif.harness import Harness


@cocotb.test()
async def ternary_core_matches_golden(dut):
    """Every phase: every scaled result equals ``apply_scale(W @ x, multiplier, shift)``."""
    with open(os.environ["NMLLM_TB_VECTORS"]) as f:
        spec = json.load(f)
    tb = Harness(dut, int(os.environ.get("NMLLM_TB_SEED", "1")), sources=["act", "scale"], sinks=["res"])
    dut.weights__en.value = 0
    await tb.reset()
    checked, total, per_vector = 0, 0, {}
    for phase in spec["phases"]:
        await tb.write_port("weights", phase["weight_words"])
        n_out = len(phase["expected"][0])
        n_vec = len(phase["vectors"])
        feeds = {"act": [a for v in phase["vectors"] for a in v], "scale": phase["scales"]}
        limit = 50 * n_vec * (len(phase["vectors"][0]) + 8 * n_out) + 1000
        got, cycles = await tb.run(feeds, {"res": n_out * n_vec}, phase["stalls"], limit)
        tb.compare(phase["name"], "res", got["res"], [w for v in phase["expected"] for w in v], n_out)
        checked += n_vec
        total += cycles
        per_vector[phase["name"]] = cycles / n_vec
    with open(os.environ["NMLLM_TB_SUMMARY"], "w") as f:
        json.dump({"vectors": checked, "cycles": total, "cycles_per_vector": per_vector}, f)
