"""Bad input fails fast in one line that names the problem and the fix (issue 15, item 8), and commands
default to the model a user expects (item 10): ``models/bundled`` for MatMul-free commands, ``smollm2-135m``
for the SmolLM2 ones."""

import re
import shutil
from pathlib import Path

import pytest
import torch

import models.transformer.loader as loader
from models.eval.perplexity import text_perplexity
from models.mmfree.checkpoint import CheckpointError, load_state_dict, save_checkpoint
from models.mmfree.config import MMFreeConfig, preset
from models.mmfree.model import MMFreeForCausalLM
from models.mmfree.train import TrainConfigError, load_train_config
from models.text.tokenizer import load_tokenizer
from nmllm.cli import build_parser, main
from sim.sweep.spec import SpecError, load_spec
from sim.system.compiler import chips_needed
from sim.system.energy import load_preset
from sim.system.shapes import model_shape

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "models" / "bundled"


@pytest.fixture
def text(tmp_path):
    p = tmp_path / "text.txt"
    p.write_text(" = Robert Boulter = \n Robert Boulter is an English film , television and theatre actor .\n")
    return p


@pytest.fixture
def in_repo(monkeypatch):
    """Run from the repository root, where the default ``models/bundled`` lives."""
    monkeypatch.chdir(ROOT)


@pytest.fixture
def no_hf_loading(monkeypatch):
    """Fail the test if a Hugging Face model or tokenizer starts loading."""
    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the arguments were checked")
    monkeypatch.setattr(loader, "load_hf_model", refuse)
    monkeypatch.setattr(loader, "load_hf_tokenizer", refuse)


def _error(capsys, argv) -> str:
    """Run ``nmllm argv``; assert exit 2 and a one-line error, return it."""
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# ------------------------------------------------------------------------------------ --max-tokens
def test_negative_max_tokens_is_refused_not_scored(text, capsys, in_repo):
    tok = load_tokenizer(BUNDLED)
    with pytest.raises(ValueError, match=r"^--max-tokens must be a positive integer, not -5$"):
        text_perplexity(lambda ids: torch.zeros(*ids.shape, 8), tok, text.read_text(), max_tokens=-5)
    err = _error(capsys, ["eval", "perplexity", "--data", str(text), "--max-tokens", "-5", "--no-progress"])
    assert err == "nmllm eval: error: --max-tokens must be a positive integer, not -5"


# ------------------------------------------------------------------------------------ non-finite weights
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weight_is_refused_naming_tensor_and_file(tmp_path, text, capsys, bad):
    model = MMFreeForCausalLM(preset("tiny", vocab_size=4096))         # the bundled tokenizer's vocabulary
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[3, 5] = bad
    save_checkpoint(model, tmp_path)
    shutil.copyfile(BUNDLED / "tokenizer.json", tmp_path / "tokenizer.json")
    key = "model.layers.1.mlp.down_proj.weight"
    with pytest.raises(CheckpointError, match="^" + re.escape(f"{tmp_path / 'model.safetensors'}: tensor '{key}' holds 1 NaN or infinite")):
        load_state_dict(tmp_path)
    err = _error(capsys, ["eval", "perplexity", "--model", str(tmp_path), "--data", str(text), "--no-progress"])
    assert key in err and "model.safetensors" in err


# ------------------------------------------------------------------------------------ training YAML
@pytest.mark.parametrize("doc, message", [
    ("train: {lr: 0.1\n", r"not valid YAML \(expected ',' or '\}', but got '<stream end>' at line 2, column 1\)"),
    ("train: 5\n", r"section 'train' must be a mapping of key: value, got 5"),
    ("model: [tiny]\n", r"section 'model' must be a mapping of key: value, got \['tiny'\]"),
    ("train: {lr: fast}\n", r"train.lr must be a number >= 0, got 'fast'"),
    ("train: {batch_size: -4}\n", r"train.batch_size must be an integer >= 1, got -4"),
    ("seed: abc\n", r"seed must be an integer, got 'abc'"),
    ("model: {preset: huge}\n", r"unknown preset 'huge'"),
])
def test_malformed_training_yaml_is_one_line_naming_the_file(tmp_path, capsys, doc, message):
    p = tmp_path / "bad.yaml"
    p.write_text(doc)
    with pytest.raises(TrainConfigError, match="^" + re.escape(f"{p}: ") + message):
        load_train_config(p)
    assert _error(capsys, ["train", str(p), "--out", str(tmp_path / "run")]).startswith(f"nmllm train: error: {p}: ")


