"""The model-level accelerator: constructor and image refusals (one line each), the AXI4 burst masters in
Amaranth's simulator at every bus width, and the cocotb run against the golden model with its negative control."""

import copy
import dataclasses
import random
import re
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

from hw.accelerator.axi4 import PAGE, WordReader, WordWriter
from hw.accelerator.image import (HEADER_FIELDS, MAGIC, ImageError, build_image, check_image, load_words,
                                  read_header)
from hw.accelerator.top import ERRORS, FLAGS, REGISTERS, Accelerator
from models.mmfree.config import preset
from models.program.integer_program import IntegerProgram
from verif.accelerator_vectors import tiny_program

SHAPE = dict(hidden=16, glu=32, layers=2, vocab=128)


# ------------------------------------------------------------------------------ constructor refusals
@pytest.mark.parametrize("width", [64, 100, 1024])
def test_a_bus_width_the_masters_cannot_build_is_refused(width):
    with pytest.raises(ValueError, match=re.escape(f"AXI data width {width} is not one of 128, 256, 512 bits")):
        Accelerator(**SHAPE, lanes=4, data_width=width)


def test_a_bus_width_that_is_not_an_integer_is_refused():
    with pytest.raises(TypeError, match="AXI data width must be an integer number of bits, not '128'"):
        Accelerator(**SHAPE, lanes=4, data_width="128")


