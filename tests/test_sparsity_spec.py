"""Input sparsity of the BitLinear codes (threshold, top-k per projection kind): the spec's rule against its
definition, NumPy = torch = the golden model's compiled kernel, the torch view = the golden model on random
tiny models with settings, settings travel with checkpoints and programs, and every knob outside the spec is
refused in one line."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from models.mmfree.config import preset
from models.program import numformat as nf
from models.program.golden import GoldenModel, _sparsify
from models.program.integer_program import IntegerProgram, ProgramError
from models.program.integer_view import IntegerView

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_golden import random_model  # noqa: E402

BUNDLED = Path(__file__).resolve().parent.parent / "models" / "bundled"
SETTINGS = {"ifg": {"threshold": 20}, "o": {"topk": 3}, "gate": {"topk": 5},
            "down": {"threshold": 10, "topk": 7}, "lm_head": {"threshold": 50}}
codes_st = hnp.arrays(np.int64, hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=40),
                      elements=st.integers(-127, 127) | st.sampled_from([0, 3, -3, 127, -127]))


def reference(row: np.ndarray, threshold: int, topk: int) -> np.ndarray:
    """The definition, one token: drop |c| < threshold, keep the topk largest |c| (lower index first)."""
    kept = [j for j in range(len(row)) if abs(row[j]) >= threshold]
    if topk:
        kept = sorted(kept, key=lambda j: (-abs(row[j]), j))[:topk]
    out = np.zeros_like(row)
    out[kept] = row[kept]
    return out


@settings(max_examples=200)
@given(codes_st, st.integers(0, 127), st.integers(0, 45))
def test_numpy_torch_and_golden_apply_the_definition(codes, threshold, topk):
    n = codes.shape[-1]
    topk = min(topk, n)
    want = np.stack([reference(r, threshold, topk) for r in codes.reshape(-1, n)]).reshape(codes.shape)
    assert np.array_equal(nf.sparsify_codes(codes, threshold, topk), want)
    assert np.array_equal(nf.sparsify_codes(torch.from_numpy(codes), threshold, topk).numpy(), want)
    hist = np.zeros(129, dtype=np.int64)
    for row, w in zip(codes.reshape(-1, n), want.reshape(-1, n)):
        x = row.copy()
        _sparsify(x, threshold, topk, hist)
        assert np.array_equal(x, w)


@settings(max_examples=100)
@given(codes_st, st.integers(0, 127), st.integers(1, 45))
def test_threshold_and_topk_commute_and_keep_at_most_k(codes, threshold, topk):
    n = codes.shape[-1]
    topk = min(topk, n)
    both = nf.sparsify_codes(codes, threshold, topk)
    assert np.array_equal(both, nf.sparsify_codes(nf.sparsify_codes(codes, 0, topk), threshold, 0))
    nnz = np.count_nonzero(nf.sparsify_codes(codes, threshold, 0).reshape(-1, n), axis=1)
    assert np.array_equal(np.count_nonzero(both.reshape(-1, n), axis=1), np.minimum(nnz, topk))


def test_topk_ties_go_to_the_lower_index():
    x = np.array([[5, -9, 9, 2, -9, 9]])
    assert nf.sparsify_codes(x, 0, 3).tolist() == [[0, -9, 9, 0, -9, 0]]
    assert nf.sparsify_codes(torch.tensor(x), 0, 3).tolist() == [[0, -9, 9, 0, -9, 0]]


@pytest.mark.parametrize("seed,overrides,knobs", [
    (0, {}, SETTINGS),
    (1, {"hidden_size": 48, "num_hidden_layers": 3}, {"ifg": {"topk": 1}, "down": {"threshold": 127}}),
    (2, {"token_mixer": "spike_attention", "num_heads": 2, "use_lower_bound": False}, SETTINGS),
])
def test_golden_equals_the_torch_view_with_input_sparsity(seed, overrides, knobs):
    program = IntegerProgram.from_model(random_model(seed, **overrides)).with_input_sparsity(knobs)
    ids = torch.randint(0, program.vocab_size, (2, 12), generator=torch.Generator().manual_seed(seed))
    logits, _ = IntegerView(program).forward(ids)
    golden = GoldenModel(program)
    assert np.array_equal(golden.run_batch(ids.tolist(), threads=1), logits.numpy())
    dense = GoldenModel(IntegerProgram.from_model(random_model(seed, **overrides)))
    assert sum(e.synaptic_ops for e in golden.run(ids[0].tolist())[1]) < \
        sum(e.synaptic_ops for e in dense.run(ids[0].tolist())[1])


def test_topk_bounds_the_input_events_of_each_projection():
    program = IntegerProgram.from_model(random_model(3)).with_input_sparsity(
        {k: {"topk": 4} for k in nf.SPARSITY_KINDS})
    g = GoldenModel(program)
    g.step(9)
    assert all(0 < e.input_events <= 6 * 4 for e in g.last_events[:-1])  # six projections per layer
    assert 0 < g.last_events[-1].input_events <= 4


def test_settings_travel_with_the_checkpoint_and_the_program(tmp_path):
    from models.mmfree.checkpoint import load_checkpoint, save_checkpoint
    from models.mmfree.model import MMFreeForCausalLM

    model = MMFreeForCausalLM(preset("tiny", input_sparsity=SETTINGS))
    save_checkpoint(model, tmp_path / "ck")
    back = load_checkpoint(tmp_path / "ck")
    assert back.config.input_sparsity == SETTINGS
    assert back.model.layers[0].mlp.down_proj.sparsity == (10, 7) and back.lm_head.sparsity == (50, 0)
    program = IntegerProgram.from_model(back)
    assert program.input_sparsity == SETTINGS
    assert IntegerProgram.load(program.save(tmp_path / "p.npz")).input_sparsity == SETTINGS
    assert "input_sparsity" not in preset("tiny").to_dict()  # an upstream config.json stays upstream


def test_float_view_applies_the_same_rule():
    from models.mmfree.model import act_fake_quant, act_quant

    x = torch.randn(3, 32)
    q, s = act_quant(x)
    assert torch.equal(act_fake_quant(x, (0, 5)), nf.sparsify_codes(q, 0, 5) / s)
    assert torch.equal(act_fake_quant(x), q / s)


@pytest.mark.parametrize("knobs,message", [
    ({"ifg": {"threshold": -1}}, r"input sparsity ifg.threshold must be an integer in \[0, 127\], not -1"),
    ({"o": {"threshold": 128}}, r"input sparsity o.threshold must be an integer in \[0, 127\], not 128"),
    ({"gate": {"topk": 0}}, r"input sparsity gate.topk must be an integer in \[1, 32\], not 0"),
    ({"down": {"topk": 65}}, r"input sparsity down.topk must be an integer in \[1, 64\], not 65"),
    ({"lm_head": {"topk": 2.5}}, r"input sparsity lm_head.topk must be an integer in \[1, 32\], not 2.5"),
    ({"qkv": {"topk": 2}}, r"unknown projection kind 'qkv' in input sparsity; use ifg, o, gate, down, lm_head"),
    ({"ifg": {"fraction": 0.5}}, r"input sparsity of ifg must be a mapping with keys among threshold, topk"),
    ([8], r"input sparsity must be a mapping of projection kind to settings"),
])
def test_settings_outside_the_spec_are_refused_in_one_line(tmp_path, knobs, message):
    with pytest.raises(ValueError, match=message) as err:
        preset("tiny", input_sparsity=knobs)
    assert "\n" not in str(err.value)
    with pytest.raises(ProgramError, match=message):
        IntegerProgram.from_model(random_model(4)).with_input_sparsity(knobs)
    # a checkpoint (config.json) and a saved program whose settings the spec cannot express
    from models.mmfree.checkpoint import load_checkpoint, save_checkpoint
    from models.mmfree.model import MMFreeForCausalLM

    save_checkpoint(MMFreeForCausalLM(preset("tiny")), tmp_path / "ck")
    cfg = json.loads((tmp_path / "ck" / "config.json").read_text())
    (tmp_path / "ck" / "config.json").write_text(json.dumps({**cfg, "input_sparsity": knobs}))
    with pytest.raises(ValueError, match="config.json: invalid config: " + message) as err:
        load_checkpoint(tmp_path / "ck")
    assert "\n" not in str(err.value)


def test_a_saved_program_with_bad_settings_is_refused(tmp_path):
    program = IntegerProgram.from_model(random_model(5))
    program.input_sparsity = {"ifg": {"threshold": 300}}
    with pytest.raises(ProgramError, match=r"input sparsity ifg.threshold must be an integer in \[0, 127\], not 300"):
        IntegerProgram.load(program.save(tmp_path / "p.npz"))


@pytest.mark.slow
def test_golden_equals_the_torch_view_on_the_bundled_model_with_input_sparsity():
    from models.mmfree.checkpoint import load_checkpoint
    from models.text.tokenizer import encode, load_tokenizer

    ids = encode(load_tokenizer(BUNDLED / "tokenizer.json"), (BUNDLED / "README.md").read_text()[:1500])[:48]
    program = IntegerProgram.from_model(load_checkpoint(BUNDLED)).with_input_sparsity(
        {"ifg": {"threshold": 12}, "gate": {"topk": 96}, "o": {"topk": 64}, "down": {"threshold": 8, "topk": 200},
         "lm_head": {"topk": 128}})
    logits, _ = IntegerView(program).forward(torch.tensor([ids]))
    out, _ = GoldenModel(program).run(ids)
    assert np.array_equal(out, logits[0].numpy())


def test_batch_mode_sums_the_event_counts_of_every_row():
    from models.program.events import LayerEvents

    program = IntegerProgram.from_model(random_model(6)).with_input_sparsity({"gate": {"topk": 9}})
    rows = torch.randint(0, program.vocab_size, (3, 7), generator=torch.Generator().manual_seed(6)).tolist()
    golden = GoldenModel(program)
    golden.run_batch(rows, threads=2)
    want = [LayerEvents() for _ in range(len(program.layers) + 1)]
    for r in rows:
        golden.reset()
        want = [a + b for a, b in zip(want, golden.run(r)[1])]
    assert golden.batch_events == want