# ------------------------------------------------------------------------------------ config.json
def test_corrupt_config_json_error_names_the_file(tmp_path, capsys):
    cfg = tmp_path / "config.json"
    cfg.write_text('{"model_type": "hgrn_bit", ')
    with pytest.raises(ValueError, match="^" + re.escape(f"{cfg}: not valid JSON")):
        MMFreeConfig.from_json(cfg)
    assert _error(capsys, ["compile", str(tmp_path), "--out", str(tmp_path / "m.json")]).startswith(
        f"nmllm compile: error: {cfg}: not valid JSON")
    cfg.write_text('{"model_type": "hgrn_bit", "hidden_size": -3}')
    assert _error(capsys, ["simulate", str(tmp_path)]) == (
        f"nmllm simulate: error: {cfg}: invalid config: hidden_size must be a positive integer, got -3")


# ------------------------------------------------------------------------------------ --engine on a HF model
@pytest.mark.parametrize("flags, named", [(["--engine", "golden"], "--engine golden"), (["--no-quant"], "--no-quant")])
def test_engine_on_a_hugging_face_model_is_refused(tmp_path, capsys, no_hf_loading, flags, named):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    err = _error(capsys, ["eval", "perplexity", "--model", str(tmp_path), *flags])
    assert err.startswith(f"nmllm eval: error: {named} runs MatMul-free checkpoints only; {tmp_path} is a Hugging Face model")


# ------------------------------------------------------------------------------------ --fill
@pytest.mark.parametrize("command", ["compile", "simulate"])
@pytest.mark.parametrize("fill, message", [("0", "--fill must be a fraction in (0, 1]"), ("-0.5", "--fill must be a fraction in (0, 1]"),
                                           ("1e-9", "fill 1e-09 leaves no bit of a core's")])
def test_fill_outside_0_1_with_chips_auto_is_one_line(tmp_path, capsys, command, fill, message):
    err = _error(capsys, [command, "370m", "--fill", fill, "--chips", "auto", "--out" if command == "compile" else "--json",
                          str(tmp_path / "out.json")])
    assert err.startswith(f"nmllm {command}: error: {message}")


def test_chips_needed_checks_fill():
    with pytest.raises(ValueError, match=r"--fill must be a fraction in \(0, 1\]"):
        chips_needed(model_shape("370m"), load_preset("loihi1").hardware, 0.0)


# ------------------------------------------------------------------------------------ sweep spec knobs
@pytest.mark.parametrize("knobs, message", [
    ({"chips": [4, -2]}, r"^knob 'chips' must be a positive integer or auto, got -2"),
    ({"fill": {"min": -0.5, "max": 1.0, "step": 0.5}}, r"^knob 'fill' must be a fraction in \(0, 1\], got -0.5"),
    ({"fill": [0]}, r"^knob 'fill' must be a fraction in \(0, 1\], got 0"),
    ({"cores_per_chip": [-128]}, r"^knob 'cores_per_chip' must be a positive integer, got -128"),
    ({"mesh": ["0x4"]}, r"^knob 'mesh' must be XxY with positive integers"),
    ({"tiles_x": [-1]}, r"^knob 'tiles_x': value -1 does not fit preset 'loihi1' \(tiles_x must be a positive integer"),
    ({"static_per_chip": {"min": -0.1, "max": 0.2}}, r"^knob 'static_per_chip' is a cost and must be a number >= 0, got -0.1"),
    ({"preset": ["crossbar"], "adc_bits": [-3]}, r"^knob 'adc_bits' must be a positive integer, got -3"),
    ({"preset": ["vck190"], "clock_mhz": [-300]}, r"^knob 'clock_mhz' must be a positive number, got -300"),
])
def test_sweep_spec_with_impossible_knob_values_is_refused_on_load(knobs, message):
    with pytest.raises(SpecError, match=message):
        load_spec({"name": "t", "models": ["tiny"], "knobs": {"preset": ["loihi1"], **knobs}})


