"""cocotb testbench: the crossbar tile against the integer crossbar model, every word and its cycle count.

Stimulus and expected words come from ``$NMLLM_TB_VECTORS`` (:mod:`verif.crossbar_tile_vectors`); each
phase loads cells, sets the ADC range and the noise source, loads the LFSR seed when it names one, streams its
pulse slots into the update port (with random stalls when the phase has them) until the tile has taken them
all, and streams its vectors (and device-noise beats) with or without random stalls. In a ``timed`` phase (no
stalls) every vector must take ``cycles_per_vector`` cycles from the clock edge that takes its first
activation to the one that takes its last result, both counted. A summary goes to ``$NMLLM_TB_SUMMARY``.
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.triggers import FallingEdge

from verif.harness import Harness


async def _updates(tb: Harness, beats: list[int], stalls: bool, limit: int) -> None:
    """Stream the pulse slots ``beats`` into the update port; returns once the tile has taken the last one."""
    src = tb.sources["update"]
    src.idle = 0.3 if stalls else 0.0
    src.queue.extend(beats)
    start = tb.cycle
    while src.queue:
        await tb.tick()
        if tb.cycle - start >= limit:
            raise AssertionError(f"timeout after {limit} cycles: {len(src.queue)} update beats not taken")
    await FallingEdge(tb.clk)
    src.valid.value = 0


async def _timed_run(tb: Harness, acts: list[int], noise: list[int], rows: int, cols: int, n: int,
                     limit: int) -> tuple[list[int], list[int]]:
    """Stream ``n`` vectors without stalls; returns (result words, cycles of each vector)."""
    src, sink = tb.sources["act"], tb.sinks["res"]
    for s in tb.sources.values():
        s.idle = 0.0
    sink.stall, sink.received = 0.0, []
    src.queue.extend(acts)
    tb.sources["noise"].queue.extend(noise)
    first, took, fed, start = {}, [], 0, tb.cycle
    while len(sink.received) < n * cols:
        queued, got = len(src.queue), len(sink.received)
        await tb.tick()
        if len(src.queue) < queued:
            if fed % rows == 0:
                first[fed // rows] = tb.cycle
            fed += 1
        if len(sink.received) > got and len(sink.received) % cols == 0:
            took.append(tb.cycle - first[len(sink.received) // cols - 1] + 1)
        if tb.cycle - start >= limit:
            raise AssertionError(f"timeout after {limit} cycles: received {len(sink.received)} of {n * cols}")
    await FallingEdge(tb.clk)
    for s in tb.sources.values():
        s.valid.value = 0
    sink.ready.value = 0
    return sink.received[:n * cols], took


@cocotb.test()
async def crossbar_tile_matches_the_model(dut):
    """Every phase (device noise, noise off, LFSR, ideal, saturation, zero input, range ends, pulse updates): every
    word as the model's; every vector of a timed phase in the formula's cycles."""
    with open(os.environ["NMLLM_TB_VECTORS"]) as f:
        spec = json.load(f)
    tb = Harness(dut, int(os.environ.get("NMLLM_TB_SEED", "1")), sources=["act", "noise", "update"], sinks=["res"])
    dut.cells__en.value = 0
    dut.lfsr_load.value = 0
    dut.noise_sel.value = 0
    dut.adc_shift.value = 0
    await tb.reset()
    want_cycles = spec["cycles_per_vector"]
    checked, total_cycles, per_vector, measured = 0, 0, {}, []
    for phase in spec["phases"]:
        await tb.write_port("cells", phase["cell_words"])
        dut.adc_shift.value = phase["adc_shift"]
        dut.noise_sel.value = phase["noise_sel"]
        if phase["lfsr_seed"] is not None:
            dut.lfsr_seed.value = phase["lfsr_seed"]
            dut.lfsr_load.value = 1
            await FallingEdge(dut.clk)
            dut.lfsr_load.value = 0
        if phase.get("updates"):
            await _updates(tb, phase["updates"], phase["stalls"], 20 * len(phase["updates"]) + 100)
        n, rows, cols = len(phase["vectors"]), len(phase["vectors"][0]), len(phase["expected"][0])
        acts = [v for vec in phase["vectors"] for v in vec]
        limit = 20 * n * want_cycles + 1000
        start = tb.cycle
        if phase["timed"]:
            words, took = await _timed_run(tb, acts, phase["noise_beats"], rows, cols, n, limit)
            assert took == [want_cycles] * n, (f"phase {phase['name']}: cycles per vector {took}, "
                                               f"expected {want_cycles} (models.program.crossbar.mvm_cycles)")
            measured += took
        else:
            got, _ = await tb.run({"act": acts, "noise": phase["noise_beats"]}, {"res": n * cols},
                                  phase["stalls"], limit)
            words = got["res"]
        tb.compare(phase["name"], "res", words, [w for vec in phase["expected"] for w in vec], cols)
        checked += n
        total_cycles += tb.cycle - start
        per_vector[phase["name"]] = (tb.cycle - start) / n
    with open(os.environ["NMLLM_TB_SUMMARY"], "w") as f:
        json.dump({"vectors": checked, "cycles": total_cycles, "cycles_per_vector": per_vector,
                   "mvm_cycles": {"measured": sorted(set(measured)), "timed_vectors": len(measured),
                                  "formula": want_cycles}}, f)
