"""cocotb testbench: the elementwise unit (MLGRU cell, GLU cell, BitLinear front end) against the golden.

Reads ``$NMLLM_TB_VECTORS`` (:mod:`verif.elementwise_vectors`): phases of write-port loads, input
streams and expected output words; every stream stalls at random on the stalled phases and every output
word is compared. Writes ``{"vectors", "cycles", "cycles_per_phase"}`` to ``$NMLLM_TB_SUMMARY``.
"""

from __future__ import annotations

import json
import os

import cocotb

from verif.harness import Harness

SOURCES = ["cell_in", "glu_in", "front_in"]
SINKS = ["cell_out", "glu_out", "front_codes", "front_scale"]
PORTS = ["lower_bound", "g_norm_gain", "state", "front_gain", "front_static"]


@cocotb.test()
async def elementwise_matches_golden(dut):
    """Every phase: every word of every output stream equals the golden model's."""
    with open(os.environ["NMLLM_TB_VECTORS"]) as f:
        spec = json.load(f)
    tb = Harness(dut, int(os.environ.get("NMLLM_TB_SEED", "1")), sources=SOURCES, sinks=SINKS)
    for port in PORTS:
        getattr(dut, f"{port}__en").value = 0
    await tb.reset()
    total, per_phase = 0, {}
    for phase in spec["phases"]:
        cycles = await tb.run_phase(phase)
        total += cycles
        per_phase[phase["name"]] = cycles
    with open(os.environ["NMLLM_TB_SUMMARY"], "w") as f:
        json.dump({"vectors": sum(p["vectors"] for p in spec["phases"]), "cycles": total,
                   "cycles_per_phase": per_phase}, f)
