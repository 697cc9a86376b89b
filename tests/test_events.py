"""The event vocabulary (models/program/events.py): its definitions as properties, and the golden model's
counts equal to the vocabulary applied to the integer view's projection inputs."""

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from models.program import events as vocab
from models.program.events import EVENT_FIELDS, LayerEvents

BUNDLED = Path(__file__).resolve().parent.parent / "models" / "bundled"


def literal_bit_spikes(q: int) -> int:
    """Sign-magnitude: the one-bits of ``|q|`` (the sign picks the neuron of the pair)."""
    return bin(abs(q)).count("1")


@given(st.integers(-(1 << 62), 1 << 62))
def test_a_value_costs_the_one_bits_of_its_magnitude(q):
    assert int(vocab.bit_spikes(np.int64(q))) == literal_bit_spikes(q)
    assert int(vocab.bit_spikes(-q)) == int(vocab.bit_spikes(q))


@given(st.sampled_from([np.int8, np.int16, np.int32, np.int64]).flatmap(
    lambda dt: hnp.arrays(dt, st.integers(0, 50), elements=st.integers(-127, 127))))
def test_bit_spikes_of_arrays_of_every_width(q):
    got = vocab.bit_spikes(q)
    assert got.dtype == np.int64 and got.tolist() == [literal_bit_spikes(int(v)) for v in q]


@given(st.integers(0, (1 << 63) - 1))
def test_the_golden_models_numba_count_is_the_vocabulary(v):
    from models.program.golden import _popcount

    assert _popcount(np.int64(v)) == int(vocab.bit_spikes(np.int64(v))) == bin(v).count("1")


def test_minus_one_costs_one_spike_not_eight():
    q = np.array([-1, -128, 127, 0, 1, -127, 64], dtype=np.int8)
    assert vocab.bit_spikes(q).tolist() == [1, 1, 7, 0, 1, 7, 1]   # two's complement would give -1 -> 8, -128 -> 1
    with pytest.raises(TypeError, match="integer values"):
        vocab.bit_spikes(np.array([0.5]))


projection = st.tuples(st.integers(1, 12), st.integers(1, 20), st.integers(1, 5)).flatmap(
    lambda s: st.tuples(hnp.arrays(np.int64, (s[2], s[1]), elements=st.integers(-128, 127) | st.just(0)),
                        hnp.arrays(np.int8, (s[0], s[1]), elements=st.sampled_from([-1, 0, 1]))))


@given(projection)
def test_every_input_event_reaches_fan_out_weights_nonzero_or_zero(case):
    x, w = case
    fan_out = w.shape[0]
    ops, slots = vocab.synaptic_ops(x, w), vocab.zero_weight_slots(x, w)
    assert vocab.input_events(x) * fan_out == ops + slots
    assert ops == sum(int(w[j, k] != 0) for row in x for k in range(len(row)) if row[k] for j in range(fan_out))
    assert slots == sum(int(w[j, k] == 0) for row in x for k in range(len(row)) if row[k] for j in range(fan_out))
    assert vocab.events_per_input(x).sum() == vocab.input_events(x)
    ev = LayerEvents(input_events=vocab.input_events(x), synaptic_ops=ops, zero_weight_slots=slots,
                     dense_macs=x.shape[0] * w.size)
    assert ev.synaptic_ops == pytest.approx(ev.dense_macs * vocab.activation_density(ev) * vocab.weight_density(ev))
    assert vocab.activation_density(ev) == pytest.approx(vocab.input_events(x) / x.size)


records = st.builds(LayerEvents, **{f.name: st.integers(0, 1 << 40) for f in fields(LayerEvents)})


@given(records, records, records)
def test_layer_events_add_field_by_field(a, b, c):
    s = a + b
    assert all(getattr(s, f) == getattr(a, f) + getattr(b, f) for f in EVENT_FIELDS)
    assert (a + b) + c == a + (b + c) and a + LayerEvents() == a
    assert {"zero_weight_slots", "bit_spikes", "spikes", "input_events"} <= set(EVENT_FIELDS)
    assert s.scaled(0.5) == {f: getattr(s, f) * 0.5 for f in EVENT_FIELDS}


def test_densities_of_an_empty_record_are_zero():
    assert vocab.activation_density(LayerEvents()) == 0.0 and vocab.weight_density(LayerEvents()) == 0.0


