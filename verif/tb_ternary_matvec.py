"""cocotb testbench: the ternary matrix-vector unit against the golden function, every output word.

Stimulus and expected words come from ``$NMLLM_TB_VECTORS`` (written by
:mod:`verif.ternary_matvec_vectors`); a summary (vectors checked, cycles) goes to ``$NMLLM_TB_SUMMARY``.
The stall seed is ``$NMLLM_TB_SEED``.
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly

from verif.streams import StreamSink, StreamSource

IDLE, STALL = 0.3, 0.4  # probabilities of a withheld valid / ready on the stalled phases


class TB:
    """Clock, reset, weight loading and the two streams of one ternary matrix-vector unit."""

    def __init__(self, dut, seed: int):
        self.dut = dut
        rng = random.Random(seed)
        self.source = StreamSource(dut, "act", rng)
        self.sink = StreamSink(dut, "res", rng)
        self.cycle = 0
        dut.weights__en.value = 0
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())

    async def tick(self) -> tuple[bool, bool]:
        """One clock cycle; returns (input beat moved, output beat moved) at its rising edge."""
        await FallingEdge(self.dut.clk)
        self.source.falling_edge()
        self.sink.falling_edge()
        await ReadOnly()
        self.cycle += 1
        return self.source.settled(), self.sink.settled()

    async def reset(self) -> None:
        self.dut.rst.value = 1
        for _ in range(3):
            await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def load_weights(self, words: list[int]) -> None:
        for addr, word in enumerate(words):
            await FallingEdge(self.dut.clk)
            self.dut.weights__addr.value = addr
            self.dut.weights__data.value = word
            self.dut.weights__en.value = 1
        await FallingEdge(self.dut.clk)
        self.dut.weights__en.value = 0

    async def run_phase(self, vectors: list[list[int]], n_out: int, stalls: bool) -> tuple[list[int], int]:
        """Stream every vector in, collect every result; returns (results, cycles taken)."""
        self.source.idle = IDLE if stalls else 0.0
        self.sink.stall = STALL if stalls else 0.0
        for v in vectors:
            self.source.queue.extend(v)
        self.sink.received = []
        want = n_out * len(vectors)
        start = self.cycle
        limit = 50 * (len(vectors) * (len(vectors[0]) + 4 * n_out) + 100)
        while len(self.sink.received) < want:
            await self.tick()
            assert self.cycle - start < limit, f"timeout: {len(self.sink.received)} of {want} results"
        return self.sink.received, self.cycle - start


@cocotb.test()
async def ternary_matvec_matches_golden(dut):
    """Every phase (random with stalls, throughput, named corner cases): every word equals the golden's."""
    with open(os.environ["NMLLM_TB_VECTORS"]) as f:
        spec = json.load(f)
    tb = TB(dut, int(os.environ.get("NMLLM_TB_SEED", "1")))
    await tb.reset()
    checked, total_cycles, per_vector = 0, 0, {}
    for phase in spec["phases"]:
        await tb.load_weights(phase["weight_words"])
        n_out = len(phase["expected"][0])
        got, cycles = await tb.run_phase(phase["vectors"], n_out, phase["stalls"])
        want = [w for vec in phase["expected"] for w in vec]
        for i, (g, w) in enumerate(zip(got, want)):
            assert g == w, (f"phase {phase['name']}: vector {i // n_out} output {i % n_out}: "
                            f"RTL {g} != golden {w}")
        checked += len(phase["vectors"])
        total_cycles += cycles
        per_vector[phase["name"]] = cycles / len(phase["vectors"])
        await FallingEdge(dut.clk)  # leave ReadOnly before the next phase writes
    with open(os.environ["NMLLM_TB_SUMMARY"], "w") as f:
        json.dump({"vectors": checked, "cycles": total_cycles, "cycles_per_vector": per_vector}, f)
