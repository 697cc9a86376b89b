"""cocotb testbench: the layer top against ``GoldenModel.layer_step``, token after token, state carried.

Drives the real AXI ports with cocotbext-axi: parameter frames on ``s_axis_load``, one residual vector
per token on ``s_axis_act``, the result from ``m_axis_act`` (all three streams with random pauses),
start/status/cycle registers over ``s_axi_control``. Checks, in order: the read-only registers; layer 0
for every token of the stimulus with the state carried, with register reads while busy on one token
(live values, the result unchanged) and a start written while busy (ignored); the state ``h`` read back
through ``STATE`` (every channel, then from the last channel wrapping to 0); a reset in the middle of a
token (nothing comes out, counters back to zero, memories kept: after clearing ``h`` the first tokens
give the golden words again); layer 1 after reloading. ``vectors`` in the summary counts the output
and state words compared (``tokens`` counts the tokens).
"""

from __future__ import annotations

import json
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, with_timeout
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame, AxiStreamSink, AxiStreamSource

from verif.harness import VitisControl

PAUSE = {"s_axis_act": 0.3, "m_axis_act": 0.4, "s_axis_load": 0.2}
TIMEOUT_NS = 100_000_000  # 10 M cycles: a 370M-shape layer takes about 0.7 M


def _signed(word: int) -> int:
    return word - (1 << 32) if word >> 31 else word


class TB(VitisControl):
    """Clock, reset, the three AXI4-Stream ports (random pauses) and the AXI4-Lite master."""

    def __init__(self, dut, seed: int, regs: dict, pause: bool = True):
        self.dut, self.regs = dut, regs
        cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
        kw = dict(clock=dut.ap_clk, reset=dut.ap_rst_n, reset_active_level=False)
        self.act_in = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_act"), byte_size=32, **kw)
        self.act_out = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_act"), byte_size=32, **kw)
        self.load = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_load"), byte_size=32, **kw)
        self.ctrl = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), **kw)
        rng = random.Random(seed)

        def pauses(p):
            while True:
                yield rng.random() < p

        for port, name in ((self.act_in, "s_axis_act"), (self.act_out, "m_axis_act"), (self.load, "s_axis_load")):
            port.set_pause_generator(pauses(PAUSE[name] if pause else 0.0))

    async def load_layer(self, frames: list[list[int]]) -> None:
        for frame in frames:
            await self.load.send(AxiStreamFrame(frame))
        await self.load.wait()

    async def clear_state(self) -> None:
        await self.write("CTRL", 2)
        while (await self.read("CTRL")) & 0b1000:
            pass

    async def token(self, x: list[int], busy_checks: bool = False) -> tuple[list[int], int]:
        """Run one token; returns (output words as signed ints, CYCLES)."""
        await self.write("CTRL", 1)
        await self.act_in.send(AxiStreamFrame(x))
        if busy_checks:
            status = await self.read("STATUS")
            c1 = await self.read("CYCLES")
            ctrl = await self.read("CTRL")
            await self.write("CTRL", 1)  # a start while busy is ignored
            c2 = await self.read("CYCLES")
            assert status & 1, f"STATUS read while busy: {status:#x} has no busy bit"
            assert ctrl & 0b111 == 0b001, f"CTRL read while busy: {ctrl:#x}, expected busy, not done, not idle"
            assert 0 < c1 < c2, f"CYCLES read while busy must count up: {c1}, then {c2}"
        frame = await with_timeout(self.act_out.recv(), TIMEOUT_NS, "ns")
        ctrl = await self.read("CTRL")
        assert ctrl & 0b111 == 0b110, f"CTRL after the token: {ctrl:#x}, expected done and idle"
        return [_signed(w) for w in frame.tdata], await self.read("CYCLES")


@cocotb.test()
async def neurocore_top_matches_golden(dut):
    """Every output word of every token equals the golden layer_step's; reset and busy reads as documented."""
    with open(os.environ["NMLLM_TB_VECTORS"]) as f:
        spec = json.load(f)
    bench = spec.get("mode") == "bench"  # bench/bench_neurocore.py: layer 0 only, no pauses, no reset checks
    tb = TB(dut, int(os.environ.get("NMLLM_TB_SEED", "1")), spec["registers"], pause=not bench)
    await tb.reset()
    for name, value in spec["read_only"].items():
        got = await tb.read(name)
        assert got == value, f"register {name}: {got:#x}, expected {value:#x}"
    words, cycles, per_token = 0, [], {}

    async def run(layer: dict, first: int, count: int, label: str, busy_at: int = -1) -> None:
        nonlocal words
        for t in range(first, first + count):
            got, c = await tb.token(layer["inputs"][t], busy_checks=(t == busy_at))
            want = layer["expected"][t]
            for j, (g, w) in enumerate(zip(got, want)):
                assert g == w, f"{label} token {t} word {j}: RTL {g} != golden {w}"
            assert len(got) == len(want), f"{label} token {t}: {len(got)} words, expected {len(want)}"
            words += len(got)
            cycles.append(c)
        per_token[label] = cycles[-1]

    layer0 = spec["layers"][0]
    await tb.load_layer(layer0["frames"])
    await tb.clear_state()
    await run(layer0, 0, len(layer0["inputs"]), "layer0", busy_at=-1 if bench else 2)
    if bench:
        with open(os.environ["NMLLM_TB_SUMMARY"], "w") as f:
            json.dump({"vectors": words, "tokens": len(cycles), "cycles": sum(cycles), "cycles_list": cycles}, f)
        return
    tokens_done = await tb.read("TOKENS")
    assert tokens_done == len(layer0["inputs"]), f"TOKENS {tokens_done}, expected {len(layer0['inputs'])}"
    # the state read back: STATE rewound to 0, then d reads; then from the last channel, wrapping to 0
    d = len(layer0["state"])
    await tb.write("STATE", 0)
    got = [await tb.read("STATE") for _ in range(d)]
    await tb.write("STATE", d - 1)
    got += [await tb.read("STATE") for _ in range(2)]
    channels = list(range(d)) + [d - 1, 0]
    for j, (g, c) in enumerate(zip(got, channels)):
        w = layer0["state"][c]
        assert g == w, f"layer0 state read {j} (channel {c}): RTL {_signed(g)} != golden {_signed(w)}"
    words += len(got)

    # a reset in the middle of a token: nothing comes out, control returns to reset, memories are kept
    await tb.write("CTRL", 1)
    await tb.act_in.send(AxiStreamFrame(layer0["inputs"][0]))
    await tb.act_in.wait()
    await ClockCycles(dut.ap_clk, 150)
    await tb.reset()
    assert tb.act_out.empty(), "a token aborted by reset must produce no output"
    for name, want in (("CTRL", 0b100), ("TOKENS", 0), ("CYCLES", 0)):
        got = await tb.read(name)
        assert got == want, f"after a reset mid-token: {name} = {got:#x}, expected {want:#x}"
    await tb.clear_state()
    await run(layer0, 0, 4, "layer0_after_reset")

    layer1 = spec["layers"][1]
    await tb.load_layer(layer1["frames"])
    await tb.clear_state()
    await run(layer1, 0, len(layer1["inputs"]), "layer1")
    with open(os.environ["NMLLM_TB_SUMMARY"], "w") as f:
        json.dump({"vectors": words, "tokens": len(cycles), "cycles": sum(cycles),
                   "cycles_per_token": per_token, "program": spec["program"]}, f)
