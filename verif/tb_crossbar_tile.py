"""cocotb testbench: the crossbar tile's periphery against the functional crossbar model, every word.

Stimulus and expected words come from ``$NMLLM_TB_VECTORS`` (:mod:`verif.crossbar_tile_vectors`); each
phase loads cells, sets the ADC range and the noise switch, loads the LFSR seed when it names one, and
streams its vectors with or without random stalls. A summary goes to ``$NMLLM_TB_SUMMARY``.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.triggers import FallingEdge

from verif.harness import Harness


@cocotb.test()
async def crossbar_tile_matches_functional_model(dut):
    """Every phase (noise on and off, reseeded, ideal, saturation, zero input): every word as the model's."""
    with open(os.environ["NMLLM_TB_VECTORS"]) as f:
        spec = json.load(f)
    tb = Harness(dut, int(os.environ.get("NMLLM_TB_SEED", "1")), sources=["act"], sinks=["res"])
    dut.cells__en.value = 0
    dut.lfsr_load.value = 0
    dut.noise_en.value = 0
    dut.adc_shift.value = 0
    await tb.reset()
    checked, total_cycles, per_vector = 0, 0, {}
    for phase in spec["phases"]:
        await tb.write_port("cells", phase["cell_words"])
        dut.adc_shift.value = phase["adc_shift"]
        dut.noise_en.value = phase["noise_en"]
        if phase["lfsr_seed"] is not None:
            dut.lfsr_seed.value = phase["lfsr_seed"]
            dut.lfsr_load.value = 1
            await FallingEdge(dut.clk)
            dut.lfsr_load.value = 0
        n, cols = len(phase["vectors"]), len(phase["expected"][0])
        rows = len(phase["vectors"][0])
        limit = 50 * n * (rows + 8 * (rows + cols + 1) + cols) + 1000
        got, cycles = await tb.run({"act": [v for vec in phase["vectors"] for v in vec]}, {"res": n * cols},
                                   phase["stalls"], limit)
        tb.compare(phase["name"], "res", got["res"], [w for vec in phase["expected"] for w in vec], cols)
        checked += n
        total_cycles += cycles
        per_vector[phase["name"]] = cycles / n
    with open(os.environ["NMLLM_TB_SUMMARY"], "w") as f:
        json.dump({"vectors": checked, "cycles": total_cycles, "cycles_per_vector": per_vector}, f)
