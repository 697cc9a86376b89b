"""cocotb testbench: the spike attention unit against the golden model, every output word.

Reads ``$NMLLM_TB_VECTORS`` (:mod:`verif.spike_attention_vectors`): phases of state-port writes, spike
beats and expected output words, one state sequence throughout. Stalled phases withhold ``valid`` and
``ready`` at random; phases with ``cycles_per_token`` run without stalls and check every token's cycle
count (the cycle at which its last output word moves, minus the previous token's) against the unit's
formula. Writes ``{"vectors", "cycles", "cycles_per_phase", "cycles_list"}`` to ``$NMLLM_TB_SUMMARY``
(``cycles_list``: per-token cycles of every timed phase, by phase name).
"""

from __future__ import annotations

import json
import os

import cocotb
from cocotb.triggers import FallingEdge

from verif.harness import IDLE, STALL, Harness


async def run_timed(tb: Harness, phase: dict) -> tuple[int, list[int]]:
    """A phase without stalls, recording the cycle at which each token's last word moves."""
    for port, base, words in phase.get("writes", []):
        await tb.write_port(port, words, base)
    src, sink = tb.sources["spikes"], tb.sinks["res"]
    src.idle, sink.stall = (IDLE, STALL) if phase["stalls"] else (0.0, 0.0)
    sink.received = []
    src.queue.extend(phase["feeds"]["spikes"])
    want, width = len(phase["expect"]["res"]), phase["width"]["res"]
    start, last, per_token = tb.cycle, tb.cycle, []
    limit = 50 * (len(phase["feeds"]["spikes"]) + want) + 100 * sum(phase.get("cycles_per_token", [0])) + 5000
    while len(sink.received) < want:
        await tb.tick()
        if len(sink.received) % width == 0 and len(sink.received) // width > len(per_token):
            per_token.append(tb.cycle - last)
            last = tb.cycle
        assert tb.cycle - start < limit, f"phase {phase['name']}: timeout, {len(sink.received)} of {want} words"
    await FallingEdge(tb.clk)
    src.valid.value, sink.ready.value = 0, 0
    tb.compare(phase["name"], "res", sink.received[:want], phase["expect"]["res"], width)
    return tb.cycle - start, per_token


@cocotb.test()
async def spike_attention_matches_golden(dut):
    """Every phase: every output word equals the golden model's; timed phases: every token's cycles."""
    with open(os.environ["NMLLM_TB_VECTORS"]) as f:
        spec = json.load(f)
    tb = Harness(dut, int(os.environ.get("NMLLM_TB_SEED", "1")), sources=["spikes"], sinks=["res"])
    dut.state__en.value = 0
    await tb.reset()
    total, per_phase, cycles_list = 0, {}, {}
    for phase in spec["phases"]:
        if "cycles_per_token" in phase:
            cycles, per_token = await run_timed(tb, phase)
            assert per_token == phase["cycles_per_token"], (
                f"phase {phase['name']}: cycles per token {per_token} != formula {phase['cycles_per_token']}")
            cycles_list[phase["name"]] = per_token
        else:
            cycles = await tb.run_phase(phase)
        total += cycles
        per_phase[phase["name"]] = cycles
    with open(os.environ["NMLLM_TB_SUMMARY"], "w") as f:
        json.dump({"vectors": sum(p["vectors"] for p in spec["phases"]), "cycles": total,
                   "cycles_per_phase": per_phase, "cycles_list": cycles_list}, f)
