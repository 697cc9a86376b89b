"""System model: a hand-checked two-core mapping, conservation, the does-not-fit message, presets, CLI."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest

from models.program.events import LayerEvents
from nmllm.commands import system as system_cmds
from sim.system.activity import Activity, activity_from_layer_events, assumed_activity, gaussian_ternary_density
from sim.system.compiler import (CORE_FIELDS, MSG_SYN, PHASE_FIELDS, DoesNotFit, Mapping, Stage, auto_chips, chips_needed,
                          compile_model)
from sim.system.energy import ENERGY_KEYS, LATENCY_KEYS, load_preset, preset_names
from sim.system.hwconfig import HWConfig, parse_override
from sim.system.shapes import SCALES, ModelShape, model_shape
from sim.system.model import CATEGORIES, SystemModel, simulate

# Costs chosen so the hand computation is easy to follow (ns and pJ); every other cost is zero.
NS = {"neuron_update": 10.0, "axon_out": 5.0, "hop_ew": 4.0, "link_packet": 3.0, "input_event": 1.0,
      "synaptic_op": 2.0, "barrier_1tile": 100.0, "barrier_32tiles": 200.0}
PJ = {"neuron_update": 1.0, "synaptic_op": 10.0, "axon_out": 0.5, "hop_ew": 2.0, "input_event": 0.25, "neuron_idle": 0.1}
STATIC_W = 0.001
FLAT = Activity(input_nonzero={k: 1.0 for k in ("ifg", "o", "gate", "down", "lm_head")}, weight_density=0.5,
                value_density=1.0, source="test: every input an event, half the weights non-zero", measured=False)


def hand_preset(tiles_x: int):
    """loihi2-estimate (graded spikes) reshaped to a 1-row mesh of single-core tiles, every cost zero except the ones above."""
    over = {f"{k}_ns": 0.0 for k in LATENCY_KEYS} | {f"{k}_pj": 0.0 for k in ENERGY_KEYS}
    over |= {f"{k}_ns": v for k, v in NS.items()} | {f"{k}_pj": v for k, v in PJ.items()}
    over |= {"static_per_chip": STATIC_W, "tiles_x": tiles_x, "tiles_y": 1, "cores_per_tile": 1, "payload_bits": 32}
    return load_preset("loihi2-estimate").with_overrides(over)


def hand_mapping(preset, sources: list[int], dst: int) -> Mapping:
    """Cores 0..n-1 on one row; each source (a 'down' partition of 2 columns) sends 2 values to ``dst``
    (an 'lm_head' partition of 2 rows x 3 columns) in one step."""
    n = preset.hardware.tiles_x
    stages = [Stage("a", "down", 0, 4, 2 * len(sources), ["t.a"]), Stage("b", "lm_head", -1, 2, 3, ["t.b"])]
    cores = {f: np.zeros(n, dtype=np.int64) for f in CORE_FIELDS}
    cores["x"] = np.arange(n)
    for c in range(n):
        is_dst = c == dst
        cores["stage"][c] = 1 if is_dst else 0
        cores["row1"][c] = 2 if is_dst else 4
        cores["col0"][c] = 0 if is_dst else 2 * c
        cores["col1"][c] = 3 if is_dst else 2 * c + 2
        cores["neurons"][c] = 3 if is_dst else 4
    stages[0].cores = [c for c in range(n) if c != dst]
    stages[1].cores = [dst]
    steps = [{"name": "a", "stage": 0, "phase": "neuron", "sources": np.asarray(sources),
              "work": {f: (np.full(len(sources), 2) if f == "neuron_updates" else np.zeros(len(sources), dtype=np.int64))
                       for f in PHASE_FIELDS}}]
    k = len(sources)
    messages = {"step": np.zeros(k, dtype=np.int64), "src": np.asarray(sources), "dst": np.full(k, dst),
                "values": np.full(k, 2), "kind": np.full(k, MSG_SYN), "ndst": np.ones(k, dtype=np.int64)}
    return Mapping(model={"name": "hand"}, preset=preset.name, hardware=preset.hardware, options={}, stages=stages,
                   cores=cores, steps=steps, messages=messages, overrides=dict(preset.overrides))


def test_two_cores_one_link_by_hand():
    preset = hand_preset(tiles_x=2)
    r = simulate(hand_mapping(preset, sources=[0], dst=1), preset, FLAT, prompt_tokens=3)
    # neuron phase 2 x 10 = 20; first packet out at 25, port busy 2 x 5 until 30; head crosses the link
    # (free) 25 -> 29; tail follows at the slower of axon_out (5) and the link (3): arrival 29 + 1 x 5 = 34.
    # integrate: 2 values x 1 + 2 events x 3 columns x 0.5 density = 3 synops x 2 = 8 -> 42.
    # barrier over 2 tiles: 100 + (200 - 100) x log2(2) / 5 = 120 -> step (= token) 162 ns.
    assert r.token_latency_s == pytest.approx(162e-9)
    assert r.analytic_token_latency_s == pytest.approx((20 + 10 + 4 + 8 + 120) * 1e-9)
    assert r.ttft_s == pytest.approx((3 - 1 + 1) * 162e-9)
    e = r.energy_j
    assert e["neuron_state_updates"] == pytest.approx((2 * 1.0 + 3 * 0.1) * 1e-12)   # 2 updates + 3 idle neurons
    assert e["synaptic_ops"] == pytest.approx(3 * 10.0 * 1e-12)
    assert e["noc"] == pytest.approx((2 * 0.5 + 2 * 1 * 2.0 + 2 * 0.25) * 1e-12)     # axon, 1 hop, 2 inputs
    assert e["static"] == pytest.approx(STATIC_W * 162e-9)
    assert e["total"] == pytest.approx((2.3 + 30 + 5.5) * 1e-12 + STATIC_W * 162e-9)
    assert r.messages_sent == r.messages_received == 1


def test_link_contention_by_hand():
    preset = hand_preset(tiles_x=3)
    r = simulate(hand_mapping(preset, sources=[0, 1], dst=2), preset, FLAT)
    # core 0: head 25, link 0->1 at 25 (head 29), link 1->2 at 29, busy 2 x 3 until 35, head 33; arrival 38.
    # core 1: head 25 waits for link 1->2 until 35, head 39, arrival 44 (34 without the contention).
    # core 2 integrates 38 -> 46, then 46 -> 54; barrier over 3 tiles 100 + 100 log2(3)/5.
    assert r.token_latency_s == pytest.approx((54 + 100 + 100 * math.log2(3) / 5) * 1e-9)
    assert r.messages_sent == r.messages_received == 2


@pytest.mark.parametrize("name,preset,over", [
    ("tiny", "loihi1", {}), ("bundled", "loihi2-estimate", {}), ("tiny", "vck190", {}),
    ("tiny", "crossbar", {"xbar_rows": 16, "xbar_tiles_per_core": 1}),   # forces row blocks + partial sums
])
def test_conservation(name, preset, over):
    shape = model_shape(name)
    p = load_preset(preset).with_overrides(over)
    p = p.with_overrides({"chips": chips_needed(shape, p.hardware)})
    m = compile_model(shape, p)
    if over:
        assert any(s["phase"] == "psum" for s in m.steps)
    model = SystemModel(m, p, assumed_activity(shape))
    r = model.run(prompt_tokens=10)
    assert r.messages_sent == r.messages_received == len(m.messages["src"])
    assert sum(r.energy_j[c] for c in CATEGORIES) == pytest.approx(r.energy_j["total"], rel=1e-12)
    assert all(r.energy_j[c] >= 0 for c in CATEGORIES)
    assert r.energy_per_token_j == r.energy_j["total"] and r.power_w > 0 and r.tokens_per_s > 0
    # every ternary weight and every embedding entry is placed exactly once
    held = {}
    for core in range(m.n_cores):
        for w in m.weights_of(core):
            n = (w["in"][1] - w["in"][0]) * (w["out"][1] - w["out"][0])
            held[w["tensor"]] = held.get(w["tensor"], 0) + n
    for proj in shape.projections():
        assert held[proj.key] == proj.count, proj.key
    # cores stay within their memory and neurons
    assert m.cores["weight_bytes"].max() <= p.hardware.synapse_mem_bytes
    assert m.cores["neurons"].max() <= p.hardware.neurons_per_core


def test_does_not_fit_says_how_many_chips():
    shape = SCALES["370m"]
    p = load_preset("loihi2-estimate").with_overrides({"chips": 2})
    with pytest.raises(DoesNotFit, match=r"^model 370m needs 10 loihi2-estimate chips .* has 2: pass --chips 10") as exc:
        compile_model(shape, p)
    assert exc.value.chips_needed == 10 and "\n" not in str(exc.value)


def test_presets_load_with_sources():
    names = preset_names()
    assert {"loihi1", "loihi2-estimate", "crossbar", "vck190"} <= set(names)
    for n in names:
        p = load_preset(n)
        assert len(p.costs) == len(ENERGY_KEYS) + len(LATENCY_KEYS) + 1
        assert all(c.source for c in p.costs.values()) and all(p.hardware_sources.values())
    l2 = load_preset("loihi2-estimate")
    assert l2.estimate and "ESTIMATE" in l2.label
    assert all("estimate" in c.source.lower() for c in l2.costs.values() if c.value > 0)
    d1 = load_preset("loihi1")
    assert d1.pj("synaptic_op") == 23.6 and d1.ns("synaptic_op") == 3.5 and "Davies 2018" in d1.costs["synaptic_op_pj"].source


def test_bad_preset_and_hw_fields_are_one_line(tmp_path):
    from pathlib import Path
    text = Path(load_preset("loihi1").path).read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace('source: "Davies 2018 Table 2: synaptic spike op 23.6 pJ"', 'source: ""'))
    with pytest.raises(ValueError, match=r"bad.yaml: energy_pj.synaptic_op has no source"):
        load_preset(bad)
    with pytest.raises(FileNotFoundError, match="no preset 'loihi9'"):
        load_preset("loihi9")
    with pytest.raises(ValueError, match=r"^chips must be a positive integer, got 0"):
        HWConfig(chips=0)
    with pytest.raises(ValueError, match="weight_bits must be at least 2"):
        HWConfig(weight_bits=1)
    with pytest.raises(ValueError, match="key=value"):
        parse_override("chips")
    assert parse_override("chip_grid=4x2") == ("chip_grid", (4, 2))


def test_mapping_json_round_trip(tmp_path):
    shape = model_shape("tiny")
    p = load_preset("loihi1")
    m = compile_model(shape, p)
    path = m.save(tmp_path / "m.json.gz")
    back = Mapping.load(path)
    for f in CORE_FIELDS:
        assert np.array_equal(back.cores[f], m.cores[f])
    for f in m.messages:
        assert np.array_equal(back.messages[f], m.messages[f])
    doc = m.to_dict()
    assert doc["weights"][0] == {"core": 0, "tensor": "model.embeddings.weight", "in": [0, 512], "out": [0, 32]}
    a = simulate(m, p, assumed_activity(shape))
    b = simulate(back, p, assumed_activity(shape))
    assert a.token_latency_s == b.token_latency_s and a.energy_j == b.energy_j


def test_snake_placement_beats_random():
    shape, p = SCALES["125m"], load_preset("loihi2-estimate")
    p = p.with_overrides({"chips": chips_needed(shape, p.hardware)})
    snake = SystemModel(compile_model(shape, p, placement="snake"), p, assumed_activity(shape))
    rand = SystemModel(compile_model(shape, p, placement="random"), p, assumed_activity(shape))
    mean = lambda s: float((s.packets * (s.hops_ew + s.hops_ns + s.crossings)).sum() / s.packets.sum())
    assert mean(snake) < mean(rand)


def test_activity():
    assert gaussian_ternary_density() == pytest.approx(1 - 0.3101, abs=1e-4)
    a = assumed_activity(SCALES["370m"])
    assert not a.measured and "ASSUMED" in a.source and 0.8 < a.input_nonzero["down"] < a.input_nonzero["ifg"] <= 1
    shape = model_shape("tiny")
    d, e, m, V = shape.hidden, shape.input_dim, shape.intermediate, shape.vocab
    dense = 3 * d + e + d + m
    rows = 3 * d * e + e * d + d * 2 * m + m * d
    s_b, s_h = int(rows / 2 * 0.6), int(d * V * 0.6)
    block = LayerEvents(input_events=dense // 2, synaptic_ops=s_b, zero_weight_slots=rows // 2 - s_b, dense_macs=rows)
    head = LayerEvents(input_events=d, synaptic_ops=s_h, zero_weight_slots=d * V - s_h, dense_macs=d * V)
    got = activity_from_layer_events([block] * shape.layers + [head], shape, tokens=1)
    assert got.measured and got.input_nonzero["ifg"] == pytest.approx(0.5) and got.input_nonzero["lm_head"] == 1.0
    assert got.weight_density == pytest.approx(0.6, rel=1e-3)
    with pytest.raises(ValueError, match="expected 3 LayerEvents"):
        activity_from_layer_events([block], shape, tokens=1)
    assert Activity.from_dict(a.to_dict()) == a


def _cli(argv):
    parser = argparse.ArgumentParser(prog="nmllm")
    system_cmds.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_compile_and_simulate(tmp_path, capsys):
    out = tmp_path / "tiny.json"
    assert _cli(["compile", "tiny", "--preset", "loihi1", "--out", str(out)]) == 0
    assert _cli(["simulate", str(out), "--json", str(tmp_path / "r.json"), "--set", "static_per_chip=0"]) == 0
    text = capsys.readouterr().out
    assert "compiled tiny" in text and "tokens/s" in text and "time to first token for a 500-token prompt" in text
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["energy_j"]["static"] == 0 and rep["messages_sent"] == rep["messages_received"]
    with pytest.raises(DoesNotFit, match="pass --chips 77"):   # binary spikes: 14 synapse rows per input
        _cli(["compile", "370m", "--preset", "loihi1", "--chips", "1", "--out", str(out)])
    with pytest.raises(ValueError, match="change the hardware the mapping"):
        _cli(["simulate", str(out), "--set", "weight_bits=8"])


def test_baselines_and_scaling_rows(tmp_path):
    from sim.system.baselines import gpu_roofline, measure_cpu_decode
    from experiments.scaling import run_point, table, write_outputs

    g = gpu_roofline(SCALES["370m"], "jetson-orin-nano")
    assert g["tokens_per_s"] == pytest.approx(68e9 / (SCALES["370m"].params * 2))
    assert g["j_per_token_max"] == pytest.approx(15.0 / g["tokens_per_s"]) and "ANALYTIC" in g["label"]
    assert not gpu_roofline(SCALES["13b"], "jetson-orin-nano")["fits"]
    cpu = measure_cpu_decode(model_shape("tiny"), tokens=2, warmup=1)
    assert cpu.tokens_per_s > 0 and ("RAPL" in cpu.energy_source or "ESTIMATE" in cpu.energy_source)
    row = run_point(model_shape("tiny"), "loihi1")
    assert row["chips"] == 1 and row["j_per_token"] == pytest.approx(sum(
        v for k, v in row["energy_j"].items() if k != "total"))
    assert "| loihi1 | tiny |" in table([row])
    paths = write_outputs([row], [cpu.to_dict() | {"skipped": None}], [], tmp_path, plots=True)
    assert all(p.exists() for p in paths) and (tmp_path / "scaling_energy.png").stat().st_size > 1000


def test_measured_activity_from_a_checkpoint(tmp_path):
    from models.mmfree.checkpoint import save_checkpoint
    from models.mmfree.config import preset
    from models.mmfree.model import MMFreeForCausalLM
    from models.text.tokenizer import save_tokenizer, train_tokenizer_from_iterator
    from sim.system.activity import measure_activity

    lines = ["the quick brown fox jumps over the lazy dog, again and again."] * 50
    save_tokenizer(train_tokenizer_from_iterator(lines, 512), tmp_path / "tokenizer.json")
    (tmp_path / "text.txt").write_text(" ".join(lines))
    import torch
    torch.manual_seed(0)
    save_checkpoint(MMFreeForCausalLM(preset("tiny")), tmp_path / "ckpt")
    act = measure_activity(tmp_path / "ckpt", tmp_path / "text.txt", tmp_path / "tokenizer.json", tokens=16)
    assert act.measured and "MEASURED" in act.source and 0 < act.input_nonzero["ifg"] <= 1
    assert all(0.4 < act.weight_of(k) < 0.9 for k in act.input_nonzero) and act.stages["L0.ifg"]["bit_spikes_per_event"] > 0
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        measure_activity(tmp_path / "nope", tmp_path / "text.txt", tmp_path / "tokenizer.json")
    out = tmp_path / "act" / "activity.json"   # `nmllm activity` writes the same densities
    assert _cli(["activity", "--checkpoint", str(tmp_path / "ckpt"), "--text", str(tmp_path / "text.txt"),
                 "--tokenizer", str(tmp_path / "tokenizer.json"), "--tokens", "16", "--out", str(out)]) == 0
    assert Activity.from_dict(json.loads(out.read_text())) == act   # its provenance entry is ignored


def test_compile_writes_rtl_memory_images_of_a_checkpoint(tmp_path):
    """`nmllm compile CHECKPOINT --images DIR` writes, per layer, the s_axis_load frames of the RTL top."""
    import json

    import torch

    from hw.neurocore_top import layer_load_frames
    from models.mmfree.checkpoint import save_checkpoint
    from models.mmfree.config import preset
    from models.program.integer_program import IntegerProgram
    from models.mmfree.model import MMFreeForCausalLM
    from nmllm.cli import main

    torch.manual_seed(0)
    model = MMFreeForCausalLM(preset("tiny"))
    save_checkpoint(model, tmp_path / "ckpt")
    assert main(["compile", str(tmp_path / "ckpt"), "--preset", "loihi1", "--chips", "auto", "--out",
                 str(tmp_path / "m.json"), "--images", str(tmp_path / "img"), "--lanes", "4"]) == 0
    program = IntegerProgram.from_model(model)
    for li, layer in enumerate(program.layers):
        image = json.loads((tmp_path / "img" / f"layer{li:02d}.load.json").read_text())
        assert image["lanes"] == 4 and image["frames"] == layer_load_frames(layer, 4)
    assert main(["compile", "370m", "--chips", "auto", "--out", str(tmp_path / "b.json"),
                 "--images", str(tmp_path / "img2")]) == 2  # a shape has no weights: one clear error


def test_spike_attention_shape_maps_its_kv_state_and_costs_its_spike_gated_adds():
    from dataclasses import replace

    from models.mmfree.config import preset as model_preset
    cfg = model_preset("tiny", token_mixer="spike_attention", num_heads=2, use_lower_bound=False)
    shape = ModelShape.from_config("tiny-spike", cfg, "test", False)
    assert shape.token_mixer == "spike_attention" and shape.head_dim == 16
    assert any(p.key.endswith("attn.q_proj.weight") for p in shape.projections())
    p = auto_chips(shape, load_preset("loihi2-estimate"))
    mapping = compile_model(shape, p)
    attn_steps = [s for s in mapping.steps if s["name"].endswith(".attn")]
    assert len(attn_steps) == cfg.num_hidden_layers
    # every state cell of every head is held by exactly one core
    assert all(int(s["work"]["attention_cells"].sum()) == 2 * 16 * 16 for s in attn_steps)
    quiet = assumed_activity(shape)
    busy = replace(quiet, attention_adds_per_cell=4 * quiet.attention_adds_per_cell)
    e_quiet = SystemModel(mapping, p, quiet).energy_counts()["synaptic_ops"]
    e_busy = SystemModel(mapping, p, busy).energy_counts()["synaptic_ops"]
    extra = 3 * quiet.attention_adds_per_cell * 2 * 2 * 16 * 16 * p.pj("synaptic_op") * 1e-12
    assert e_busy - e_quiet == pytest.approx(extra, rel=1e-9)