# ------------------------------------------------------------------------------------ checks before loading
@pytest.mark.parametrize("argv, message", [
    (["eval", "perplexity", "--model", "smollm2-135m", "--window", "0"], "--window must be a positive integer, not 0"),
    (["eval", "perplexity", "--model", "smollm2-135m", "--stride", "-1"], "--stride must be a positive integer, not -1"),
    (["eval", "perplexity", "--model", "smollm2-135m", "--window", "64"], "--stride (128) must not exceed --window (64), or tokens would be skipped: lower --stride or raise --window"),
    (["eval", "perplexity", "--model", "smollm2-135m", "--batch-size", "0"], "--batch-size must be a positive integer, not 0"),
    (["eval", "rouge", "--max-new-tokens", "0"], "--max-new-tokens must be a positive integer, not 0"),
    (["eval", "rouge", "--max-article-tokens", "-1"], "--max-article-tokens must be a non-negative integer, not -1"),
    (["spike", "study", "--window", "0"], "--window must be a positive integer, not 0"),
])
def test_bad_flags_fail_before_any_model_loads(tmp_path, capsys, no_hf_loading, argv, message):
    argv = argv + (["--out", str(tmp_path / "study.json")] if argv[0] == "spike" else [])
    assert _error(capsys, argv).endswith(f"error: {message}")


def test_missing_tokenizer_says_what_is_missing_where_and_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_tokenizer(tmp_path)
    msg = str(info.value)
    assert msg.startswith(f"no tokenizer.json at {tmp_path / 'tokenizer.json'}: put the one the weights were trained with") and "download" in msg and "train one" not in msg


# ------------------------------------------------------------------------------------ defaults (item 10)
def test_commands_default_to_the_bundled_model_or_smollm2():
    parser = build_parser()
    bundled = {("eval", "perplexity"): "model", ("compile",): "model", ("simulate",): "target",
               ("activity",): "checkpoint", ("prune",): "model", ("decode",): "model"}
    for argv, attr in bundled.items():
        assert getattr(parser.parse_args(list(argv)), attr) == "models/bundled", argv
    for argv in (("eval", "rouge"), ("spike", "study")):
        assert parser.parse_args(list(argv)).model == "smollm2-135m", argv


def test_compile_without_a_model_maps_the_bundled_one(tmp_path, capsys, in_repo):
    assert main(["compile", "--out", str(tmp_path / "m.json")]) == 0
    assert capsys.readouterr().out.startswith("compiled bundled (6 M weights)")


def test_missing_smollm2_extra_is_one_line_with_the_install_command(capsys, monkeypatch, no_hf_loading):
    monkeypatch.setitem(loader.HF_MODELS, "smollm2-135m", ("nmllm_no_such_package", "model.gguf", "absent"))
    for argv in (["eval", "rouge"], ["eval", "perplexity", "--model", "smollm2-135m"]):
        err = _error(capsys, argv)
        assert "model 'smollm2-135m' is not installed (nmllm-no-such-package" in err
        assert err.endswith(loader._INSTALL_HINT)


@pytest.mark.slow
def test_activity_defaults_to_the_bundled_model_on_wikitext(tmp_path, capsys, in_repo):
    out = tmp_path / "activity.json"
    assert main(["activity", "--tokens", "16", "--out", str(out)]) == 0
    assert "golden model of models/bundled on 16 tokens of wiki.test.raw" in out.read_text()
