"""A cocotb harness for units with several valid/ready streams: clock, reset, stalls, write ports.

Every source and sink of :mod:`verif.streams` is stepped on the falling edge and settled after
``ReadOnly``, so all streams see the same cycle; :meth:`Harness.run` feeds queued beats with random
stalls until every sink has collected the expected number of words. No Amaranth imports.
"""

from __future__ import annotations

import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

from verif.streams import StreamSink, StreamSource

__all__ = ["IDLE", "STALL", "Harness", "VitisControl"]

IDLE, STALL = 0.3, 0.4  # probabilities of a withheld valid / ready on the stalled phases


class Harness:
    """Clock ``clk``, reset ``rst``, and the named input (``sources``) and output (``sinks``) streams."""

    def __init__(self, dut, seed: int, sources: list[str], sinks: list[str], clock: str = "clk"):
        self.dut = dut
        self.clk = getattr(dut, clock)
        rng = random.Random(seed)
        self.sources = {name: StreamSource(dut, name, rng) for name in sources}
        self.sinks = {name: StreamSink(dut, name, rng) for name in sinks}
        self.cycle = 0
        cocotb.start_soon(Clock(self.clk, 10, unit="ns").start())

    async def tick(self) -> None:
        """One clock cycle with every stream stepped."""
        await FallingEdge(self.clk)
        for s in (*self.sources.values(), *self.sinks.values()):
            s.falling_edge()
        await ReadOnly()
        self.cycle += 1
        for s in (*self.sources.values(), *self.sinks.values()):
            s.settled()

    async def reset(self, name: str = "rst", active: int = 1) -> None:
        sig = getattr(self.dut, name)
        sig.value = active
        for _ in range(3):
            await FallingEdge(self.clk)
        sig.value = 1 - active

    async def write_port(self, prefix: str, words: list[int], base: int = 0) -> None:
        """Write ``words`` at ``base``, ``base + 1``, ... through the ``<prefix>__addr/data/en`` port."""
        addr, data, en = (getattr(self.dut, f"{prefix}__{n}") for n in ("addr", "data", "en"))
        for i, word in enumerate(words):
            await FallingEdge(self.clk)
            addr.value, data.value, en.value = base + i, word, 1
        await FallingEdge(self.clk)
        en.value = 0

    async def run(self, feeds: dict[str, list[int]], want: dict[str, int], stalls: bool,
                  limit: int) -> tuple[dict[str, list[int]], int]:
        """Queue ``feeds`` on the sources, collect ``want[name]`` words from each sink; returns (words, cycles)."""
        for s in self.sources.values():
            s.idle = IDLE if stalls else 0.0
        for s in self.sinks.values():
            s.stall = STALL if stalls else 0.0
            s.received = []
        for name, beats in feeds.items():
            self.sources[name].queue.extend(beats)
        start = self.cycle
        while any(len(self.sinks[n].received) < w for n, w in want.items()):
            await self.tick()
            if self.cycle - start >= limit:
                got = {n: len(self.sinks[n].received) for n in want}
                raise AssertionError(f"timeout after {limit} cycles: received {got} of {want}")
        await FallingEdge(self.clk)  # leave ReadOnly so that the caller may write; nothing moves meanwhile
        for s in self.sources.values():
            s.valid.value = 0
        for s in self.sinks.values():
            s.ready.value = 0
        return {n: self.sinks[n].received[:w] for n, w in want.items()}, self.cycle - start

    @staticmethod
    def compare(phase: str, stream: str, got: list[int], want: list[int], width: int = 0) -> None:
        """Assert ``got == want`` word for word, naming the first mismatch (``width``: words per vector)."""
        assert len(got) == len(want), f"phase {phase}: {stream}: {len(got)} words, expected {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            where = f"vector {i // width} word {i % width}" if width else f"word {i}"
            assert g == w, f"phase {phase}: {stream} {where}: RTL {g} != golden {w}"

    async def run_phase(self, phase: dict) -> int:
        """One phase of a ``{"name", "writes", "feeds", "expect", "width", "stalls"}`` stimulus: the
        writes (``[port, base, words]``), then every feed and sink at once; every expected word is
        compared. Returns the cycles the streams took."""
        for port, base, words in phase.get("writes", []):
            await self.write_port(port, words, base)
        beats = sum(len(v) for v in phase["feeds"].values()) + sum(len(v) for v in phase["expect"].values())
        got, cycles = await self.run(phase["feeds"], {k: len(v) for k, v in phase["expect"].items()},
                                     phase["stalls"], 100 * beats + 5000)
        for name, want in phase["expect"].items():
            self.compare(phase["name"], name, got[name], want, phase.get("width", {}).get(name, 0))
        return cycles


class VitisControl:
    """Reset and AXI4-Lite register access of a Vitis kernel's testbench: a subclass sets ``dut`` (with
    ``ap_clk``, ``ap_rst_n``), ``ctrl`` (a cocotbext-axi ``AxiLiteMaster``) and ``regs`` (name -> address)."""

    async def reset(self, cycles: int = 5) -> None:
        self.dut.ap_rst_n.value = 0
        await ClockCycles(self.dut.ap_clk, cycles)
        await FallingEdge(self.dut.ap_clk)
        self.dut.ap_rst_n.value = 1
        await ClockCycles(self.dut.ap_clk, 2)

    async def read(self, name: str) -> int:
        return await self.ctrl.read_dword(self.regs[name])

    async def write(self, name: str, value: int) -> None:
        await self.ctrl.write_dword(self.regs[name], value)
