"""cocotb testbench: the model-level accelerator against ``GoldenModel.step``, token after token.

Device memory is a cocotbext-axi ``AxiRam`` on ``m_axi`` with seeded random pauses on all five channels;
the host drives ``s_axi_control`` with cocotbext-axi's AXI4-Lite master (its channels paused too) and
waits for ``interrupt``. The images of the stimulus are written into memory first; every phase then
writes its arguments, starts the kernel, waits for the interrupt, clears it, and checks ``STATUS``,
``TOKENS_DONE``, every token word, every logit word and every saved state word against the golden model. ``vectors`` in the
summary counts the words compared; per phase it records the performance counters.
"""

from __future__ import annotations

import json
import logging
import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, with_timeout
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from verif.harness import VitisControl

PAUSE = 0.3
TIMEOUT_NS = 200_000_000
COUNTERS = ("CYCLES_TOKEN", "CYCLES_RUN", "BYTES_READ", "BYTES_WRITTEN", "READ_STALLS", "WRITE_STALLS",
            "BUSY_LAYERS", "BUSY_HEAD", "TOKENS_DONE")


def _signed(word: int) -> int:
    return word - (1 << 32) if word >> 31 else word


class TB(VitisControl):
    """Clock, reset, device memory and the control master."""

    def __init__(self, dut, spec: dict, seed: int, pause: bool):
        self.dut, self.regs = dut, spec["registers"]
        for bus in ("m_axi", "s_axi_control"):  # one log line per transfer would dominate the run time
            logging.getLogger(f"cocotb.{dut._name}.{bus}").setLevel(logging.WARNING)
        cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
        kw = dict(reset=dut.ap_rst_n, reset_active_level=False)
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.ap_clk, size=spec["mem_size"], **kw)
        self.ctrl = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axi_control"), dut.ap_clk, **kw)
        rng = random.Random(seed)

        def pauses():
            while True:
                yield rng.random() < PAUSE

        if pause:
            for ch in (self.ram.read_if.ar_channel, self.ram.read_if.r_channel, self.ram.write_if.aw_channel,
                       self.ram.write_if.w_channel, self.ram.write_if.b_channel, self.ctrl.write_if.aw_channel,
                       self.ctrl.write_if.w_channel, self.ctrl.read_if.ar_channel):
                ch.set_pause_generator(pauses())

    async def run(self, args: dict) -> None:
        """Write the arguments, start, wait for the interrupt, acknowledge it."""
        for name, value in args.items():
            if name in ("IMAGE", "OUT", "LOGITS", "STATE"):
                await self.write(f"{name}_LO", value & 0xFFFFFFFF)
                await self.write(f"{name}_HI", value >> 32)
            else:
                await self.write(name, value)
        ctrl = await self.read("CTRL")
        assert ctrl & 0b100, f"CTRL before a start: {ctrl:#x} is not idle"
        await self.write("CTRL", 1)
        if not int(self.dut.interrupt.value):
            await with_timeout(RisingEdge(self.dut.interrupt), TIMEOUT_NS, "ns")
        ctrl = await self.read("CTRL")
        assert ctrl & 0b1110 == 0b1110, f"CTRL after the interrupt: {ctrl:#x}, expected done, idle and ready"
        assert (await self.read("CTRL")) & 0b1010 == 0, "ap_done and ap_ready must clear on read"
        await self.write("ISR", await self.read("ISR"))
        assert not int(self.dut.interrupt.value), "writing ISR back must clear the interrupt"


@cocotb.test()
async def accelerator_matches_golden(dut):
    """Every token and logit word of every phase equals the golden model's; every error bit as named."""
    with open(os.environ["NMLLM_TB_VECTORS"]) as f:
        spec = json.load(f)
    tb = TB(dut, spec, int(os.environ.get("NMLLM_TB_SEED", "1")), pause=spec.get("mode") != "bench")
    await tb.reset()
    for name, value in spec["read_only"].items():
        got = await tb.read(name)
        assert got == value, f"register {name}: {got:#x}, expected {value:#x}"
    size = spec["mem_size"]
    for at, text in spec["images"].items():
        tb.ram.write(int(at) % size, bytes.fromhex(text))
    await tb.write("GIE", 1)
    await tb.write("IER", 1)
    words, per_phase, cycles = 0, {}, 0
    for ph in spec["phases"]:
        name = ph["name"]
        await tb.run(ph["args"])
        status = await tb.read("STATUS")
        assert status == ph["status"], f"phase {name}: STATUS {status:#x}, expected {ph['status']:#x}"
        done = await tb.read("TOKENS_DONE")
        assert done == len(ph["tokens"]), f"phase {name}: TOKENS_DONE {done}, expected {len(ph['tokens'])}"
        out = ph["args"]["OUT"] % size
        got = [int.from_bytes(tb.ram.read(out + 4 * t, 4), "little") for t in range(len(ph["tokens"]))]
        for t, (g, w) in enumerate(zip(got, ph["tokens"])):
            assert g == w, f"phase {name} step {t}: token {g} from the RTL != golden {w}"
        words += len(got)
        V = spec["vocab"]
        for t, want in enumerate(ph["logits"]):
            raw = tb.ram.read(ph["args"]["LOGITS"] % size + 4 * V * t, 4 * V)
            logit = [_signed(int.from_bytes(raw[4 * i:4 * i + 4], "little")) for i in range(V)]
            for i, (g, w) in enumerate(zip(logit, want)):
                assert g == w, f"phase {name} step {t} logit {i}: RTL {g} != golden {w}"
            words += V
        if "state" in ph:
            raw = tb.ram.read(ph["args"]["STATE"] % size, 4 * len(ph["state"]))
            for i, w in enumerate(ph["state"]):
                g = int.from_bytes(raw[4 * i:4 * i + 4], "little")
                assert g == w, (f"phase {name} state word {i} (layer {i // spec['hidden']}, channel "
                                f"{i % spec['hidden']}): RTL {_signed(g)} != golden {_signed(w)}")
            words += len(ph["state"])
        if ph["tokens"]:
            assert await tb.read("LAST_TOKEN") == ph["tokens"][-1], f"phase {name}: LAST_TOKEN"
        if ph["status"] >> 16 and name.startswith("load"):
            got_hash = [await tb.read("HASH_LO"), await tb.read("HASH_HI")]
            assert got_hash == spec["hash"], f"phase {name}: model hash {got_hash} != {spec['hash']}"
        per_phase[name] = {c.lower(): await tb.read(c) for c in COUNTERS}
        cycles += per_phase[name]["cycles_run"]
    with open(os.environ["NMLLM_TB_SUMMARY"], "w") as f:
        json.dump({"vectors": words, "cycles": cycles, "phases": per_phase, "program": spec["program"]}, f)