@pytest.mark.parametrize("kw,message", [
    (dict(lanes=32), "Lane count 32 exceeds 16: a weight word"),
    (dict(lanes=3), "Lane count 3 must divide the hidden size 16"),
    (dict(lanes=4, vocab=130), "Lane count 4 must divide the vocabulary size 130 (the lm_head core)"),
    (dict(lanes=4, layers=0), "Layer count must be between 1 and 255"),
    (dict(lanes=4, vocab=1), "Vocabulary size must be between 2 and 16777216, not 1"),
    (dict(lanes=4, read_outstanding=17), "Outstanding read bursts 17 is outside 1-16, what the AXI4 read port allows"),
    (dict(lanes=4, read_outstanding=0), "Outstanding read bursts 0 is outside 1-16"),
])
def test_an_engine_the_constructor_cannot_build_is_refused(kw, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        Accelerator(**{**SHAPE, **kw})


# ------------------------------------------------------------------------------ the image
@pytest.fixture(scope="module")
def program():
    return tiny_program(**SHAPE, seed=3)


def test_image_header_and_sections(program):
    image = build_image(program, 4)
    h = check_image(image, **SHAPE, lanes=4)
    assert h["magic"] == MAGIC and h["image_bytes"] == len(image)
    assert h["load_words"] == load_words(**SHAPE, lanes=4)
    load = np.frombuffer(image[h["load_offset"]:h["load_offset"] + 4 * h["load_words"]], dtype="<u4")
    assert int(load.astype(np.uint64).sum()) & 0xFFFFFFFF == h["load_checksum"]
    row = np.frombuffer(image[h["emb_offset"] + 5 * h["emb_stride"]:][:2 * SHAPE["hidden"]], dtype="<i2")
    assert (row == program.embedding[5]).all()
    assert h["emb_offset"] % 64 == 0 and h["emb_stride"] % 64 == 0


def test_a_mismatched_image_is_refused_in_one_line(program):
    image = build_image(program, 8)
    with pytest.raises(ImageError, match=re.escape("image lanes is 8, the accelerator was built for 4; build the "
                                                   "image for this accelerator's configuration")):
        check_image(image, **SHAPE, lanes=4)
    with pytest.raises(ImageError, match="image vocab is 128, the accelerator was built for 256"):
        check_image(image, **{**SHAPE, "vocab": 256}, lanes=8)
    with pytest.raises(ImageError, match="not an accelerator image: magic 0x00000000"):
        read_header(bytes(64))
    with pytest.raises(ImageError, match="shorter than its 64-byte header"):
        read_header(image[:10])
    bad = bytearray(image)
    bad[4 * HEADER_FIELDS["version"]] = 9
    with pytest.raises(ImageError, match="image format version 9, this accelerator reads version 1"):
        check_image(bytes(bad), **SHAPE, lanes=8)


def test_a_spike_attention_program_is_refused():
    cfg = preset("tiny", token_mixer="spike_attention", num_heads=2, hidden_size=16, intermediate_size=32,
                 use_lower_bound=False)
    with pytest.raises(ImageError, match="the accelerator runs MLGRU programs only, not 'spike_attention'"):
        build_image(IntegerProgram.random(cfg, seed=0), 4)


def test_a_program_with_sparsity_levers_is_refused(program):
    with pytest.raises(ImageError, match="runs SiLU GLUs on dense input codes.*glu_activation='relu'"):
        build_image(dataclasses.replace(program, glu_activation="relu"), 4)
    with pytest.raises(ImageError, match="input_sparsity=.*run it on the golden model"):
        build_image(program.with_input_sparsity({"o": {"topk": 4}}), 4)


def test_compile_images_writes_the_accelerator_image_of_a_checkpoint(tmp_path):
    """`nmllm compile CHECKPOINT --images DIR` writes accelerator.nmla, the image build_image makes; lanes that
    do not divide the vocabulary are refused in one line."""
    import torch

    from hw.accelerator.image import write_image
    from models.mmfree.checkpoint import save_checkpoint
    from models.mmfree.model import MMFreeForCausalLM
    from nmllm.cli import main

    torch.manual_seed(0)
    model = MMFreeForCausalLM(preset("tiny"))
    save_checkpoint(model, tmp_path / "ckpt")
    assert main(["compile", str(tmp_path / "ckpt"), "--out", str(tmp_path / "m.json"), "--images",
                 str(tmp_path / "img"), "--lanes", "4"]) == 0
    program = IntegerProgram.from_model(model)
    image = (tmp_path / "img" / "accelerator.nmla").read_bytes()
    assert image == build_image(program, 4)
    check_image(image, hidden=program.hidden_size, glu=program.intermediate_size, layers=len(program.layers),
                vocab=program.vocab_size, lanes=4)
    with pytest.raises(ImageError, match="lanes 3 must be a positive integer dividing the hidden size 32"):
        write_image(program, 3, tmp_path / "x.nmla")
    assert not (tmp_path / "x.nmla").exists()


# ------------------------------------------------------------------------------ AXI4 masters (Amaranth simulator)
def _word(addr: int) -> int:
    return (addr // 4 * 2654435761 + 12345) & 0xFFFFFFFF


@pytest.mark.parametrize("width,outstanding", [(128, 1), (256, 1), (512, 1), (128, 3), (512, 16)])
def test_reader_bursts_stay_in_their_4k_page_and_return_every_word(width, outstanding):
    """Random stalls on AR, R and the word stream; a request that crosses 4 KB pages; with more than one burst
    allowed in flight, bursts overlap, never more than allowed."""
    rd = WordReader(data_width=width, outstanding=outstanding)
    nbytes = width // 8
    pages = 1 if outstanding == 1 else 2
    addr, words = (1 << 40) + PAGE - 2 * nbytes, (pages - 1) * PAGE // 4 + 3 * width // 32 + 5
    rng = random.Random(width + outstanding)
    bursts, got, in_flight = [], [], [0]

    async def bench(ctx):
        ctx.set(rd.req.payload.addr, addr)
        ctx.set(rd.req.payload.words, words)
        ctx.set(rd.req.valid, 1)
        await ctx.tick()
        ctx.set(rd.req.valid, 0)
        beats = []  # (address, last of its burst) of the beats still to send
        for _ in range(20 * words + 200):
            ctx.set(rd.bus.arready, rng.random() < 0.6)
            ctx.set(rd.data.ready, rng.random() < 0.6)
            send = bool(beats) and rng.random() < 0.6
            ctx.set(rd.bus.rvalid, send)
            if send:
                a, last = beats[0]
                ctx.set(rd.bus.rdata, sum(_word(a + 4 * k) << (32 * k) for k in range(nbytes // 4)))
                ctx.set(rd.bus.rlast, last)
            if ctx.get(rd.bus.arvalid) and ctx.get(rd.bus.arready):
                a, n = ctx.get(rd.bus.araddr), ctx.get(rd.bus.arlen) + 1
                bursts.append((a, n))
                beats.extend((a + i * nbytes, i == n - 1) for i in range(n))
                in_flight.append(in_flight[-1] + 1)
            if send and ctx.get(rd.bus.rready):
                if beats.pop(0)[1]:
                    in_flight.append(in_flight[-1] - 1)
            if ctx.get(rd.data.valid) and ctx.get(rd.data.ready):
                got.append(ctx.get(rd.data.payload))
            await ctx.tick()
            if len(got) == words:
                break

    sim = Simulator(rd)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == [_word(addr + 4 * i) for i in range(words)]
    assert sum(n for _, n in bursts) == -(-words * 4 // nbytes) and len(bursts) >= pages + 1
    assert (max(in_flight) == 1) if outstanding == 1 else (1 < max(in_flight) <= outstanding), max(in_flight)
    for a, n in bursts:
        assert a % nbytes == 0 and 1 <= n <= 256 and a // PAGE == (a + n * nbytes - 1) // PAGE, (a, n)


@pytest.mark.parametrize("width", [128, 256, 512])
def test_writer_strobes_only_its_words_and_stays_in_its_4k_page(width):
    """A request starting in the middle of a bus word and crossing a page; random stalls on every channel."""
    wr = WordWriter(data_width=width)
    nbytes = width // 8
    addr, words = (1 << 33) + PAGE - nbytes - 8, width // 32 + 7
    rng = random.Random(width + 1)
    mem: dict[int, int] = {}
    bursts = []

    async def bench(ctx):
        ctx.set(wr.req.payload.addr, addr)
        ctx.set(wr.req.payload.words, words)
        ctx.set(wr.req.valid, 1)
        await ctx.tick()
        ctx.set(wr.req.valid, 0)
        sent, beat_addr, responses = 0, [], 0
        for _ in range(2000):
            ctx.set(wr.bus.awready, rng.random() < 0.6)
            ctx.set(wr.bus.wready, rng.random() < 0.6)
            ctx.set(wr.bus.bvalid, responses > 0 and rng.random() < 0.6)
            offer = sent < words and rng.random() < 0.7
            ctx.set(wr.data.valid, offer)
            ctx.set(wr.data.payload, _word(addr + 4 * sent))
            if ctx.get(wr.bus.awvalid) and ctx.get(wr.bus.awready):
                a, n = ctx.get(wr.bus.awaddr), ctx.get(wr.bus.awlen) + 1
                bursts.append((a, n))
                beat_addr.extend(a + i * nbytes for i in range(n))
            if ctx.get(wr.bus.wvalid) and ctx.get(wr.bus.wready):
                a = beat_addr.pop(0)
                data, strb = ctx.get(wr.bus.wdata), ctx.get(wr.bus.wstrb)
                for b in range(nbytes):
                    if strb >> b & 1:
                        mem[a + b] = data >> (8 * b) & 0xFF
                if ctx.get(wr.bus.wlast):
                    responses += 1
            if ctx.get(wr.bus.bvalid) and ctx.get(wr.bus.bready):
                responses -= 1
            if offer and ctx.get(wr.data.ready):
                sent += 1
            await ctx.tick()
            if sent == words and not ctx.get(wr.busy):
                break

    sim = Simulator(wr)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    want = {addr + 4 * i + b: _word(addr + 4 * i) >> (8 * b) & 0xFF for i in range(words) for b in range(4)}
    assert mem == want
    assert len(bursts) == 2
    for a, n in bursts:
        assert a % nbytes == 0 and a // PAGE == (a + n * nbytes - 1) // PAGE, (a, n)


# ------------------------------------------------------------------------------ control registers (Amaranth simulator)
def test_control_protocol_error_bits_and_auto_restart():
    """The Vitis control map on the smallest top: ap_idle at reset; a start with no buffers ends at once with
    ap_done, ap_ready and the error bit, done clears on read, the interrupt follows GIE/IER/ISR; a start before
    any load raises not_loaded; auto_restart starts again after every done until it is cleared."""
    top = Accelerator(hidden=4, glu=4, layers=1, vocab=4, lanes=4)
    seen = {}

    async def bench(ctx):
        ctx.set(top.ap_rst_n, 1)
        ctx.set(top.s_axi_control_bready, 1)
        ctx.set(top.s_axi_control_rready, 1)

        async def write(name, value):
            ctx.set(top.s_axi_control_awaddr, REGISTERS[name])
            ctx.set(top.s_axi_control_wdata, value)
            ctx.set(top.s_axi_control_awvalid, 1)
            ctx.set(top.s_axi_control_wvalid, 1)
            await ctx.tick()
            ctx.set(top.s_axi_control_awvalid, 0)
            ctx.set(top.s_axi_control_wvalid, 0)
            await ctx.tick().repeat(3)

        async def read(name):
            ctx.set(top.s_axi_control_araddr, REGISTERS[name])
            ctx.set(top.s_axi_control_arvalid, 1)
            await ctx.tick()
            ctx.set(top.s_axi_control_arvalid, 0)
            value = ctx.get(top.s_axi_control_rdata)
            await ctx.tick()
            return value

        seen["reset"] = await read("CTRL")
        await write("GIE", 1)
        await write("IER", 1)
        await write("CTRL", 1)
        seen["no_buffers"] = [await read("CTRL"), await read("CTRL"), await read("STATUS"), ctx.get(top.interrupt)]
        await write("ISR", 1)
        seen["isr_cleared"] = ctx.get(top.interrupt)
        for name, value in (("IMAGE_LO", 0x1000), ("OUT_LO", 0x2000), ("N_TOKENS", 1)):
            await write(name, value)
        await write("CTRL", 1)
        seen["not_loaded"] = [await read("CTRL"), await read("STATUS")]
        await write("FLAGS", 1 << FLAGS["load"])
        await write("IMAGE_LO", 0x1004)
        await write("CTRL", 1)
        seen["misaligned"] = [await read("CTRL"), await read("STATUS")]
        await write("CTRL", 0x81)
        seen["auto_restart"] = [await read("CTRL"), await read("CTRL")]
        await write("CTRL", 0)
        await read("CTRL")
        seen["stopped"] = await read("CTRL")

    async def clock(ctx):
        while True:
            ctx.set(top.ap_clk, 1)
            await ctx.delay(5e-9)
            ctx.set(top.ap_clk, 0)
            await ctx.delay(5e-9)

    sim = Simulator(top)
    sim.add_process(clock)
    sim.add_testbench(bench)
    sim.run()
    idle, done_idle_ready, auto = 0b100, 0b1110, 0x80
    assert seen["reset"] == idle
    assert seen["no_buffers"] == [done_idle_ready, idle, 1 << ERRORS["no_buffers"], 1]
    assert seen["isr_cleared"] == 0
    assert seen["not_loaded"] == [done_idle_ready, 1 << ERRORS["not_loaded"]]
    assert seen["misaligned"] == [done_idle_ready, 1 << ERRORS["address_fault"]]
    # ap_done is set again after each read: the kernel keeps restarting (and failing at once) by itself
    assert all(v & auto and v & 0b10 for v in seen["auto_restart"]), seen["auto_restart"]
    assert seen["stopped"] == idle


# ------------------------------------------------------------------------------ cocotb, both simulators
@pytest.mark.cocotb
@pytest.mark.slow
def test_the_bench_fails_on_one_wrong_logit():
    """Negative control of the comparison: the first load-and-token phase with one golden logit changed."""
    from verif.flow import BUILD_ROOT, run_bench
    from verif.registry import BENCHES
    from verif.simulators import available_simulators

    bench = BENCHES["accelerator"]
    config = next(iter(bench.configs))
    vectors = bench.vectors(bench.build(**bench.configs[config]), 1)
    bad = copy.deepcopy(vectors)
    bad["phases"] = [p for p in bad["phases"] if p["name"] == "load_and_first_prompt_token"]
    bad["phases"][0]["logits"][0][7] += 1
    simulator = available_simulators()[-1]
    result = run_bench("accelerator", config, simulator, vectors=bad)
    assert not result.passed
    assert "1 of 1 cocotb tests failed" in result.detail
    log = (BUILD_ROOT / "accelerator" / config / simulator / "sim.log").read_text()
    assert "phase load_and_first_prompt_token step 0 logit 7: RTL" in log


@pytest.mark.cocotb
@pytest.mark.slow
def test_a_512_bit_bus_passes_every_phase():
    """The registry checks the top at 128 bits; the same phases at 512 bits (one beat per header and row)."""
    from verif.accelerator_flow import run_accelerator
    from verif.accelerator_vectors import make_vectors
    from verif.simulators import available_simulators

    result = run_accelerator({**SHAPE, "lanes": 4, "data_width": 512}, available_simulators()[-1],
                             lambda unit: make_vectors(unit, seed=2))
    assert result.passed, result.detail
    assert result.vectors > 1000


@pytest.mark.cocotb
@pytest.mark.slow
def test_a_session_resumes_from_the_state_the_last_one_saved():
    """Two simulator sessions: the first feeds a prompt, generates and saves h (every word compared with the
    golden model); the second, a fresh simulator, loads the image, restores that state from device memory and
    generates on: its tokens equal those of one uninterrupted golden run."""
    from models.program.golden import GoldenModel
    from verif.accelerator_flow import run_accelerator
    from verif.accelerator_vectors import make_session_vectors
    from verif.simulators import available_simulators

    cfg = {**SHAPE, "lanes": 4, "data_width": 128}
    unit, program = Accelerator(**cfg), tiny_program(**SHAPE, seed=5)
    golden = GoldenModel(program)
    tokens, tok = [], 11
    for t in (7, 9):
        golden.step(t)
    for _ in range(6):
        tok = int(np.argmax(golden.step(tok)))
        tokens.append(tok)
    first = make_session_vectors(unit, program, starts=[(7, 1), (9, 1), (11, 3)], source="seed 5", save=True)
    saved = np.array(first["phases"][-1]["state"], dtype=np.uint32).view(np.int32).reshape(SHAPE["layers"], -1)
    second = make_session_vectors(unit, program, starts=[(tokens[2], 3)], source="seed 5", state=saved, save=True)
    assert first["phases"][-1]["tokens"] + second["phases"][0]["tokens"] == tokens
    assert (second["phases"][0]["state"] == np.asarray(golden.state).ravel().astype(np.uint32)).all()
    for spec in (first, second):
        result = run_accelerator(cfg, available_simulators()[-1], spec)
        assert result.passed, result.detail


@pytest.mark.cocotb
@pytest.mark.slow
def test_the_bench_fails_on_one_wrong_state_word():
    """Negative control of the saved-state comparison: one golden h word changed fails the run, naming it."""
    from verif.accelerator_flow import run_accelerator
    from verif.accelerator_vectors import make_session_vectors
    from verif.simulators import available_simulators

    cfg = {**SHAPE, "lanes": 4, "data_width": 128}
    spec = make_session_vectors(Accelerator(**cfg), tiny_program(**SHAPE, seed=5), starts=[(7, 2)], source="seed 5",
                                save=True)
    spec["phases"][0]["state"][SHAPE["hidden"] + 3] ^= 1
    result = run_accelerator(cfg, available_simulators()[-1], spec)
    assert not result.passed
    log = Path(re.search(r"log: (\S+)$", result.detail).group(1))
    assert "phase load_and_generate state word 19 (layer 1, channel 3): RTL" in log.read_text()