def test_activity_refuses_records_without_zero_weight_slots():
    """A record with input events but no synaptic ops + slots is not in the vocabulary (counts from before it)."""
    from sim.system.activity import activity_from_layer_events
    from sim.system.shapes import model_shape

    shape = model_shape("tiny")
    old = LayerEvents(input_events=10, synaptic_ops=0, dense_macs=100)
    with pytest.raises(ValueError, match=r"LayerEvents 0: 10 input events but 0 synaptic ops \+ zero-weight slots"):
        activity_from_layer_events([old] * (shape.layers + 1), shape, tokens=1)
    over = LayerEvents(input_events=10, synaptic_ops=80, zero_weight_slots=30, dense_macs=100)
    with pytest.raises(ValueError, match="pass the golden model's counts"):
        activity_from_layer_events([over] * (shape.layers + 1), shape, tokens=1)


def _vocabulary_counts(program, ids):
    """Per layer (then lm_head): the vocabulary's counts of the integer view's projection inputs."""
    from models.program.integer_view import IntegerView

    n = len(program.layers)
    counts = [LayerEvents() for _ in range(n + 1)]

    def record(name, codes, x):
        i = n if name == "lm_head" else int(name.split(".")[1])
        counts[i] = counts[i] + LayerEvents(
            input_events=vocab.input_events(x), synaptic_ops=vocab.synaptic_ops(x, codes),
            zero_weight_slots=vocab.zero_weight_slots(x, codes), bit_spikes=int(vocab.bit_spikes(x).sum()),
            dense_macs=x.shape[0] * codes.size)
        return x.astype(np.int64) @ codes.T.astype(np.int64)

    IntegerView(program, accumulate=record).forward(torch.tensor([ids]))
    return counts


def _assert_golden_counts_are_the_vocabulary(program, ids):
    from models.program.golden import GoldenModel

    _, golden = GoldenModel(program).run(ids)
    want = _vocabulary_counts(program, ids)
    for got, ref in zip(golden, want):
        for f in ("input_events", "synaptic_ops", "zero_weight_slots", "bit_spikes", "dense_macs"):
            assert getattr(got, f) == getattr(ref, f), f
    total = sum(golden, LayerEvents())
    assert 0 < total.synaptic_ops and 0 < total.zero_weight_slots and total.input_events < total.bit_spikes
    return golden


def test_golden_counts_are_the_vocabulary_on_the_bundled_model():
    from models.mmfree.checkpoint import load_checkpoint
    from models.program.integer_program import IntegerProgram
    from sim.system.activity import activity_from_layer_events
    from sim.system.shapes import ModelShape

    model = load_checkpoint(BUNDLED)
    ids = [5, 42, 1000, 7, 3071, 12, 256, 99]
    golden = _assert_golden_counts_are_the_vocabulary(IntegerProgram.from_model(model), ids)
    # the system model's densities are the vocabulary's, measured: events x fan-out and x weight density
    # give back the measured zero-weight slots and synaptic ops
    act = activity_from_layer_events(golden, ModelShape.from_config("bundled", model.config, "test", False), len(ids))
    blocks, head = sum(golden[:-1], LayerEvents()), golden[-1]
    total = blocks + head
    assert act.weight_density == total.synaptic_ops / (total.synaptic_ops + total.zero_weight_slots)
    assert act.input_nonzero["ifg"] == act.input_nonzero["down"] == vocab.activation_density(blocks)
    assert act.input_nonzero["lm_head"] == head.input_events / (len(ids) * model.config.hidden_size)
    reached = sum(act.input_nonzero[k] * ev.dense_macs for k, ev in (("ifg", blocks), ("lm_head", head)))
    assert reached == pytest.approx(total.synaptic_ops + total.zero_weight_slots, rel=1e-12)
    assert reached * act.weight_density == pytest.approx(total.synaptic_ops, rel=1e-12)


def test_golden_counts_are_the_vocabulary_with_spike_attention():
    from models.mmfree.config import preset
    from models.mmfree.model import MMFreeForCausalLM
    from models.program.integer_program import IntegerProgram

    torch.manual_seed(0)
    model = MMFreeForCausalLM(preset("tiny", token_mixer="spike_attention", num_heads=2, use_lower_bound=False)).eval()
    _assert_golden_counts_are_the_vocabulary(IntegerProgram.from_model(model), list(range(3, 40, 3)))
