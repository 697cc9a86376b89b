"""The converted transformer on the presets (sim/system/transformer.py): measured events in, mapping and cost out."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from models.transformer.convert import convert
from models.transformer.loader import load_hf_model
from sim.system.energy import load_preset
from sim.system.transformer import (NotMappedError, TransformerShape, check_pair, kv_cache, map_transformer,
                                    summary_cost, token_cost)
from tests.test_spike_convert import save_tiny_llama


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """The tiny Llama converted (bit-plane T=8, int8 weights) and its per-site events on 20 tokens."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    model = load_hf_model(save_tiny_llama(tmp_path_factory.mktemp("tiny"), hidden=48, layers=2, heads=4, kv_heads=2))
    g = torch.Generator().manual_seed(1)
    sm = convert(model, calib_batches=torch.randint(0, 384, (4, 24), generator=g), coding="bitplane", timesteps=8)
    sm.reset_events()
    sm.logits_fn()(torch.randint(0, 384, (1, 20), generator=g))
    torch.set_num_threads(n)
    return TransformerShape.from_config(model.config), sm.events_per_token()


def test_shape_from_config(measured):
    shape, _ = measured
    assert (shape.hidden, shape.layers, shape.heads, shape.kv_heads, shape.head_dim, shape.context) == (48, 2, 4, 2, 12, 128)
    assert shape.linear("attn_in") == (48, (4 + 2 * 2) * 12) and shape.kv_values_per_token == 2 * 2 * 2 * 12


@pytest.mark.parametrize("name", ["loihi1", "loihi2-estimate", "crossbar"])
def test_counts_are_the_converters_events(measured, name):
    """Every stage is costed on the converter's measured events, unchanged, and sums to its per-token total."""
    shape, ev = measured
    preset = load_preset(name)
    fmt = check_pair("bitplane", "tensor", preset)
    m = map_transformer(shape, preset, "int8", fmt, 64)
    cost = token_cost(m, preset, ev["sites"], 64)
    assert set(cost["counts"]) == set(ev["sites"])
    for site, c in cost["counts"].items():
        for k, v in c.items():
            assert v == ev["sites"][site][k]
    for k in ("synaptic_ops", "input_events"):
        assert sum(c[k] for c in cost["counts"].values()) == pytest.approx(ev["total"][k])
    if name != "crossbar":     # digital synapses: synaptic energy = measured ops x the preset's op energy
        assert cost["dynamic_j"]["synaptic_ops"] == pytest.approx(ev["total"]["synaptic_ops"] * preset.pj("synaptic_op") * 1e-12)
    else:
        assert cost["dynamic_j"]["synaptic_ops"] == 0 and cost["dynamic_j"]["crossbar"] > 0


def test_binary_spikes_need_more_memory_and_kv_grows_with_context(measured):
    shape, _ = measured
    l1, l2 = load_preset("loihi1"), load_preset("loihi2-estimate")
    b = map_transformer(shape, l1, "int8", "binary", 512)
    g = map_transformer(shape, l2, "int8", "graded", 512)
    assert b["cores"] > g["cores"]
    small, big = kv_cache(shape, l2, 512, "graded"), kv_cache(shape, l2, 2048, "graded")
    assert big["bytes"] == 4 * small["bytes"] == 4 * shape.kv_values_per_token * 512
    assert map_transformer(shape, l2, "int8", "graded", 2048)["cores"] > g["cores"]


def test_summary_cost_adds_up(measured):
    shape, ev = measured
    preset = load_preset("loihi2-estimate")
    m = map_transformer(shape, preset, "int8", "graded", 40)
    s = summary_cost(m, preset, ev["sites"], 30, 10)
    j = s["j_per_summary"]
    assert j["total"] == pytest.approx(j["prefill_dynamic"] + j["decode_dynamic"] + j["static"])
    assert j["static_range"][0] <= j["static"] <= j["static_range"][1]
    assert sum(s["decode_time_by_step_s"].values()) == pytest.approx(1 / s["tokens_per_s"])
    assert s["ttft_s"] > 0 and s["tokens_per_s"] > 0 and j["static"] == pytest.approx(m["chips"] * preset.static_w * s["seconds"])
    longer = summary_cost(map_transformer(shape, preset, "int8", "graded", 100), preset, ev["sites"], 90, 10)
    assert longer["j_per_token"]["dynamic"] > s["j_per_token"]["dynamic"]       # attention over a longer context


def test_each_target_runs_in_its_own_format_where_it_can():
    """Loihi 2 carries a binary spike train as graded packets (it was mapped binary: 14 x the synapse rows)."""
    assert [check_pair("bitplane", "tensor", load_preset(n)) for n in ("loihi1", "loihi2-estimate", "crossbar")] == \
        ["binary", "graded", "graded"]
    assert check_pair("bitplane", "channel", load_preset("loihi2-estimate")) == "graded"


def test_refusals(measured):
    shape, ev = measured
    with pytest.raises(NotMappedError, match="loihi1 cannot carry per-channel thresholds"):
        check_pair("bitplane", "channel", load_preset("loihi1"))
    with pytest.raises(NotMappedError, match="crossbar cannot carry dense activations"):
        check_pair("none", "tensor", dataclasses.replace(load_preset("crossbar"), spike_formats=("binary",)))
    with pytest.raises(NotMappedError, match=r"vck190: not mapped \(int8 weights\)"):
        map_transformer(shape, load_preset("vck190"), "int8", "graded", 64)
    with pytest.raises(NotMappedError, match="not GPT2LMHeadModel"):
        from transformers import GPT2Config
        TransformerShape.from_config(GPT2Config(architectures=["GPT2LMHeadModel"]))
    m = map_transformer(shape, load_preset("loihi1"), "int8", "binary", 64)
    with pytest.raises(NotMappedError, match="no measured events for site 0.attn_in"):
        token_cost(m, load_preset("loihi1"), {}, 64)


def test_a_gguf_config_without_architectures_maps():
    """SmolLM2's GGUF config names only model_type 'llama' (it was refused as 'LlamaConfig')."""
    from transformers import LlamaConfig

    cfg = LlamaConfig(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                      num_key_value_heads=3, vocab_size=49152, max_position_embeddings=8192)
    assert not cfg.architectures
    shape = TransformerShape.from_config(cfg)
    assert shape.kv_values_per_token == 11520 and shape.head_dim == 64
