"""The trained sparsity levers: ReLU-family GLU, a wider zero band of the ternary quantiser, the activation
L1 penalty, and fine-tuning from a checkpoint. Each trains on a tiny config, exports to the integer program and
runs bit-exactly on the torch view and the golden model; options off leave everything as it was."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from models.mmfree.config import preset
from models.mmfree.model import MMFreeForCausalLM, weight_quant
from models.mmfree.train import TrainConfigError, Trainer, load_train_config, read_log
from models.program import numformat as nf
from models.program.golden import GoldenModel
from models.program.integer_program import IntegerProgram, ProgramError
from models.program.integer_view import IntegerView

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_golden import random_model  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "models" / "configs" / "tiny.yaml"


def bit_exact(program: IntegerProgram, seed: int = 0) -> bool:
    ids = torch.randint(0, program.vocab_size, (2, 10), generator=torch.Generator().manual_seed(seed))
    return np.array_equal(GoldenModel(program).run_batch(ids.tolist(), threads=1),
                          IntegerView(program).forward(ids)[0].numpy())


@pytest.mark.parametrize("act", ["relu", "relu2"])
def test_relu_glu_is_bit_exact_and_makes_down_inputs_sparse(act):
    program = IntegerProgram.from_model(random_model(0, glu_activation=act))
    assert program.glu_activation == act and bit_exact(program)
    silu = GoldenModel(IntegerProgram.from_model(random_model(0)))
    relu = GoldenModel(program)
    down = lambda g: sum(l["down_proj"].fan_in for l in g.layers)  # noqa: E731,E741
    assert down(silu) == down(relu)
    ids = list(range(5, 25))
    dense = sum(e.input_events for e in silu.run(ids)[1][:-1])
    sparse = sum(e.input_events for e in relu.run(ids)[1][:-1])
    assert sparse < dense


def test_glu_activations_of_the_spec():
    y = np.array([-(1 << 20), -1, 0, 1, 3 << 15, (1 << 31) - 1])
    assert nf.glu_act_q("relu", y).tolist() == [0, 0, 0, 1, 3 << 15, (1 << 31) - 1]
    assert nf.glu_act_q("relu2", y).tolist() == [0, 0, 0, 0, 9 << 14, (1 << 31) - 1]  # 1.5**2 = 2.25; 2**-16 squared rounds to 0
    assert np.array_equal(nf.glu_act_q("silu", y), nf.silu_q(y))
    with pytest.raises(ValueError, match="unknown GLU activation 'gelu'"):
        nf.glu_act_q("gelu", y)


def test_wider_zero_band_gives_more_zero_weights_and_stays_bit_exact():
    base = IntegerProgram.from_model(random_model(1))
    wide = IntegerProgram.from_model(random_model(1, weight_zero_threshold=0.9))
    zeros = lambda p: sum(int((q.codes == 0).sum()) for l in p.layers for q in l.proj.values())  # noqa: E731,E741
    assert zeros(wide) > zeros(base) and bit_exact(wide)
    w = torch.randn(64, 48)
    assert torch.equal(weight_quant(w, 0.5)[0], weight_quant(w)[0])  # t = 0.5 is the rounding (no exact ties)


def test_options_off_leave_config_json_upstream():
    d = preset("tiny").to_dict()
    assert not {"glu_activation", "weight_zero_threshold", "input_sparsity"} & set(d)
    assert {"glu_activation", "weight_zero_threshold"} <= set(preset("tiny", glu_activation="relu",
                                                                       weight_zero_threshold=0.8).to_dict())


@pytest.mark.parametrize("field,value,message", [
    ("glu_activation", "gelu", r"glu_activation must be one of \('silu', 'relu', 'relu2'\), got 'gelu'"),
    ("weight_zero_threshold", 0, r"weight_zero_threshold must be a number in \(0, 1.5\)"),
    ("weight_zero_threshold", 2.0, r"weight_zero_threshold must be a number in \(0, 1.5\)"),
])
def test_lever_settings_outside_their_range_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        preset("tiny", **{field: value})


def test_a_program_with_an_unknown_glu_activation_is_refused(tmp_path):
    program = IntegerProgram.from_model(random_model(2))
    program.glu_activation = "gelu"
    with pytest.raises(ProgramError, match="unknown GLU activation 'gelu'; the spec has silu, relu, relu2"):
        IntegerProgram.load(program.save(tmp_path / "p.npz"))


def _cfg(tmp_path, name: str, model: dict, **train) -> Path:
    raw = yaml.safe_load(TINY.read_text())
    raw["model"].update(model)
    raw["train"].update({"max_steps": 4, "eval_every": 4, "ckpt_every": 2, **train})
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.mark.slow
def test_finetuning_each_lever_from_a_checkpoint_exports_bit_exactly(tmp_path):
    base = Trainer(load_train_config(_cfg(tmp_path, "base", {})), tmp_path / "base", progress=False)
    base.run()
    start = tmp_path / "base" / "final"
    levers = {"relu": ({"glu_activation": "relu"}, {}), "ternary": ({"weight_zero_threshold": 0.8}, {}),
              "l1": ({}, {"act_l1": 0.5}), "topk": ({"input_sparsity": {"gate": {"topk": 8}}}, {})}
    for name, (model, train) in levers.items():
        run = tmp_path / name
        Trainer(load_train_config(_cfg(tmp_path, name, model, init_from=str(start), **train)), run,
                progress=False, stop_after=2).run()
        # resumable: a second invocation continues from the step-2 checkpoint
        Trainer(load_train_config(_cfg(tmp_path, name, model, init_from=str(start), **train)), run,
                progress=False).run(resume=True)
        log = read_log(run)
        assert log[-1]["event"] == "done" and log[-1]["step"] == 4
        if name == "l1":
            assert all("code_l1" in r for r in log if "loss" in r)
        from models.mmfree.checkpoint import load_checkpoint
        program = IntegerProgram.from_model(load_checkpoint(run / "final"))
        assert bit_exact(program), name
    assert (tmp_path / "relu" / "tokenizer.json").read_text() == (start / "tokenizer.json").read_text()


def test_init_from_must_match_the_shapes(tmp_path):
    base = Trainer(load_train_config(_cfg(tmp_path, "base", {}, max_steps=1)), tmp_path / "base", progress=False)
    base.run()
    cfg = load_train_config(_cfg(tmp_path, "wide", {"hidden_size": 48}, init_from=str(tmp_path / "base" / "final")))
    with pytest.raises(ValueError, match="shape"):
        Trainer(cfg, tmp_path / "wide", progress=False).run()
    p = _cfg(tmp_path, "bad", {}, init_from=3)
    with pytest.raises(TrainConfigError, match=r"train.init_from must be a folder path, got 3"):
        load_train_config(p)


def test_l1_tap_is_the_mean_code_magnitude():
    model = MMFreeForCausalLM(preset("tiny")).train()
    lin = model.lm_head
    lin.track_l1 = True
    x = torch.randn(2, 5, 32)
    lin(x)
    y = lin.norm(x)
    assert torch.allclose(lin.code_l1, (y.abs().mean(-1) / y.abs().amax(-1)).mean())
