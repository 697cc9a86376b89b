"""System model on measured per-stage activity, static and dynamic energy apart, spike formats, one-line refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models.program.events import LayerEvents
from nmllm.cli import main
from sim.system.activity import (Activity, activity_from_stage_events, assumed_activity, checkpoint_tokens,
                                 stage_events, stage_names)
from sim.system.compiler import MSG_RED, MSG_SYN, auto_chips, chips_needed, compile_model
from sim.system.energy import load_preset
from sim.system.hwconfig import BINARY_AXONS, HWConfig
from sim.system.model import SystemModel, simulate
from sim.system.shapes import SCALES, model_shape

BUNDLED = Path(__file__).resolve().parents[1] / "models" / "bundled"
PROJ_FIELDS = ("input_events", "synaptic_ops", "zero_weight_slots", "dense_macs", "bit_spikes", "weight_bytes_read")


def _program():
    from models.mmfree.checkpoint import load_checkpoint
    from models.program.integer_program import IntegerProgram

    return IntegerProgram.from_model(load_checkpoint(BUNDLED))


@pytest.mark.slow
def test_simulate_bundled_uses_the_golden_counts_per_stage(tmp_path, capsys):
    """`nmllm simulate models/bundled` measures per-stage activity by default; its densities are the golden
    model's counts on the given tokens, and the system model gives back the measured synaptic ops."""
    text = tmp_path / "text.txt"
    text.write_text("The tower is 324 metres tall, about the same height as an 81-storey building. " * 8)
    out = tmp_path / "report.json"
    assert main(["simulate", str(BUNDLED), "--preset", "loihi2-estimate", "--chips", "auto", "--text", str(text),
                 "--tokens", "12", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "activity    MEASURED per stage" in printed and "inside the system boundary" in printed
    assert "  static " in printed and "  dynamic " in printed
    rec = json.loads(out.read_text())
    act = Activity.from_dict(rec["activity"])
    assert act.measured and act.tokens == 12 and rec["provenance"]["git_sha"]

    from models.program.golden import GoldenModel

    ids = checkpoint_tokens(BUNDLED, text, BUNDLED / "tokenizer.json", 12)
    stages = stage_events(_program(), ids)
    _, plain = GoldenModel(_program()).run(ids)            # the golden model's counts per layer
    shape = model_shape(BUNDLED)
    for li in range(shape.layers):                         # the stages of a layer add up to its record
        mine = sum((stages[f"L{li}.{k}"] for k in ("ifg", "o", "gate", "down")), LayerEvents())
        assert all(getattr(mine, f) == getattr(plain[li], f) for f in PROJ_FIELDS)
    assert all(getattr(stages["lm_head"], f) == getattr(plain[-1], f) for f in PROJ_FIELDS)
    for name, ev in stages.items():
        got = act.stages[name]
        assert got["input_nonzero"] == (ev.synaptic_ops + ev.zero_weight_slots) / ev.dense_macs
        assert got["weight_density"] == ev.synaptic_ops / (ev.synaptic_ops + ev.zero_weight_slots)
        assert got["bit_spikes_per_event"] == ev.bit_spikes / ev.input_events
    assert act == activity_from_stage_events(stages, shape, 12, what=act.source.split(": ", 1)[1].split(", 12 tokens")[0])

    preset = auto_chips(shape, load_preset("loihi2-estimate"))
    model = SystemModel(compile_model(shape, preset), preset, act)
    st = np.asarray([s.name for s in model.mapping.stages])[model.mapping.cores["stage"][model.mapping.messages["dst"]]]
    for name, ev in stages.items():                        # the system model reproduces every stage's synaptic ops
        assert model.synops[model.syn & (st == name)].sum() == pytest.approx(ev.synaptic_ops / 12, rel=1e-9)


def test_stage_activity_applies_only_to_its_own_model():
    shape = model_shape("tiny")
    ev = LayerEvents(input_events=10, synaptic_ops=30, zero_weight_slots=10, dense_macs=80, bit_spikes=25)
    head = LayerEvents(input_events=10, synaptic_ops=50, zero_weight_slots=50, dense_macs=400, bit_spikes=20)
    stages = {n: (head if n == "lm_head" else ev) for n in stage_names(shape)}
    act = activity_from_stage_events(stages, shape, tokens=1)
    assert act.weight_of("ifg") == 0.75 and act.weight_of("lm_head") == 0.5 and act.input_nonzero["lm_head"] == 0.25
    assert act.per_stage_for(compile_model(shape, load_preset("loihi2-estimate")).model)
    assert not act.per_stage_for(SCALES["370m"].to_dict())
    assert act.for_stage("L3.ifg", "ifg", SCALES["370m"].to_dict()) == (0.5, 0.75, 2.5)
    assert Activity.from_dict(json.loads(json.dumps(act.to_dict()))) == act


def test_static_and_dynamic_energy_apart_with_the_boundary():
    shape = model_shape("tiny")
    for name, boundary in (("loihi1", "chip"), ("loihi2-estimate", "system"), ("vck190", "board")):
        p = auto_chips(shape, load_preset(name))
        r = simulate(compile_model(shape, p), p, assumed_activity(shape))
        assert r.energy_boundary == boundary and p.boundary_source
        assert r.static_j == r.energy_j["static"] == pytest.approx(p.static_w * r.chips * r.token_latency_s)
        assert r.static_j + r.dynamic_j == pytest.approx(r.energy_per_token_j, rel=1e-12)
        assert f"inside the {boundary} boundary" in r.text()


def test_binary_spikes_cost_synapse_rows_packets_and_reductions():
    """loihi2-estimate carries both formats: binary needs 14 synapse rows per input (memory, chips), one packet
    per bit spike, synaptic ops x bit spikes per event, and a reduction (two timesteps) per stage output."""
    shape = SCALES["125m"]
    graded = load_preset("loihi2-estimate")
    binary = graded.with_overrides({"spike_format": "binary"})
    assert chips_needed(shape, binary.hardware) > chips_needed(shape, graded.hardware)
    act = assumed_activity(shape)
    small = shape
    g, b = (auto_chips(small, p) for p in (graded, binary))
    mg, mb = compile_model(small, g), compile_model(small, b)
    compute = lambda m: np.isin(m.cores["stage"], [i for i, s in enumerate(m.stages) if s.kind not in ("embed", "sample")])  # noqa: E731
    assert mb.cores["weight_bytes"][compute(mb)].sum() == pytest.approx(
        BINARY_AXONS * mg.cores["weight_bytes"][compute(mg)].sum(), rel=1e-3)
    names_g, names_b = [s["name"] for s in mg.steps], [s["name"] for s in mb.steps]
    assert not any(n.endswith(".reduce") for n in names_g) and "L0.down.reduce" in names_b and "L0.down.send" in names_b
    red_g, red_b = mg.messages["kind"] == MSG_RED, mb.messages["kind"] == MSG_RED
    assert set(mb.messages["values"][red_b].tolist()) == {1, 2, 3}       # partials in, the scale back
    o_stages = [i for i, st in enumerate(mg.stages) if st.kind == "o"]   # graded: only g_norm's partial Σg²
    assert set(mg.messages["values"][red_g].tolist()) == {1} and np.isin(mg.cores["stage"][mg.messages["dst"][red_g]], o_stages).all()
    sg, sb = SystemModel(mg, g, assumed_activity(small)), SystemModel(mb, b, assumed_activity(small))
    bits = assumed_activity(small).bit_spikes_per_event
    dst_g = np.asarray([s.kind for s in mg.stages])[mg.cores["stage"][mg.messages["dst"]]]
    dst_b = np.asarray([s.kind for s in mb.stages])[mb.cores["stage"][mb.messages["dst"]]]
    for kind in ("ifg", "o", "gate", "down", "lm_head"):
        assert sb.synops[sb.syn & (dst_b == kind)].sum() == pytest.approx(
            bits[kind] * sg.synops[sg.syn & (dst_g == kind)].sum(), rel=1e-9)
        syn_b = sb.syn & (dst_b == kind)
        assert sb.packets[syn_b].sum() == pytest.approx(
            (sb.values[syn_b] * act_of(small, kind) * bits[kind]).sum(), rel=1e-9)
    no_bits = Activity(input_nonzero=act.input_nonzero, weight_density=0.5, value_density=1.0, source="t", measured=False)
    with pytest.raises(ValueError, match="binary spike format needs bit spikes"):
        SystemModel(mb, b, no_bits)


def act_of(shape, kind):
    return assumed_activity(shape).input_nonzero[kind]


def test_a_spike_format_the_preset_cannot_carry_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"^loihi1 cannot carry graded spikes \(its hardware carries binary\): use "
                                         r"--set spike_format=binary"):
        load_preset("loihi1").with_overrides({"spike_format": "graded"})
    with pytest.raises(ValueError, match="^spike_format must be one of graded, binary, got 'ternary'"):
        HWConfig(spike_format="ternary")
    assert main(["simulate", "tiny", "--preset", "vck190", "--set", "spike_format=binary"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("nmllm simulate: error: vck190 cannot carry binary spikes (its hardware carries graded): "
                   "use --set spike_format=graded or another preset")


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace("boundary:", "boundry:"), r"bad.yaml: missing section 'boundary'"),
    (lambda t: t.replace("boundary:          {value: chip,", "boundary:          {value: rack,"),
     r"bad.yaml: boundary must be one of chip, board, system"),
    (lambda t: t.replace("spike_formats:     {value: [binary],", "spike_formats:     {value: [binary, morse],"),
     r"bad.yaml: spike_formats must be a list of distinct formats from graded, binary"),
    (lambda t: t.replace("spike_format:      {value: binary,", "spike_format:      {value: graded,"),
     r"bad.yaml: loihi1 cannot carry graded spikes"),
    (lambda t: t.replace("energy_pj:\n", "energy_pj: 3\nunused:\n"), r"bad.yaml: energy_pj must be a mapping"),
    (lambda t: t + "  synaptic_opp: {value: 1.0, source: \"typo\"}\n", r"bad.yaml: unknown key power_w.synaptic_opp"),
    (lambda t: "[1, 2", r"bad.yaml: not valid YAML"),
])
def test_a_malformed_preset_is_refused_in_one_line(tmp_path, capsys, edit, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(edit(Path(load_preset("loihi1").path).read_text()))
    with pytest.raises(ValueError, match=message) as exc:
        load_preset(bad)
    assert "\n" not in str(exc.value)
    assert main(["simulate", "tiny", "--preset", str(bad)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("content, message", [
    ("{not json", r"act.json is not JSON"),
    ("[1, 2]", r"act.json: an activity record must be a JSON object"),
    (lambda d: {**d, "densty": 1}, r"act.json: activity record has an unknown key 'densty'"),
    (lambda d: {k: v for k, v in d.items() if k != "input_nonzero"}, r"act.json: activity record is missing 'input_nonzero'"),
    (lambda d: {**d, "input_nonzero": {**d["input_nonzero"], "o": 1.5}}, r"act.json: activity input_nonzero.o must be a fraction"),
    (lambda d: {**d, "weight_density": "high"}, r"act.json: activity weight_density must be a fraction"),
    (lambda d: {**d, "bit_spikes_per_event": {**d["bit_spikes_per_event"], "down": 9}},
     r"act.json: activity bit_spikes_per_event.down must be a number of bit spikes per input event in \[0, 7\]"),
    (lambda d: {**d, "stages": {"L0.ifg": {}}, "shape": {"layers": 2, "hidden": 1, "input_dim": 1, "intermediate": 1, "vocab": 1}},
     r"act.json: activity stages lacks the stage 'L0.down'"),
    (lambda d: {**d, "stages": {}}, r"act.json: activity stages and shape come together"),
])
def test_a_malformed_activity_file_is_refused_in_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "act.json"
    good = assumed_activity(model_shape("tiny")).to_dict()
    path.write_text(content if isinstance(content, str) else json.dumps(content(good)))
    assert main(["simulate", "tiny", "--activity", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("nmllm simulate: error: ")
    import re
    assert re.search(message, err), err
    assert main(["simulate", "tiny", "--activity", str(tmp_path / "none.json")]) == 2
    assert "no activity file" in capsys.readouterr().err


def test_loihi1_places_the_non_linear_work_on_its_x86_cores():
    """Loihi 1 has no programmable neurons: the element-wise and non-linear work goes to the chip's x86 cores,
    costed per element (work there and back), shown apart, and its time holds up the step's sources."""
    shape = model_shape("tiny")
    x86 = auto_chips(shape, load_preset("loihi1"))
    assert x86.hardware.nonlinear_unit == "x86" and x86.hardware.x86_cores_per_chip == 3
    act = assumed_activity(shape)
    mapping = compile_model(shape, x86)
    model = SystemModel(mapping, x86, act)
    elements = sum(float((s["work"]["state_updates"] + s["work"]["nonlinear_evals"]).sum()) for s in mapping.steps)
    e = model.energy_counts()
    per = x86.pj("offload_op") + 2 * x86.pj("offload_io")
    assert e["offload"] == pytest.approx(elements * per * 1e-12, rel=1e-12) and elements > 0
    free = x86.with_overrides({"offload_op_pj": 0.0, "offload_io_pj": 0.0, "offload_op_ns": 0.0, "offload_io_ns": 0.0})
    cheap = SystemModel(mapping, free, act)
    assert cheap.energy_counts()["neuron_state_updates"] == pytest.approx(e["neuron_state_updates"], rel=1e-12)
    ifg = [k for k, s in enumerate(mapping.steps) if s["name"] == "L0.ifg"][0]
    w = mapping.steps[ifg]["work"]
    chip_elements = float((w["state_updates"] + w["nonlinear_evals"]).sum())   # tiny: one chip
    slower = model.phase[ifg] - cheap.phase[ifg]
    assert slower == pytest.approx(np.full(len(w["state_updates"]), chip_elements * (
        x86.ns("offload_op") + 2 * x86.ns("offload_io")) / 3), rel=1e-12)
    r = model.run()
    assert r.offload_elements == elements and "in the x86 cores (3 per chip)" in r.text()
    with pytest.raises(ValueError, match="nonlinear_unit x86 needs x86_cores_per_chip >= 1"):
        x86.with_overrides({"x86_cores_per_chip": 0})


def test_a_mapping_beyond_the_message_model_is_refused_before_it_is_built():
    """13B on loihi1 (binary spikes) with one record per (source, destination) would need ~10^9 messages per
    token: one line, in seconds, not an OOM."""
    shape = SCALES["13b"]
    p = auto_chips(shape, load_preset("loihi1")).with_overrides({"fanout": "unicast"})
    with pytest.raises(ValueError, match=r"^model 13b on loihi1 would send about [\d,]+ messages per token .* more than "
                                         r"the 20,000,000 this message-level model holds") as exc:
        compile_model(shape, p)
    assert "\n" not in str(exc.value)


def test_every_static_power_states_its_range_and_the_report_carries_it(tmp_path):
    for name in ("loihi1", "loihi2-estimate", "crossbar", "vck190"):
        p = load_preset(name)
        lo, hi = p.static_range
        assert 0 <= lo <= p.static_w <= hi and "range" in p.costs["static_per_chip"].source.lower()
    shape = model_shape("tiny")
    p = auto_chips(shape, load_preset("loihi1"))
    r = simulate(compile_model(shape, p), p, assumed_activity(shape))
    assert r.static_range_j == pytest.approx((0.02 * r.chips * r.token_latency_s, 0.5 * r.chips * r.token_latency_s))
    assert "over the preset's stated static range" in r.text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(load_preset("loihi1").path).read_text().replace("range: [0.02, 0.5]", "range: [0.2, 0.5]"))
    with pytest.raises(ValueError, match=r"bad.yaml: power_w.static_per_chip needs range: \[low, high\] with 0 <= low "
                                         r"<= value <= high"):
        load_preset(bad)
